"""``evaluate`` of a regression run (``train --target``): CCC, Pearson, MAE and RMSE per target.

Writes into the run folder (or ``output``):

- ``metrics.csv``: fold, metric, value. Folds are ``0..k-1``, ``pooled`` (all test predictions together),
  ``mean`` and ``std`` over the folds. Metrics ``<M>_<target>`` for M in CCC, Pearson, MAE, RMSE, and
  ``CCC`` (the mean CCC over the targets); ``pooled`` also has 95 % bootstrap intervals
  ``<M>_<target>_ci95_low/high`` (:func:`sertool.metrics.regression_bootstrap_ci`, utterances resampled),
  ``folds_scored`` and ``folds_total``.
- ``predictions.csv``: ``id, speaker, fold``, then ``true_<target>, pred_<target>`` per target.
- ``scatter_<target>.png``: predicted against true values of the pooled test utterances, coloured by fold,
  with the identity line and the pooled CCC in the title.
- ``training_curves.png`` (networks: training and validation loss, validation CCC per epoch).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sertool.errors import SertoolError
from sertool.io.manifest import read_manifest
from sertool.metrics import REGRESSION_METRICS, regression_bootstrap_ci, regression_scores
from sertool.scoring.evaluate import (BOOTSTRAP_RESAMPLES, EvaluationResult, atomic_csv, load_fold_checkpoint,
                                      plot_curves, run_stores, score_ids)
from sertool.scoring.plots import plot_scatter
from sertool.training.runs import checkpoint_name, finished_folds, read_run_info, read_split
from sertool.training.targets import target_values


def target_scores(true: np.ndarray, pred: np.ndarray, targets: list[str]) -> dict[str, float]:
    """``<metric>_<target>`` -> value for every target (columns of ``true`` and ``pred`` (N, K)), and ``CCC``
    (the mean CCC over the targets)."""
    found = {}
    for k, name in enumerate(targets):
        found |= {f"{m}_{name}": v for m, v in regression_scores(true[:, k], pred[:, k]).items()}
    found["CCC"] = float(np.mean([found[f"CCC_{t}"] for t in targets]))
    return found


def _pooled(true: np.ndarray, pred: np.ndarray, targets: list[str]) -> dict:
    """:func:`target_scores` of the pooled predictions and their bootstrap intervals (``ci``)."""
    ci = {}
    for k, name in enumerate(targets):
        intervals = regression_bootstrap_ci(true[:, k], pred[:, k], resamples=BOOTSTRAP_RESAMPLES)
        ci |= {f"{m}_{name}": v for m, v in intervals.items()}
    return target_scores(true, pred, targets) | {"ci": ci}


def add_summaries(per_fold: dict, true: np.ndarray, pred: np.ndarray, targets: list[str], *, scored: int,
                  total: int) -> None:
    """Add ``pooled`` (scores of ``pred`` against ``true`` (N, K), bootstrap intervals, ``folds_scored`` of
    ``folds_total``), then ``mean`` and ``std`` over the folds already in ``per_fold``."""
    fold_names = list(per_fold)
    per_fold["pooled"] = _pooled(true, pred, targets) | {"folds_scored": scored, "folds_total": total}
    for label, reduce in (("mean", np.mean), ("std", np.std)):
        per_fold[label] = {k: float(reduce([per_fold[f][k] for f in fold_names])) for k in per_fold[fold_names[0]]}


def _score_folds(run_dir: Path, finished: list[Path], name: str, run_info: dict, *, utterances, manifest, stores,
                 batch_size: int, device: str, log) -> tuple[dict, list[str], list]:
    """Per fold (its name -> scores), the targets, and the scored rows ``(id, speaker, fold, true (K,), pred (K,))``."""
    per_fold, scored, targets = {}, [], None
    by_id = {u.id: u for u in utterances}
    for fold_dir in finished:
        ckpt = load_fold_checkpoint(fold_dir / name, run_dir, run_info)
        if not ckpt.is_regression or (targets is not None and list(ckpt.targets) != targets):
            raise SertoolError(f"{fold_dir / name}: not a regression model of targets {targets or run_info.get('targets')}"
                               f"; {run_dir}'s folds differ: retrain the run")
        targets = list(ckpt.targets)
        test_ids = read_split(fold_dir / "split.csv")["test"]
        if not test_ids:
            log(f"{fold_dir.name}: no test utterances (protocol all), skipped")
            continue
        missing = [i for i in test_ids if i not in by_id]
        if missing:
            raise SertoolError(f"{manifest}: lacks test utterance {missing[0]!r} of {fold_dir}; use the run's manifest")
        values = target_values(manifest, [by_id[i] for i in test_ids], targets)
        true = np.stack([values[i] for i in test_ids])
        pred = score_ids(ckpt, test_ids, utterances=utterances, stores=stores, batch_size=batch_size, device=device)
        fold = fold_dir.name.split("-")[1]
        per_fold[fold] = target_scores(true, pred.astype(np.float64), targets)
        log(f"fold {fold}: {len(test_ids)} test utterances, "
            + ", ".join(f"CCC {t} {per_fold[fold][f'CCC_{t}']:.3f}" for t in targets))
        scored += [(i, by_id[i].speaker, fold, t, p) for i, t, p in zip(test_ids, true, pred)]
    return per_fold, targets, scored


def evaluate_regression_run(run_dir, manifest=None, store=None, *, output=None, batch_size: int = 64,
                            selection: str | None = None, log=lambda m: None, device: str = "cpu",
                            allow_missing_folds: bool = False) -> EvaluationResult:
    """:func:`~sertool.scoring.evaluate.evaluate_run` of a regression run (same parameters; module docstring).

    Returns
    -------
    EvaluationResult
        ``task`` ``regression``; ``labels`` holds the target names; ``folds`` per fold, ``pooled`` (with
        ``ci``), ``mean`` and ``std``: ``<metric>_<target>`` -> value.
    """
    run_dir = Path(run_dir)
    output = Path(output or run_dir)
    output.mkdir(parents=True, exist_ok=True)
    run_info = read_run_info(run_dir)
    manifest = manifest or run_info.get("manifest")
    stores = run_stores(run_info, store)
    if not manifest or not stores[0][0]:
        raise SertoolError(f"{run_dir}: no run.json; pass MANIFEST and STORE explicitly")
    utterances = read_manifest(manifest)
    name = checkpoint_name(selection)
    finished, total = finished_folds(run_dir, name, info=run_info, allow_missing=allow_missing_folds, log=log)
    per_fold, targets, scored = _score_folds(run_dir, finished, name, run_info, utterances=utterances,
                                             manifest=manifest, stores=stores, batch_size=batch_size, device=device,
                                             log=log)
    if not scored:
        raise SertoolError(f"{run_dir}: no fold has test utterances (trained with --protocol all?); "
                           "evaluate a cross-validated run instead")
    true, pred = np.stack([r[3] for r in scored]), np.stack([r[4] for r in scored]).astype(np.float64)
    add_summaries(per_fold, true, pred, targets, scored=len(finished), total=total)
    title = f"{run_dir.name} ({run_info.get('model', '?')})"
    write_outputs(output, per_fold, targets, scored, title=title)
    plot_curves(finished, output / "training_curves.png", title=title, log=log)
    return EvaluationResult(per_fold, targets, output, len(finished), total, task="regression")


def write_outputs(out_dir: Path, per_fold: dict, targets: list[str], scored: list, *, title: str) -> None:
    """metrics.csv, predictions.csv and one scatter PNG per target.

    ``scored``: the rows of predictions.csv, ``(id, speaker, fold, true (K,), pred (K,))``; the scatter colours
    points by their fold and titles each target with the ``pooled`` CCC of ``per_fold``.
    """
    rows = []
    for fold, s in per_fold.items():
        for key, value in s.items():
            if key == "ci":
                continue
            rows.append([fold, key, int(value) if key in ("folds_scored", "folds_total") else f"{value:.6f}"])
            if key in s.get("ci", {}):
                rows += [[fold, f"{key}_ci95_low", f"{s['ci'][key][0]:.6f}"],
                         [fold, f"{key}_ci95_high", f"{s['ci'][key][1]:.6f}"]]
    atomic_csv(out_dir / "metrics.csv", ["fold", "metric", "value"], rows)
    columns = [c for t in targets for c in (f"true_{t}", f"pred_{t}")]
    atomic_csv(out_dir / "predictions.csv", ["id", "speaker", "fold", *columns],
               [[i, speaker, fold, *(f"{v:.5f}" for k in range(len(targets)) for v in (t[k], p[k]))]
                for i, speaker, fold, t, p in scored])
    folds = np.array([r[2] for r in scored])
    for k, target in enumerate(targets):
        true = np.array([r[3][k] for r in scored])
        pred = np.array([r[4][k] for r in scored])
        ccc = per_fold["pooled"][f"CCC_{target}"]
        plot_scatter(true, pred, folds, out_dir / scatter_name(target),
                     title=f"{title}: {target}, pooled CCC {ccc:.3f}", what=target)


def scatter_name(target: str) -> str:
    """``scatter_<target>.png``, the target's name made safe for a file name."""
    return f"scatter_{re.sub(r'[^A-Za-z0-9_.-]+', '_', target)}.png"


def summary_table(result: EvaluationResult) -> str:
    """One screen: CCC per target per fold, pooled, mean and std; then the pooled intervals of every metric."""
    targets = result.labels
    lines = []
    if result.partial:
        lines.append(f"PARTIAL: {result.folds_scored} of {result.folds_total} folds scored; pooled, mean and std "
                     "cover those folds only")
    lines.append(f"{'fold':>8} " + " ".join(f"{'CCC ' + t:>14}" for t in targets))
    for fold, s in result.folds.items():
        lines.append(f"{fold:>8} " + " ".join(f"{s[f'CCC_{t}']:14.3f}" for t in targets))
    pooled = result.folds["pooled"]
    for t in targets:
        lines.append(f"pooled {t} ({BOOTSTRAP_RESAMPLES} bootstrap resamples, 95 % CI): " + ", ".join(
            f"{m} {pooled[f'{m}_{t}']:.3f} [{pooled['ci'][f'{m}_{t}'][0]:.3f}, {pooled['ci'][f'{m}_{t}'][1]:.3f}]"
            for m in REGRESSION_METRICS))
    return "\n".join(lines)
