"""``crosscorpus --target``: the cells of a matrix of regression runs, scored by CCC.

The matrix's runs, cells and files are those of :mod:`sertool.scoring.crosscorpus`; a cell of regression
runs holds the mean CCC over the targets of its pooled predictions (``matrix.csv`` column ``CCC`` in place
of ``UA``), its 95 % bootstrap interval (utterances resampled, seeded), N, the number of targets (column
``targets``), and the mean Pearson's r (column ``Pearson``); every manifest must hold the target columns,
on the same scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sertool.errors import SertoolError
from sertool.io.manifest import Utterance
from sertool.metrics import regression_scores
from sertool.scoring.evaluate import BOOTSTRAP_RESAMPLES, load_fold_checkpoint, score_ids
from sertool.training.targets import target_values

#: The columns of ``matrix.csv`` of regression runs (the fields of a cell, renamed).
COLUMNS = ("train", "test", "CCC", "ci_low", "ci_high", "n", "targets", "ECE", "Pearson", "run")


def score_regression_cell(parts, rows: list[Utterance], store, targets: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled true and predicted values ``(N, K)`` of a cell's ``(checkpoint path, ids)`` parts.

    Raises
    ------
    SertoolError
        A fold model that predicts other targets than ``targets``.
    ManifestError
        A scored row without a number in a target column.
    """
    by_id = {u.id: u for u in rows}
    truths, preds = [np.zeros((0, len(targets)))], [np.zeros((0, len(targets)))]
    for path, ids in parts:
        ckpt = load_fold_checkpoint(path, Path(path).parent.parent)
        if not ckpt.is_regression or list(ckpt.targets) != list(targets):
            raise SertoolError(f"{path}: predicts {', '.join(ckpt.outputs)}, not the targets {', '.join(targets)}; "
                               "retrain the run")
        if not ids:
            continue
        values = target_values(f"corpus {by_id[ids[0]].corpus}", [by_id[i] for i in ids], targets)
        truths.append(np.stack([values[i] for i in ids]))
        preds.append(score_ids(ckpt, ids, utterances=rows, stores=[(store, None)]).astype(np.float64))
    return np.concatenate(truths), np.concatenate(preds)


def mean_ccc_interval(true: np.ndarray, pred: np.ndarray, *, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean CCC over the K targets of ``true``, ``pred`` (N, K)."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(resamples):
        pick = rng.integers(0, len(true), len(true))
        means.append(np.mean([regression_scores(true[pick, k], pred[pick, k])["CCC"] for k in range(true.shape[1])]))
    return float(np.nanpercentile(means, 2.5)), float(np.nanpercentile(means, 97.5))


def regression_cell(cell_type, train: str, test: str, true: np.ndarray, pred: np.ndarray, run: str):
    """A ``cell_type`` (:class:`sertool.scoring.crosscorpus.Cell`) whose ``UA`` holds the mean CCC, ``classes``
    the number of targets and ``WA`` the mean Pearson's r (``ECE``: NaN); all NaN without two rows."""
    targets = true.shape[1]
    if len(true) < 2:
        return cell_type(train, test, np.nan, np.nan, np.nan, len(true), targets, np.nan, np.nan, run)
    scores = [regression_scores(true[:, k], pred[:, k]) for k in range(targets)]
    low, high = mean_ccc_interval(true, pred)
    return cell_type(train, test, float(np.mean([s["CCC"] for s in scores])), low, high, len(true), targets, np.nan,
                     float(np.mean([s["Pearson"] for s in scores])), run)
