"""Tests of sertool.inference."""
