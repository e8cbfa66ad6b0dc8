"""Tests of sertool.scoring."""
