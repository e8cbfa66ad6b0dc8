"""``compare``: one table of evaluated runs, with a paired bootstrap of each run against the first.

Reads each run's ``metrics.csv`` and ``predictions.csv`` (written by
``sertool evaluate``). When the runs scored the same test utterances (same
folds), the UA difference of every run to the first is bootstrapped *paired*:
the same resampled utterances score both runs, so the interval reflects the
difference, not the two runs' separate noise. ``p`` is the share of resamples
in which the run is not better than the first (one-sided). A run evaluated on fewer folds than it has
(``evaluate --allow-missing-folds``) shows ``k of n`` in the ``folds`` column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sertool.errors import SertoolError
from sertool.metrics import confusion, scores
from sertool.scoring.regression_compare import COLUMNS as REGRESSION_COLUMNS
from sertool.scoring.regression_compare import compare_regression_runs, is_regression_evaluation
from sertool.training.runs import damaged, read_csv_rows, read_run_info

COLUMNS = ("run", "model", "UA", "UA_ci95", "WA", "macro_F1", "UA_fold_mean", "UA_fold_std", "folds",
           "UA_diff", "UA_diff_ci95", "p_not_better")


@dataclass
class RunScores:
    run: Path
    model: str
    metrics: dict[tuple[str, str], float]
    predictions: dict[str, tuple[str, str]]  # id -> (label, predicted)

    @property
    def folds(self) -> list[str]:
        return sorted({f for f, _ in self.metrics if f.isdigit()}, key=int)

    @property
    def folds_text(self) -> str:
        """The folds scored: ``3``, or ``2 of 3`` for a run evaluated on fewer folds than it has."""
        total = self.metrics.get(("pooled", "folds_total"))
        scored = int(self.metrics.get(("pooled", "folds_scored"), len(self.folds)))
        return f"{scored} of {int(total)}" if total and scored < total else str(len(self.folds))


#: metrics every evaluated run's metrics.csv has
NEEDED = ("UA", "WA", "macro_F1")


def read_run_scores(run_dir) -> RunScores:
    """Scores of an evaluated run; SertoolError naming the command to run when it was not evaluated."""
    run_dir = Path(run_dir)
    metrics_path, predictions_path = run_dir / "metrics.csv", run_dir / "predictions.csv"
    if not metrics_path.exists() or not predictions_path.exists():
        raise SertoolError(f"{run_dir}: no metrics.csv / predictions.csv; run `sertool evaluate {run_dir}` first")
    fix = f"rerun `sertool evaluate {run_dir}`"
    metrics = _read_metrics(metrics_path, fix)
    rows = read_csv_rows(predictions_path, ("id", "label", "predicted"), what="predictions.csv", fix=fix)
    predictions = {r["id"]: (r["label"], r["predicted"]) for r in rows}
    return RunScores(run_dir, read_run_info(run_dir).get("model", "?"), metrics, predictions)


def _read_metrics(path: Path, fix: str) -> dict[tuple[str, str], float]:
    """(fold, metric) -> value of an evaluated run's metrics.csv; DamagedRunFile naming ``fix`` for a damaged one."""
    rows = read_csv_rows(path, ("fold", "metric", "value"), what="metrics.csv", fix=fix)
    try:
        metrics = {(r["fold"], r["metric"]): float(r["value"]) for r in rows}
    except ValueError:
        raise damaged(path, "a value that is not a number", fix) from None
    lacking = [m for m in NEEDED if ("pooled", m) not in metrics]
    if lacking:
        raise damaged(path, f"no pooled {', '.join(lacking)}", fix)
    return metrics


def paired_difference(base: RunScores, other: RunScores, *, resamples: int = 1000,
                      seed: int = 0) -> tuple[float, tuple[float, float], float] | None:
    """(UA difference other - base, its 95 % interval, p of "not better") over shared test ids; None if they differ."""
    if set(base.predictions) != set(other.predictions):
        return None
    ids = sorted(base.predictions)
    labels = sorted({base.predictions[i][0] for i in ids} | {p for run in (base, other)
                                                              for _, p in run.predictions.values()})
    index = {c: k for k, c in enumerate(labels)}
    truth = np.array([index[base.predictions[i][0]] for i in ids])
    a = np.array([index[base.predictions[i][1]] for i in ids])
    b = np.array([index[other.predictions[i][1]] for i in ids])

    def ua(pred, pick):
        return scores(confusion(truth[pick], pred[pick], len(labels)))["UA"]

    everything = np.arange(len(ids))
    diff = ua(b, everything) - ua(a, everything)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(resamples):
        pick = rng.integers(0, len(ids), len(ids))
        samples.append(ua(b, pick) - ua(a, pick))
    samples = np.array(samples)
    return diff, (float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))), float(np.mean(samples <= 0))


def compare_runs(run_dirs) -> list[dict]:
    """One row per run (see :data:`COLUMNS`); differences are against the first run.

    Evaluated regression runs (``train --target``) give one row per run and target instead
    (:func:`sertool.scoring.regression_compare.compare_regression_runs`); classifiers and regression runs do not mix.
    """
    kinds = [is_regression_evaluation(r) for r in run_dirs]
    if any(kinds):
        if not all(kinds):
            mixed = next(r for r, k in zip(run_dirs, kinds) if not k)
            raise SertoolError(f"{mixed}: not an evaluated regression run, unlike {run_dirs[kinds.index(True)]}; "
                               "compare classifiers with classifiers and regression runs with regression runs")
        return compare_regression_runs(run_dirs)
    runs = [read_run_scores(r) for r in run_dirs]
    rows = []
    for k, run in enumerate(runs):
        m = run.metrics
        folds = run.folds
        fold_ua = [m[f, "UA"] for f in folds]
        row = {"run": str(run.run), "model": run.model, "UA": m["pooled", "UA"], "WA": m["pooled", "WA"],
               "macro_F1": m["pooled", "macro_F1"],
               "UA_ci95": (m.get(("pooled", "UA_ci95_low")), m.get(("pooled", "UA_ci95_high"))),
               "UA_fold_mean": float(np.mean(fold_ua)) if fold_ua else float("nan"),
               "UA_fold_std": float(np.std(fold_ua)) if fold_ua else float("nan"), "folds": run.folds_text,
               "UA_diff": None, "UA_diff_ci95": None, "p_not_better": None}
        if k:
            paired = paired_difference(runs[0], run)
            if paired is not None:
                row["UA_diff"], row["UA_diff_ci95"], row["p_not_better"] = paired
        rows.append(row)
    return rows


def _cell(value, *, signed: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "" if value[0] is None else f"{value[0]:+.3f} to {value[1]:+.3f}" if signed else \
            f"{value[0]:.3f}-{value[1]:.3f}"
    if isinstance(value, float):
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    return str(value)


def _columns(rows: list[dict]) -> tuple[str, ...]:
    """The table's columns: :data:`COLUMNS`, or a regression comparison's."""
    return REGRESSION_COLUMNS if rows and "target" in rows[0] else COLUMNS


def _cells(row: dict) -> list[str]:
    columns = REGRESSION_COLUMNS if "target" in row else COLUMNS
    return [_cell(row[c], signed=c.endswith(("_diff", "_diff_ci95"))) for c in columns]


def markdown(rows: list[dict]) -> str:
    """The comparison as a Markdown table."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def write_csv(rows: list[dict], path) -> None:
    """The comparison as CSV (intervals as ``low-high``)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(_columns(rows))
        w.writerows([_cells(r) for r in rows])
