"""Cross-corpus scoring: a run's fold models on another corpus (``evaluate --on``), over the classes both share.

Utterances whose label the model does not know are left out (``--label-map`` renames them first); the
model's classes the corpus lacks are dropped, and the probabilities renormalised over the shared
classes (:func:`over_shared_classes`), the usual cross-corpus definition of UA.

A regression run (``train --target``) scores every row of the other corpus with a number in each of the run's
target columns (the other manifest must have columns of the same names); its fold models and their ensemble
(the mean of their values) get CCC, Pearson, MAE and RMSE per target
(:func:`evaluate_regression_cross_corpus`).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from sertool.errors import ManifestError, SertoolError
from sertool.io.manifest import COLUMNS, read_manifest
from sertool.scoring.evaluate import (EvaluationResult, _add_summaries, _temperature, _write_outputs, fold_scores,
                                      load_fold_checkpoint, prediction_row, score_ids)
from sertool.scoring.regression import add_summaries, target_scores, write_outputs
from sertool.training.runs import checkpoint_name, finished_folds, read_run_info
from sertool.training.targets import target_values


def read_label_map(path) -> dict[str, str]:
    """``from,to`` rows of a CSV (header optional) -> {corpus label: model label}."""
    mapping = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for k, row in enumerate(csv.reader(fh), start=1):
            if not row or row[0].startswith("#") or (k == 1 and [c.strip() for c in row[:2]] == ["from", "to"]):
                continue
            if len(row) != 2:
                raise SertoolError(f"{path}, line {k}: a label map row is 'from,to' (got {row!r})")
            mapping[row[0].strip()] = row[1].strip()
    return mapping


def over_shared_classes(probs: np.ndarray, labels: list[str], shared: list[str]) -> np.ndarray:
    """``probs`` restricted to the classes ``shared`` and renormalised over them (cross-corpus UA's definition).

    Parameters
    ----------
    probs
        ``(N, C)`` probabilities over ``labels``.
    labels
        The model's C classes.
    shared
        The S classes kept (a subset of ``labels``; their order is the columns' order).

    Returns
    -------
    numpy.ndarray
        ``(N, S)`` float32, rows summing to 1 (uniform where the model gave the shared classes no mass).
    """
    kept = np.asarray(probs, np.float64)[:, [labels.index(c) for c in shared]]
    total = kept.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, kept / total, 1.0 / max(len(shared), 1)).astype(np.float32)


def _common_labels(run_dir, checkpoints) -> list[str]:
    """The classes every fold's model knows; SertoolError when they differ (a ``--protocol loco`` run), or for
    a regression run."""
    if any(c.is_regression for _, c in checkpoints):
        raise SertoolError(f"{run_dir}: a regression run (train --target); score it on another corpus with "
                           "evaluate_regression_cross_corpus (`sertool evaluate RUN --on MANIFEST STORE` does)")
    labels = list(checkpoints[0][1].labels)
    if any(list(c.labels) != labels for _, c in checkpoints):
        raise SertoolError(f"{run_dir}: its folds' models know different classes (a --protocol loco run); score one "
                           "fold's checkpoint with predict, or use sertool crosscorpus")
    return labels


def evaluate_cross_corpus(run_dir, manifest, store, *, label_map: dict[str, str] | None = None, output=None,
                          selection: str | None = None, batch_size: int = 64, log=lambda m: None,
                          allow_missing_folds: bool = False) -> EvaluationResult:
    """Score every fold's model of ``run_dir`` on all utterances of another corpus (``manifest`` + ``store``).

    Utterances whose label the model does not know are listed and left out; the model's classes the corpus
    lacks are dropped too, probabilities renormalised over the classes both share
    (:func:`over_shared_classes`), so every score is over the shared classes. Folds are the fold models;
    ``pooled`` is their ensemble (mean probabilities); ``mean``/``std`` are over the fold models.
    Speaker-normalised models use each speaker of the other corpus's own statistics.

    Parameters
    ----------
    run_dir
        A trained run folder (not a fused one).
    manifest, store
        The other corpus's labelled manifest CSV and its feature store.
    label_map
        Corpus label -> model label; identity when absent.
    output
        Folder of the files :func:`evaluate_run` writes; default ``RUN_DIR/cross-<manifest stem>``.
    selection, batch_size, log, allow_missing_folds
        As for :func:`evaluate_run`.

    Returns
    -------
    EvaluationResult
        Scores per fold model, of their ensemble (``pooled``), ``mean`` and ``std``.

    Raises
    ------
    SertoolError
        A fused run, folds without a checkpoint, damaged run files, unlabelled rows, or fewer than two
        classes shared by the corpus and the model.
    """
    run_dir = Path(run_dir)
    output, checkpoints, total = _fold_models(run_dir, manifest, output, selection, allow_missing_folds, log)
    finished = [d for d, _ in checkpoints]
    labels = _common_labels(run_dir, checkpoints)
    utterances = read_manifest(manifest)
    ids, mapped, model_labels, labels = _shared_rows(manifest, utterances, labels, label_map or {}, log)
    index = {c: k for k, c in enumerate(labels)}
    truth = np.array([index[mapped[i]] for i in ids])
    per_fold, all_probs = {}, []
    for fold_dir, ckpt in checkpoints:
        probs = score_ids(ckpt, ids, utterances=utterances, stores=[(store, None)], batch_size=batch_size)
        probs = over_shared_classes(probs, model_labels, labels)
        fold_name = fold_dir.name.split("-")[1]
        per_fold[fold_name] = fold_scores(truth, probs, len(labels)) | _temperature(ckpt)
        log(f"fold {fold_name} model: UA {per_fold[fold_name]['UA']:.3f} WA {per_fold[fold_name]['WA']:.3f} "
            f"on {len(ids)} utterances of {Path(manifest).name}")
        all_probs.append(probs)
    ensemble = np.mean(all_probs, axis=0)
    _add_summaries(per_fold, truth, ensemble, len(labels), scored=len(finished), total=total)
    by_id = {u.id: u for u in utterances}
    rows = [prediction_row(by_id[i], p, labels, labels[t], "ensemble") for i, p, t in zip(ids, ensemble, truth)]
    _write_outputs(output, per_fold, labels, rows, title=f"{run_dir.name} on {Path(manifest).stem}")
    return EvaluationResult(per_fold, labels, output, len(finished), total)


def _fold_models(run_dir: Path, manifest, output, selection, allow_missing_folds: bool, log):
    """``(output folder, [(fold folder, checkpoint)], the run's fold count)``; SertoolError for a fused run."""
    info = read_run_info(run_dir)
    if info.get("members"):
        raise SertoolError(f"{run_dir}: cross-corpus evaluation of a fused run is not supported; evaluate its "
                           "members with --on")
    output = Path(output or run_dir / f"cross-{Path(manifest).stem}")
    output.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(selection)
    finished, total = finished_folds(run_dir, name, info=info, allow_missing=allow_missing_folds, log=log)
    return output, [(d, load_fold_checkpoint(d / name, run_dir, info)) for d in finished], total


def evaluate_regression_cross_corpus(run_dir, manifest, store, *, output=None, selection: str | None = None,
                                     batch_size: int = 64, device: str = "cpu", log=lambda m: None,
                                     allow_missing_folds: bool = False) -> EvaluationResult:
    """Score every fold's model of a regression run on the rows of another corpus that have its target values.

    Parameters
    ----------
    run_dir
        A regression run folder (``train --target``; not a fused one).
    manifest, store
        The other corpus's manifest CSV, with columns named as the run's targets, and its feature store. Rows
        without a number in every target column are left out (logged); augmented copies too.
    output, selection, batch_size, device, log, allow_missing_folds
        As for :func:`evaluate_cross_corpus` (``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``).

    Returns
    -------
    EvaluationResult
        ``task`` ``regression``: per fold model ``<metric>_<target>`` and ``CCC``; ``pooled`` is their ensemble
        (the mean of their values, with bootstrap intervals); ``mean``/``std`` over the fold models. Writes
        metrics.csv, predictions.csv (fold ``ensemble``) and scatter_<target>.png
        (:func:`sertool.scoring.regression.write_outputs`).

    Raises
    ------
    ManifestError
        The manifest lacks a target column, or no row has a number in every one.
    SertoolError
        A fused run, folds of other targets, folds without a checkpoint, or damaged run files.
    """
    run_dir = Path(run_dir)
    output, checkpoints, total = _fold_models(run_dir, manifest, output, selection, allow_missing_folds, log)
    targets = list(checkpoints[0][1].targets)
    if any(not c.is_regression or list(c.targets) != targets for _, c in checkpoints):
        raise SertoolError(f"{run_dir}: not a regression run whose folds all predict the same targets; evaluate a "
                           "classifier with evaluate_cross_corpus, or retrain the run")
    utterances = read_manifest(manifest)
    ids, true = target_rows(manifest, utterances, targets, log)
    per_fold, preds = {}, []
    for fold_dir, ckpt in checkpoints:
        pred = score_ids(ckpt, ids, utterances=utterances, stores=[(store, None)], batch_size=batch_size,
                         device=device).astype(np.float64)
        fold = fold_dir.name.split("-")[1]
        per_fold[fold] = target_scores(true, pred, targets)
        log(f"fold {fold} model: " + ", ".join(f"CCC {t} {per_fold[fold][f'CCC_{t}']:.3f}" for t in targets)
            + f" on {len(ids)} utterances of {Path(manifest).name}")
        preds.append(pred)
    ensemble = np.mean(preds, axis=0)
    add_summaries(per_fold, true, ensemble, targets, scored=len(checkpoints), total=total)
    by_id = {u.id: u for u in utterances}
    scored = [(i, by_id[i].speaker, "ensemble", t, p) for i, t, p in zip(ids, true, ensemble)]
    write_outputs(output, per_fold, targets, scored, title=f"{run_dir.name} on {Path(manifest).stem}")
    return EvaluationResult(per_fold, targets, output, len(checkpoints), total, task="regression")


def target_rows(manifest, utterances, targets: list[str], log=lambda m: None) -> tuple[list[str], np.ndarray]:
    """The ids of the rows (not augmented copies) with a number in every column of ``targets``, and their values.

    Returns
    -------
    tuple
        ``(ids, values (N, K) float64)``; rows with an empty or non-numeric target cell are left out (logged).

    Raises
    ------
    ManifestError
        A column of ``targets`` the manifest lacks (naming it and the columns there are), or no row left.
    """
    present = {k for u in utterances for k in u.extra} | (set(COLUMNS) - {"id", "path"})
    missing = [t for t in targets if t not in present]
    if missing:
        extra = sorted({k for u in utterances for k in u.extra})
        raise ManifestError(f"{manifest}: no column {missing[0]!r}, a target of the run ({', '.join(targets)}); its "
                            f"extra columns: {', '.join(extra) or 'none'}; name the other corpus's column "
                            f"{missing[0]!r} (same scale as the training corpus's)")
    ids, values, left_out = [], [], []
    for u in utterances:
        if u.source_id:
            continue
        try:
            values.append(target_values(manifest, [u], targets)[u.id])
        except ManifestError:  # an empty or non-numeric cell: the row has no truth to score against
            left_out.append(u.id)
            continue
        ids.append(u.id)
    if left_out:
        log(f"left out {len(left_out)} row(s) of {Path(manifest).name} without a number in every target column "
            f"({', '.join(targets)}; e.g. {left_out[0]!r})")
    if not ids:
        raise ManifestError(f"{manifest}: no row has a number in every target column ({', '.join(targets)}); "
                            "fill them in")
    return ids, np.stack(values)


def _shared_rows(manifest, utterances, labels: list[str], label_map: dict[str, str], log):
    """The ids scored on another corpus and the classes they share with the model.

    Returns ``(ids, mapped, model_labels, labels)``: the utterances whose (mapped) label the model knows, id ->
    mapped label, the model's classes, and the classes both share (in the model's order).

    Raises
    ------
    SertoolError
        Unlabelled rows, no row of a model class, or fewer than two shared classes.
    """
    unlabelled = [u.id for u in utterances if not u.label]
    if unlabelled:
        raise SertoolError(f"{manifest}: {len(unlabelled)} rows have no label (e.g. {unlabelled[0]!r}); "
                           "cross-corpus evaluation needs labels")
    mapped = {u.id: label_map.get(u.label, u.label) for u in utterances if not u.source_id}
    left_out = Counter(u.label for u in utterances if u.id in mapped and mapped[u.id] not in labels)
    if left_out:
        log("left out (label not in the model; map it with --label-map): "
            + ", ".join(f"{label} ({n})" for label, n in sorted(left_out.items())))
    ids = [i for i, label in mapped.items() if label in labels]
    if not ids:
        raise SertoolError(f"{manifest}: no utterance has a label of the model ({', '.join(labels)}); "
                           "pass --label-map FROM,TO rows")
    model_labels, labels = labels, [c for c in labels if c in {mapped[i] for i in ids}]
    if len(labels) < 2:  # renormalised over one class, every utterance would be scored right
        raise SertoolError(f"{manifest}: shares only class {labels[0]} with the model ({', '.join(model_labels)}); "
                           "cross-corpus UA needs two or more shared classes: map labels with --label-map")
    if len(labels) < len(model_labels):
        log(f"scored over the {len(labels)} classes {Path(manifest).name} shares with the model (probabilities "
            f"renormalised over them); not in it: {', '.join(c for c in model_labels if c not in labels)}")
    return ids, mapped, model_labels, labels
