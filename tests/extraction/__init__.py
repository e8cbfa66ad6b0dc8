"""Tests of sertool.extraction."""
