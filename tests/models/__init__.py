"""Tests of sertool.models."""
