"""Classification metrics: WA (accuracy), UA (mean per-class recall), macro-F1, confusion."""

from __future__ import annotations

import numpy as np


def confusion(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``(C, C)``: rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(true), np.asarray(pred)), 1)
    return matrix


def scores(matrix: np.ndarray) -> dict[str, float | np.ndarray]:
    """WA, UA, macro-F1 and per-class precision/recall/F1 from a confusion matrix.

    Classes absent from the true labels are left out of UA and macro-F1
    (their recall is undefined) and reported as NaN.
    """
    matrix = np.asarray(matrix, np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    hits = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
        precision = np.where(predicted > 0, hits / predicted, np.where(support > 0, 0.0, np.nan))
        f1 = np.where(support > 0, np.nan_to_num(2 * precision * recall / (precision + recall)), np.nan)
    present = support > 0
    return {
        "WA": float(hits.sum() / max(matrix.sum(), 1)),
        "UA": float(np.mean(recall[present])) if present.any() else float("nan"),
        "macro_F1": float(np.mean(f1[present])) if present.any() else float("nan"),
        "precision": precision, "recall": recall, "f1": f1, "support": support,
    }


def bootstrap_ci(true: np.ndarray, pred: np.ndarray, num_classes: int, *, resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of WA, UA and macro-F1, resampling utterances.

    Parameters
    ----------
    true, pred
        Class indices, (N,) each.
    resamples
        Bootstrap samples drawn with replacement (seeded: the same intervals every run).

    Returns
    -------
    dict
        metric -> (low, high) at ``level``.
    """
    true, pred = np.asarray(true), np.asarray(pred)
    rng = np.random.default_rng(seed)
    values = {"WA": [], "UA": [], "macro_F1": []}
    for _ in range(resamples):
        pick = rng.integers(0, len(true), len(true))
        s = scores(confusion(true[pick], pred[pick], num_classes))
        for key in values:
            values[key].append(s[key])
    tail = (1 - level) / 2 * 100
    return {k: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))) for k, v in values.items()}
