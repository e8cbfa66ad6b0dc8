"""Tests of sertool.cli."""
