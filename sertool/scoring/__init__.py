"""Scoring of run folders: evaluate, compare, fuse and their plots.

Layer 7: imports train, inference and below.
"""
