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
