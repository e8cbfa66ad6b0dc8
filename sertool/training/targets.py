"""Regression targets of a run (``train --target COLUMN``): read, checked and standardised per fold.

A target is a numeric column of the manifest (an extra column, e.g. BAVED's ``level`` or a dimensional
corpus's ``arousal``, ``valence``, ``dominance``). Every row trained on needs a number there: a row whose
cell is empty or not a number is an error naming the manifest, the row and the column (rows are never left
out silently). Each fold standardises the targets with its training rows' mean and std
(:class:`TargetScale`, stored in the checkpoint), so the network learns values of unit scale.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from sertool.errors import ConfigError, ManifestError
from sertool.io.manifest import COLUMNS, Utterance


def parse_targets(targets) -> list[str]:
    """Target column names from a list and/or comma-separated text (``["a,v", "d"]`` -> ``["a", "v", "d"]``).

    Raises
    ------
    ConfigError
        An empty name, or a name given twice.
    """
    if targets is None:
        return []
    items = [targets] if isinstance(targets, str) else list(targets)
    names = [name.strip() for item in items for name in str(item).split(",")]
    if any(not n for n in names):
        raise ConfigError(f"--target {','.join(names)!r}: an empty column name; give e.g. --target arousal")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--target {', '.join(twice)} given twice; name each column once")
    return names


def _cell(utterance: Utterance, column: str) -> str:
    """The text of ``column`` in a row: an extra column, or a standard one (``duration``)."""
    if column in utterance.extra:
        return utterance.extra[column]
    value = getattr(utterance, column, "") if column in COLUMNS else ""
    return "" if value is None else str(value)


def _has_column(utterances: list[Utterance], column: str) -> bool:
    return any(column in u.extra for u in utterances) or (column in COLUMNS and column not in ("id", "path"))


def target_values(manifest, utterances: list[Utterance], targets: list[str]) -> dict[str, np.ndarray]:
    """id -> float64 values (K,) of the ``targets`` columns of every row.

    Parameters
    ----------
    manifest
        The manifest's name, for messages.
    utterances
        Its rows (in file order: row ``k`` is data row ``k + 1``, line ``k + 2`` of the CSV).
    targets
        Column names.

    Raises
    ------
    ManifestError
        A column the manifest lacks (naming the extra columns it has), or a row whose cell is empty or not
        a finite number (naming the row, its id and the column).
    """
    for column in targets:
        if not _has_column(utterances, column):
            extra = sorted({k for u in utterances for k in u.extra})
            raise ManifestError(f"{manifest}: no column {column!r} for --target (its extra columns: "
                                f"{', '.join(extra) or 'none'}); name a numeric column of the manifest")
    values = {}
    for row, u in enumerate(utterances, start=1):
        values[u.id] = np.array([_number(manifest, row, u, column) for column in targets], np.float64)
    return values


def _number(manifest, row: int, utterance: Utterance, column: str) -> float:
    text = _cell(utterance, column).strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        what = "is empty" if not text else f"holds {text[:30]!r}, not a number"
        raise ManifestError(f"{manifest}: row {row} (id {utterance.id!r}, line {row + 1}): column {column!r} {what}; "
                            "every row trained on needs a number in each --target column: fill it in, or leave "
                            "the row out of the manifest")
    return value


def values_digest(values: dict[str, np.ndarray]) -> str:
    """SHA-256 of the target values (in id order): another manifest's values make another run to resume."""
    digest = hashlib.sha256()
    for key in sorted(values):
        digest.update(key.encode() + b"\0" + np.asarray(values[key], np.float64).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class TargetScale:
    """A fold's targets: their names, every row's values, and the training rows' mean and std (K,)."""

    names: list[str]
    values: dict[str, np.ndarray]
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, names: list[str], values: dict[str, np.ndarray], train_ids, fold_name: str = "") -> "TargetScale":
        """The scale of the training rows ``train_ids``; ConfigError when a target is constant there."""
        rows = np.stack([values[i] for i in train_ids]) if len(train_ids) else np.zeros((0, len(names)))
        if len(rows) < 2:
            raise ConfigError(f"{fold_name}: {len(rows)} training row(s); regression needs two or more")
        mean, std = rows.mean(axis=0), rows.std(axis=0)
        flat = [n for n, s in zip(names, std) if not s > 0]
        if flat:
            raise ConfigError(f"{fold_name}: target {', '.join(flat)} has one value in every training row, so there "
                              "is nothing to learn: choose another --target column or other folds")
        return cls(list(names), values, mean, std)

    def standardised(self, ids) -> list[list[float]]:
        """Per id, its standardised values (a list of K floats: the dataset's per-item target)."""
        return [((self.values[i] - self.mean) / self.std).astype(np.float32).tolist() for i in ids]

    def checkpoint_fields(self) -> dict:
        """The checkpoint's task fields (:class:`~sertool.models.checkpoint.Checkpoint`)."""
        return {"task": "regression", "targets": list(self.names), "labels": [],
                "target_mean": [float(v) for v in self.mean], "target_std": [float(v) for v in self.std]}
