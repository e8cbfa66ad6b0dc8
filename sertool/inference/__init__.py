"""The scoring engine: feature sources, window planning, model runners, normalisation and CSV rows.

Layer 5: imports models, extract, features, store, io, runtime.
"""
