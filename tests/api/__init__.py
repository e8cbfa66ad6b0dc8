"""Tests of sertool.api."""
