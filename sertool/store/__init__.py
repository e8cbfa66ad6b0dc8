"""The HDF5 feature store: one file per (manifest, feature config), one writer, shards that merge.

Layer 2: imports :mod:`sertool.io` and below.
"""
