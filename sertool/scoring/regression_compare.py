"""``compare`` of evaluated regression runs: one row per run and target, with a paired bootstrap of the CCC.

Reads each run's ``metrics.csv`` and ``predictions.csv`` as :mod:`sertool.scoring.regression` writes them.
When two runs scored the same test utterances, the CCC difference of a run to the first is bootstrapped
*paired* (the same resampled utterances score both), as :mod:`sertool.scoring.compare` does for UA.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sertool.errors import SertoolError
from sertool.metrics import concordance
from sertool.training.runs import damaged, read_csv_rows, read_run_info

COLUMNS = ("run", "model", "target", "CCC", "CCC_ci95", "Pearson", "MAE", "RMSE", "CCC_fold_mean", "CCC_fold_std",
           "folds", "CCC_diff", "CCC_diff_ci95", "p_not_better")


@dataclass
class RegressionScores:
    """An evaluated regression run: (fold, metric) -> value, and id -> {column: value} of its predictions."""

    run: Path
    model: str
    targets: list[str]
    metrics: dict[tuple[str, str], float]
    predictions: dict[str, dict[str, float]]

    @property
    def folds(self) -> list[str]:
        return sorted({f for f, _ in self.metrics if f.isdigit()}, key=int)


def is_regression_evaluation(run_dir) -> bool:
    """Whether ``run_dir``'s ``metrics.csv`` is a regression run's (a pooled ``CCC``, no pooled ``UA``)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return False
    rows = read_csv_rows(path, ("fold", "metric", "value"), what="metrics.csv", fix=f"rerun `sertool evaluate {run_dir}`")
    pooled = {r["metric"] for r in rows if r["fold"] == "pooled"}
    return "CCC" in pooled and "UA" not in pooled


def read_regression_scores(run_dir) -> RegressionScores:
    """The scores of an evaluated regression run; DamagedRunFile (naming ``evaluate``) for a damaged file."""
    run_dir = Path(run_dir)
    fix = f"rerun `sertool evaluate {run_dir}`"
    if not (run_dir / "predictions.csv").exists():
        raise SertoolError(f"{run_dir}: no predictions.csv; run `sertool evaluate {run_dir}` first")
    rows = read_csv_rows(run_dir / "metrics.csv", ("fold", "metric", "value"), what="metrics.csv", fix=fix)
    try:
        metrics = {(r["fold"], r["metric"]): float(r["value"]) for r in rows}
    except ValueError:
        raise damaged(run_dir / "metrics.csv", "a value that is not a number", fix) from None
    predictions = read_csv_rows(run_dir / "predictions.csv", ("id",), what="predictions.csv", fix=fix)
    targets = [c[5:] for c in (predictions[0] if predictions else {}) if c.startswith("pred_")]
    try:
        values = {r["id"]: {c: float(r[c]) for c in r if c.startswith(("true_", "pred_"))} for r in predictions}
    except ValueError:
        raise damaged(run_dir / "predictions.csv", "a value that is not a number", fix) from None
    return RegressionScores(run_dir, read_run_info(run_dir).get("model", "?"), targets, metrics, values)


def paired_ccc_difference(base: RegressionScores, other: RegressionScores, target: str, *, resamples: int = 1000,
                          seed: int = 0) -> tuple[float, tuple[float, float], float] | None:
    """(CCC difference other - base on ``target``, its 95 % interval, p of "not better"); None without shared ids."""
    if set(base.predictions) != set(other.predictions) or target not in other.targets:
        return None
    ids = sorted(base.predictions)
    truth = np.array([base.predictions[i][f"true_{target}"] for i in ids])
    a = np.array([base.predictions[i][f"pred_{target}"] for i in ids])
    b = np.array([other.predictions[i][f"pred_{target}"] for i in ids])
    diff = concordance(truth, b) - concordance(truth, a)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(resamples):
        pick = rng.integers(0, len(ids), len(ids))
        samples.append(concordance(truth[pick], b[pick]) - concordance(truth[pick], a[pick]))
    samples = np.array(samples)
    return (float(diff), (float(np.nanpercentile(samples, 2.5)), float(np.nanpercentile(samples, 97.5))),
            float(np.mean(samples <= 0)))


def _row(run: RegressionScores, target: str) -> dict:
    m = run.metrics
    fold_ccc = [m[f, f"CCC_{target}"] for f in run.folds if (f, f"CCC_{target}") in m]
    return {"run": str(run.run), "model": run.model, "target": target, "CCC": m.get(("pooled", f"CCC_{target}")),
            "CCC_ci95": (m.get(("pooled", f"CCC_{target}_ci95_low")), m.get(("pooled", f"CCC_{target}_ci95_high"))),
            "Pearson": m.get(("pooled", f"Pearson_{target}")), "MAE": m.get(("pooled", f"MAE_{target}")),
            "RMSE": m.get(("pooled", f"RMSE_{target}")),
            "CCC_fold_mean": float(np.mean(fold_ccc)) if fold_ccc else float("nan"),
            "CCC_fold_std": float(np.std(fold_ccc)) if fold_ccc else float("nan"), "folds": str(len(run.folds)),
            "CCC_diff": None, "CCC_diff_ci95": None, "p_not_better": None}


def compare_regression_runs(run_dirs) -> list[dict]:
    """One row per run and target (:data:`COLUMNS`); differences are against the first run, target by target."""
    runs = [read_regression_scores(r) for r in run_dirs]
    rows = []
    for k, run in enumerate(runs):
        for target in run.targets:
            row = _row(run, target)
            paired = paired_ccc_difference(runs[0], run, target) if k else None
            if paired is not None:
                row["CCC_diff"], row["CCC_diff_ci95"], row["p_not_better"] = paired
            rows.append(row)
    return rows
