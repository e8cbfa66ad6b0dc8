"""Classification metrics: WA (accuracy), UA (mean per-class recall), macro-F1, confusion; calibration: ECE, Brier;
regression metrics: CCC, Pearson, MAE, RMSE (:func:`regression_scores`) and their bootstrap intervals."""

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
                 seed: int = 0, probs: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of WA, UA and macro-F1 (and ECE, Brier), resampling utterances.

    Parameters
    ----------
    true, pred
        Class indices, (N,) each.
    resamples
        Bootstrap samples drawn with replacement (seeded: the same intervals every run).
    probs
        ``(N, C)`` probabilities: ECE and Brier get intervals too, from the same resamples (WA, UA and
        macro-F1 are the same with or without them).

    Returns
    -------
    dict
        metric -> (low, high) at ``level``.
    """
    true, pred = np.asarray(true), np.asarray(pred)
    rng = np.random.default_rng(seed)
    values = {"WA": [], "UA": [], "macro_F1": []} | ({"ECE": [], "Brier": []} if probs is not None else {})
    for _ in range(resamples):
        pick = rng.integers(0, len(true), len(true))
        s = scores(confusion(true[pick], pred[pick], num_classes))
        if probs is not None:
            s |= calibration_scores(probs[pick], true[pick])
        for key in values:
            values[key].append(s[key])
    tail = (1 - level) / 2 * 100
    return {k: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))) for k, v in values.items()}


def reliability_bins(probs: np.ndarray, true: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Accuracy against confidence in ``bins`` equal-width confidence bins (a reliability diagram's data).

    The confidence of an item is its largest probability; bin ``k`` holds confidences in
    ``(k / bins, (k + 1) / bins]`` (the first bin also holds 0; a confidence within 1e-9 of an edge counts as
    on it, so float rounding never moves 0.7 into the bin above).

    Parameters
    ----------
    probs
        ``(N, C)`` class probabilities (rows sum to 1).
    true
        ``(N,)`` class indices.
    bins
        Number of bins (at least 1).

    Returns
    -------
    dict
        ``edges`` (bins + 1,); ``count`` (bins,) items per bin; ``confidence`` and ``accuracy`` (bins,): the
        mean confidence and the share of correct predictions per bin (NaN for an empty bin).
    """
    probs, true = np.asarray(probs, np.float64), np.asarray(true)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == true).astype(np.float64)
    which = np.clip(np.ceil(confidence * bins - 1e-9).astype(np.int64) - 1, 0, bins - 1)  # an edge: the lower bin
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / count
        accuracy = np.bincount(which, correct, minlength=bins) / count
    return {"edges": np.linspace(0.0, 1.0, bins + 1), "count": count, "confidence": mean_confidence,
            "accuracy": accuracy}


def expected_calibration_error(probs: np.ndarray, true: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by each bin's share of items.

    Parameters
    ----------
    probs
        ``(N, C)`` class probabilities.
    true
        ``(N,)`` class indices.
    bins
        Number of confidence bins (:func:`reliability_bins`).

    Returns
    -------
    float
        In [0, 1]; 0 for a perfectly calibrated model, NaN when ``N`` is 0.
    """
    table = reliability_bins(probs, true, bins)
    total = table["count"].sum()
    if total == 0:
        return float("nan")
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float(np.sum(table["count"][filled] / total * gaps))


def brier_score(probs: np.ndarray, true: np.ndarray) -> float:
    """Multi-class Brier score: the mean over items of sum_c (p_c - onehot_c)^2.

    Parameters
    ----------
    probs
        ``(N, C)`` class probabilities.
    true
        ``(N,)`` class indices.

    Returns
    -------
    float
        In [0, 2]; 0 for certain, correct predictions; NaN when ``N`` is 0.
    """
    probs, true = np.asarray(probs, np.float64), np.asarray(true)
    if len(true) == 0:
        return float("nan")
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(true)), true] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def calibration_scores(probs: np.ndarray, true: np.ndarray, bins: int = 10) -> dict[str, float]:
    """``{"ECE": ..., "Brier": ...}`` of ``probs`` ``(N, C)`` against class indices ``true`` ``(N,)``."""
    return {"ECE": expected_calibration_error(probs, true, bins), "Brier": brier_score(probs, true)}


REGRESSION_METRICS = ("CCC", "Pearson", "MAE", "RMSE")


def concordance(true: np.ndarray, pred: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two ``(N,)`` series.

    ``2 cov(t, p) / (var(t) + var(p) + (mean(t) - mean(p))^2)``, with population (1/N) moments: 1 for
    ``pred == true``, 0 for unrelated series, negative for opposed ones. Unlike Pearson's r it drops when the
    predictions are shifted or scaled. NaN for fewer than two items or two constant, equal series.
    """
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    if len(true) < 2:
        return float("nan")
    mt, mp = true.mean(), pred.mean()
    denominator = true.var() + pred.var() + (mt - mp) ** 2
    if denominator == 0:
        return float("nan")
    return float(2 * np.mean((true - mt) * (pred - mp)) / denominator)


def regression_scores(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """CCC, Pearson's r, MAE and RMSE of ``pred`` against ``true`` (``(N,)`` each; NaN where undefined)."""
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    if len(true) == 0:
        return dict.fromkeys(REGRESSION_METRICS, float("nan"))
    error = pred - true
    spread = true.std() * pred.std()
    pearson = float(np.mean((true - true.mean()) * (pred - pred.mean())) / spread) if spread > 0 else float("nan")
    return {"CCC": concordance(true, pred), "Pearson": pearson, "MAE": float(np.mean(np.abs(error))),
            "RMSE": float(np.sqrt(np.mean(error ** 2)))}


def regression_bootstrap_ci(true: np.ndarray, pred: np.ndarray, *, resamples: int = 1000, level: float = 0.95,
                            seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of :func:`regression_scores`, resampling items (seeded, as :func:`bootstrap_ci`).

    Parameters
    ----------
    true, pred
        ``(N,)`` target and predicted values.

    Returns
    -------
    dict
        metric -> (low, high) at ``level``.
    """
    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    rng = np.random.default_rng(seed)
    values = {k: [] for k in REGRESSION_METRICS}
    for _ in range(resamples):
        pick = rng.integers(0, len(true), len(true))
        for key, value in regression_scores(true[pick], pred[pick]).items():
            values[key].append(value)
    tail = (1 - level) / 2 * 100
    return {k: (float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))) for k, v in values.items()}
