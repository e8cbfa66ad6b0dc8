"""Tests of sertool.runtime."""
