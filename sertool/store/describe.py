"""A short text summary of a feature store (``sertool store describe``)."""

from __future__ import annotations

import os

from sertool.store.reader import FeatureStore


def describe(path: str | os.PathLike, *, max_rows: int = 10) -> str:
    """A short text summary of a store: config, entry count and the first entries' shapes.

    Parameters
    ----------
    path
        The store file.
    max_rows
        How many entries (sorted by id) to list, with their shape, mean and std.

    Returns
    -------
    str
        One header line, then one line per listed entry (no trailing newline).

    Raises
    ------
    StoreError
        The file is missing or not a feature store.
    """
    with FeatureStore(path) as store:
        attrs = store.attrs
        keys = sorted(store.keys())
        lines = [
            f"{store.path}: {len(keys)} entries, feature set {attrs['feature_set']} "
            f"({attrs['feature_type']}, {attrs['level']} level, dim {attrs['dim']}, {attrs['sample_rate']} Hz), "
            f"config {store.config_hash[:8]}, sertool {attrs['sertool_version']}",
        ]
        for key in keys[:max_rows]:
            feats = store[key]
            lines.append(f"  {key:28s} {feats.shape[0]:5d} x {feats.shape[1]:<4d} "
                         f"mean {feats.mean():9.3f}  std {feats.std():8.3f}")
        if len(keys) > max_rows:
            lines.append(f"  ... {len(keys) - max_rows} more")
    return "\n".join(lines)
