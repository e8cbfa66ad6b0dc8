"""Tests of sertool.training."""
