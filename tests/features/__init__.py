"""Tests of sertool.features."""
