"""Tests of sertool.io."""
