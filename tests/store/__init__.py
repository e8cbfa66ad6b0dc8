"""Tests of sertool.store."""
