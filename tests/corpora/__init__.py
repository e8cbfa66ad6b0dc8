"""Tests of sertool.corpora."""
