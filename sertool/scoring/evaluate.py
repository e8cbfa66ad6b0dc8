"""``evaluate``: score every fold of a run on its test speakers, per fold and pooled.

Writes into the run folder (or ``output``):

- ``metrics.csv``: fold, metric, value. Folds are ``0..k-1``, ``pooled`` (all
  test predictions together), ``mean`` and ``std`` (mean and population
  standard deviation of the per-fold values).
  Metrics: WA (accuracy), UA (mean per-class recall), macro_F1, ECE
  (expected calibration error, 10 equal-width confidence bins), Brier
  (multi-class Brier score), ``temperature`` (the fold checkpoint's
  calibrated softmax temperature, :mod:`sertool.training.calibration`; the
  probabilities scored are calibrated) and ``precision/recall/f1/support_<class>``;
  ``pooled`` also has 95 % bootstrap intervals ``<metric>_ci95_low/high`` (none for UA and macro-F1 when
  every test utterance is of one class: they would be one class's recall and F1), ``folds_scored`` and
  ``folds_total`` (fewer scored than the run has: folds never trained, or ``--allow-missing-folds``); every fold and
  ``pooled`` have ``test_classes``, the number of classes among the test utterances (1: UA is that
  class's recall, not a mean over classes).
- ``confusion.csv``: fold, kind (``counts`` | ``row_normalised``), true label,
  one column per predicted label.
- ``predictions.csv``: the layout of ``predict`` with a manifest (:mod:`sertool.inference.rows`): path, id,
  speaker, label, predicted, confidence, p_<class>..., duration, error; then ``fold`` (the fold whose model
  scored the utterance; ``ensemble`` for cross-corpus evaluation).
- ``confusion.png``: the pooled row-normalised confusion matrix.
- ``reliability.png``: the pooled reliability diagram (accuracy against confidence per bin, bin counts below).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sertool.errors import CheckpointError, SertoolError, StoreError
from sertool.features import config_from_dict
from sertool.features.normalise import checkpoint_sets, fit_normaliser, from_checkpoint, set_normaliser
from sertool.inference.engine import Scorer
from sertool.inference.rows import header, score_row
from sertool.inference.runner import fuse
from sertool.io.atomic import atomic_write
from sertool.io.manifest import read_manifest
from sertool.metrics import bootstrap_ci, calibration_scores, confusion, reliability_bins, scores
from sertool.models.checkpoint import Checkpoint
from sertool.models.targets import classifier
from sertool.scoring.plots import plot_confusion, plot_fold_confusions, plot_reliability, plot_training_curves
from sertool.store.reader import FeatureStore
from sertool.training.runs import (checkpoint_name, damaged, finished_folds, read_run_info, read_split, read_train_log,
                                   rewrite_hint)

#: Bootstrap samples (utterances drawn with replacement, seed 0) behind the pooled 95 % intervals.
BOOTSTRAP_RESAMPLES = 1000


@dataclass
class EvaluationResult:
    """Scores per fold name (and ``pooled``, ``mean``, ``std``), the labels, the output folder, and how many
    of the run's folds were scored (fewer than ``folds_total``: folds never trained, ``train --fold``, or
    lost ones left out by ``allow_missing_folds``)."""

    folds: dict[str, dict]  # fold name -> scores
    labels: list[str]
    out_dir: Path
    folds_scored: int | None = None
    folds_total: int | None = None
    #: ``classification``, or ``regression`` (``labels`` then holds the target names: :mod:`sertool.scoring.regression`)
    task: str = "classification"

    @property
    def partial(self) -> bool:
        """Whether some of the run's folds were not scored."""
        return bool(self.folds_total) and (self.folds_scored or 0) < self.folds_total


def load_fold_checkpoint(path, run_dir, info: dict | None = None):
    """The :class:`~sertool.models.checkpoint.Checkpoint` of a run's fold; a damaged one names the fix.

    Raises
    ------
    CheckpointError
        An empty or unreadable file: the message says how to train the fold again.
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise damaged(path, "0 bytes", f"to train the fold again, {rewrite_hint(run_dir, info)}")
    try:
        return Checkpoint.load(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}; to train the fold again, {rewrite_hint(run_dir, info)}") from None


def check_store_matches(opened, checkpoint, store) -> None:
    """Raise StoreError when an opened store's feature config differs from the checkpoint's.

    Parameters
    ----------
    opened : sertool.store.reader.FeatureStore
        The store, open.
    checkpoint : sertool.models.checkpoint.Checkpoint
        The model whose features it must hold.
    store : str or Path
        The store's path (named in the message).

    Raises
    ------
    StoreError
        Another feature set or other feature settings than the checkpoint's.
    """
    want = config_from_dict(checkpoint.feature_config)
    have = config_from_dict(opened.attrs["config"])
    if want.config_hash() != have.config_hash():
        raise StoreError(
            f"{store}: features {opened.attrs['feature_set']} (config {have.config_hash()[:8]}) differ from the "
            f"checkpoint's {checkpoint.feature_set} (config {want.config_hash()[:8]}); extract with "
            f"`--features {checkpoint.feature_set}` and the checkpoint's settings"
        )


def test_normaliser(checkpoint, store, utterances, test_ids: list[str]):
    """The checkpoint's normaliser, with each test speaker's own statistics for ``speaker`` mode."""
    if checkpoint.norm_mode == "speaker":
        return fit_normaliser("speaker", store, utterances, train_ids=[], other_ids=test_ids)
    if checkpoint.norm_mode == "set":  # training corpora: their stored statistics; any other: its own rows
        recorded = from_checkpoint(checkpoint)
        normaliser = set_normaliser(store, utterances, train_ids=[], other_ids=test_ids,
                                    known=checkpoint_sets(checkpoint))
        normaliser.mean, normaliser.std = recorded.mean, recorded.std
        return normaliser
    return from_checkpoint(checkpoint)


def score_ids(checkpoint, ids: list[str], *, utterances, stores: list[tuple], batch_size: int = 64,
              device: str = "cpu") -> np.ndarray:
    """Class probabilities of utterances ``ids`` from their stored features, scored as ``predict`` scores them.

    The stored features go through the scoring engine
    (:class:`sertool.inference.engine.Scorer`): the checkpoint's normaliser,
    the one window planner (a clip longer than (1 + crop tolerance) x the
    model's input is scored in windows, their probabilities averaged) and
    the model's runner, so each clip's probabilities equal ``predict``'s on
    its audio file.

    Parameters
    ----------
    checkpoint
        A checkpoint, or a fused one (probabilities: :func:`sertool.inference.runner.fuse` of its members').
    ids
        Manifest ids to score.
    utterances
        The manifest's utterances (speakers for ``speaker`` normalisation, durations).
    stores
        ``(store, utterance_store or None)`` paths: one pair for a plain checkpoint, one per member (in
        order) for a fused one.
    batch_size, device
        Windows per forward pass, and ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns
    -------
    numpy.ndarray
        ``(N, C)`` float32 probabilities, rows in the order of ``ids``.

    Raises
    ------
    StoreError
        A store with other features than the checkpoint's, or without some of ``ids``.
    """
    if checkpoint.is_fusion:
        members = checkpoint.member_checkpoints()
        if len(stores) != len(members):
            raise SertoolError(f"fused model of {len(members)} members given {len(stores)} feature stores")
        return fuse([score_ids(m, ids, utterances=utterances, stores=[pair], batch_size=batch_size, device=device)
                     for m, pair in zip(members, stores)], checkpoint.model_config["weights"])
    joined = _joined_store(checkpoint, *stores[0])
    missing = [i for i in ids if i not in joined]
    if missing:
        raise StoreError(f"{stores[0][0]}: no features for {len(missing)} utterance(s) (e.g. {missing[0]!r}); "
                         "rerun `sertool extract` on this manifest")
    normaliser = test_normaliser(checkpoint, joined, utterances, ids)
    scorer = Scorer(checkpoint, batch_size=batch_size, device=device)
    duration = {u.id: u.duration for u in utterances}
    items = ((i, joined[i], duration.get(i, 0.0)) for i in ids)
    probs = [p for _, p in scorer.score_many(items, normaliser)]
    return np.stack(probs).astype(np.float32) if probs else np.zeros((0, len(checkpoint.labels)), np.float32)


def _joined_store(checkpoint, store, utterance_store):
    """The checkpoint's stored features (frame store + utterance store when it uses one), checked against it."""
    from sertool.training.data import JoinedStore  # torch: heavy (the training datasets), loaded when scoring

    with FeatureStore(store) as opened:
        check_store_matches(opened, checkpoint, store)
    joined = JoinedStore(store, utterance_store if checkpoint.utterance_feature_config else None)
    if joined.dim != len(checkpoint.norm_mean):
        raise StoreError(f"{store}: features have {joined.dim} columns but the checkpoint's normalisation "
                         f"{len(checkpoint.norm_mean)}; evaluate with the run's own store, or retrain")
    return joined


def prediction_row(utterance, probs: np.ndarray, labels: list[str], truth: str, fold: str) -> list[str]:
    """One row of evaluate's predictions.csv: predict's manifest layout (:mod:`sertool.inference.rows`), then fold.

    ``probs``: the utterance's ``(C,)`` probabilities; ``truth``: its label as the model names it.
    """
    return [*score_row(utterance.path, probs, utterance.duration, labels, None,
                       [utterance.id, utterance.speaker, truth], decimals=5), fold]


#: Metrics with a mean and std over folds (and a pooled bootstrap interval).
SUMMARISED = ("WA", "UA", "macro_F1", "ECE", "Brier")
#: Counts written to metrics.csv as integers: classes among the test utterances, folds scored of the run's.
COUNTS = ("test_classes", "folds_scored", "folds_total")


def fold_scores(truth: np.ndarray, probs: np.ndarray, num_classes: int) -> dict:
    """Scores of one fold: WA, UA, macro-F1, per-class scores, ``confusion``, ECE and Brier.

    Parameters
    ----------
    truth
        ``(N,)`` class indices.
    probs
        ``(N, C)`` (calibrated) probabilities.
    num_classes
        C.
    """
    matrix = confusion(truth, probs.argmax(1), num_classes)
    return (scores(matrix) | {"confusion": matrix, "test_classes": class_count(truth)}
            | calibration_scores(probs, truth))


def class_count(truth: np.ndarray) -> int:
    """How many classes the ``(N,)`` true class indices hold."""
    return int(len(np.unique(truth)))


def one_class_note(name: str, truth: np.ndarray, labels: list[str]) -> str | None:
    """The note for a set of test utterances of a single class (None for two or more classes).

    Parameters
    ----------
    name
        What was scored (``fold 0``, ``pooled``).
    truth
        ``(N,)`` class indices into ``labels``.
    labels
        Class names.
    """
    if class_count(truth) >= 2 or not len(truth):
        return None
    return (f"note: {name}: every test utterance is of class {labels[int(truth[0])]}, so its UA and F1 are that "
            "class's recall and F1, not means over classes")


def _add_summaries(per_fold: dict, truth: np.ndarray, probs: np.ndarray, num_classes: int, *,
                   scored: int | None = None, total: int | None = None) -> None:
    """Add ``pooled`` (scores, confusion, reliability bins, bootstrap intervals of ``truth`` (N,) against
    ``probs`` (N, C); ``folds_scored`` of ``folds_total`` when given), ``mean`` and ``std`` over the folds
    already in ``per_fold``."""
    fold_names = list(per_fold)
    ci = bootstrap_ci(truth, probs.argmax(1), num_classes, resamples=BOOTSTRAP_RESAMPLES, probs=probs)
    if class_count(truth) < 2:  # one class: UA and F1 are its recall and F1, their interval says nothing
        ci = {k: v for k, v in ci.items() if k not in ("UA", "macro_F1")}
    per_fold["pooled"] = fold_scores(truth, probs, num_classes) | {
        "reliability": reliability_bins(probs, truth), "ci": ci}
    if total:
        per_fold["pooled"] |= {"folds_scored": scored, "folds_total": total}
    for name, reduce in (("mean", np.mean), ("std", np.std)):
        per_fold[name] = {k: float(reduce([per_fold[f][k] for f in fold_names])) for k in SUMMARISED}


def run_stores(run_info: dict, store=None) -> list[tuple]:
    """The (store, utterance store) pairs a run's checkpoints read: its own, or each fused member's.

    Parameters
    ----------
    run_info : dict
        The run's ``run.json``.
    store : str or Path, optional
        A store to score instead of the run's own (not for a fused run).

    Returns
    -------
    list of tuple
        ``(store, utterance store or None)`` paths: one pair, or one per fused member in order.

    Raises
    ------
    SertoolError
        ``store`` given for a fused run.
    """
    if run_info.get("members"):
        if store:
            raise SertoolError("a fused run reads each member's own store; pass no STORE (or evaluate the members)")
        return [(m["store"], m.get("utterance_store")) for m in run_info["members"]]
    return [(store or run_info.get("store"), run_info.get("utterance_store"))]


def _test_truth(fold_dir: Path, test_ids: list[str], by_id: dict, labels: list[str], manifest) -> np.ndarray:
    """The ``(N,)`` class indices (into ``labels``) of a fold's test utterances ``test_ids``.

    Raises ``SertoolError`` when ``manifest`` lacks one of them or one has a label the model was not trained on.
    """
    missing = [i for i in test_ids if i not in by_id]
    if missing:
        raise SertoolError(f"{manifest}: lacks test utterance {missing[0]!r} of {fold_dir}; use the run's manifest")
    index = {label: k for k, label in enumerate(labels)}
    unknown = sorted({by_id[i].label for i in test_ids} - set(index))
    if unknown:
        raise SertoolError(f"test labels {unknown} were not in training; cannot score them")
    return np.array([index[by_id[i].label] for i in test_ids])


def evaluate_run(run_dir, manifest=None, store=None, *, output=None, batch_size: int = 64,
                 selection: str | None = None, log=lambda m: None, device: str = "cpu",
                 allow_missing_folds: bool = False) -> EvaluationResult:
    """Evaluate every finished fold of ``run_dir`` (a trained or a fused run) on its test utterances.

    Parameters
    ----------
    run_dir
        The run folder (``run.json``, ``fold-<i>/``).
    manifest, store
        Manifest CSV and feature store to score; default: those the run was trained on.
    output
        Folder of the result files (module docstring); default: ``run_dir``.
    batch_size
        Utterances per forward pass.
    selection
        ``best``, ``average`` or ``last``: score ``checkpoint-<selection>.pt`` instead of ``checkpoint.pt``.
    log, device
        Called with each progress line; ``cpu``, ``cuda`` or ``auto``.
    allow_missing_folds
        Score the folds that have a checkpoint when some folds ``train`` was asked for have none (logged,
        and recorded as ``folds_scored`` / ``folds_total``); default: an error naming them. Folds never
        trained (``train --fold``) are left out either way, and counted the same.

    Returns
    -------
    EvaluationResult
        Scores per fold, ``pooled``, ``mean`` and ``std``; the labels; the output folder; folds scored of total.

    Raises
    ------
    SertoolError
        No manifest or store known, folds without a checkpoint, damaged run files (naming the file and the
        command that rewrites it), folds with different labels, or test utterances the manifest lacks.
    """
    run_dir = Path(run_dir)
    output = Path(output or run_dir)
    output.mkdir(parents=True, exist_ok=True)
    run_info = read_run_info(run_dir)
    name = checkpoint_name(selection)
    manifest = manifest or run_info.get("manifest")
    stores = run_stores(run_info, store)
    if not manifest or not stores[0][0]:
        raise SertoolError(f"{run_dir}: no run.json; pass MANIFEST and STORE explicitly")
    utterances = read_manifest(manifest)
    by_id = {u.id: u for u in utterances}
    all_probs, all_true, rows, per_fold = [], [], [], {}
    labels = None
    finished, total = finished_folds(run_dir, name, info=run_info, allow_missing=allow_missing_folds, log=log)
    for fold_dir in finished:
        ckpt = classifier(load_fold_checkpoint(fold_dir / name, run_dir, run_info), fold_dir / name)
        if labels is None:
            labels = list(ckpt.labels)
        elif labels != list(ckpt.labels):
            raise SertoolError(f"{fold_dir}: label list differs from the other folds")
        test_ids = read_split(fold_dir / "split.csv")["test"]
        if not test_ids:
            log(f"{fold_dir.name}: no test utterances (protocol all), skipped")
            continue
        truth = _test_truth(fold_dir, test_ids, by_id, labels, manifest)
        probs = score_ids(ckpt, test_ids, utterances=utterances, stores=stores, batch_size=batch_size, device=device)
        fold_name = fold_dir.name.split("-")[1]
        per_fold[fold_name] = fold_scores(truth, probs, len(labels)) | _temperature(ckpt)
        log(f"fold {fold_name}: {len(test_ids)} test utterances, UA {per_fold[fold_name]['UA']:.3f} "
            f"WA {per_fold[fold_name]['WA']:.3f} ECE {per_fold[fold_name]['ECE']:.3f}{_t_text(ckpt)}")
        _log_note(log, one_class_note(f"fold {fold_name}", truth, labels))
        all_probs.append(probs)
        all_true.append(truth)
        rows += [prediction_row(by_id[i], p, labels, labels[t], fold_name) for i, p, t in zip(test_ids, probs, truth)]
    if not all_true:
        raise SertoolError(f"{run_dir}: no fold has test utterances (trained with --protocol all?); "
                           "evaluate a cross-validated run instead")
    truth, probs = np.concatenate(all_true), np.concatenate(all_probs)
    _add_summaries(per_fold, truth, probs, len(labels), scored=len(finished), total=total)
    _log_note(log, one_class_note("pooled", truth, labels))
    title = f"{run_dir.name} ({run_info.get('model', '?')})"
    _write_outputs(output, per_fold, labels, rows, title=title)
    plot_curves(finished, output / "training_curves.png", title=title, log=log)
    return EvaluationResult(per_fold, labels, output, len(finished), total)


def _log_note(log, note: str | None) -> None:
    if note:
        log(note)


def plot_curves(fold_dirs: list[Path], path: Path, *, title: str, log) -> None:
    """training_curves.png of the folds whose ``train_log.csv`` reads back; a damaged log is named and left out."""
    readable = []
    for d in fold_dirs:
        try:
            read_train_log(d / "train_log.csv")
            readable.append(d)
        except SertoolError as exc:
            log(f"warning: {exc}; {d.name} is left out of {path.name}")
    plot_training_curves(readable, path, title=title)


def _temperature(checkpoint) -> dict:
    """``{"temperature": T}`` of a plain checkpoint (its members have their own in a fused one: ``{}``)."""
    return {} if checkpoint.is_fusion else {"temperature": checkpoint.temperature}


def _t_text(checkpoint) -> str:
    return "" if checkpoint.is_fusion else f" (calibrated, T {checkpoint.temperature:.3g})"


def atomic_csv(path: Path, header: list[str], rows) -> None:
    """Write a CSV of ``header`` and ``rows`` through a temp file and a rename."""
    with atomic_write(path) as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _write_outputs(out_dir: Path, per_fold: dict, labels: list[str], prediction_rows: list, *, title: str) -> None:
    metric_rows, confusion_rows = [], []
    for fold, s in per_fold.items():
        for key in SUMMARISED + ("temperature",) + COUNTS:
            if key not in s:
                continue
            metric_rows.append([fold, key, int(s[key]) if key in COUNTS else f"{s[key]:.6f}"])
            if key in s.get("ci", {}):
                metric_rows += [[fold, f"{key}_ci95_low", f"{s['ci'][key][0]:.6f}"],
                                [fold, f"{key}_ci95_high", f"{s['ci'][key][1]:.6f}"]]
        if "confusion" not in s:
            continue
        for name in ("precision", "recall", "f1", "support"):
            for label, value in zip(labels, s[name]):
                metric_rows.append([fold, f"{name}_{label}", f"{value:.6f}" if name != "support" else int(value)])
        counts = s["confusion"]
        with np.errstate(invalid="ignore"):
            normalised = counts / counts.sum(axis=1, keepdims=True)
        for label, row in zip(labels, counts):
            confusion_rows.append([fold, "counts", label, *map(int, row)])
        for label, row in zip(labels, normalised):
            confusion_rows.append([fold, "row_normalised", label, *(f"{x:.4f}" for x in row)])
    atomic_csv(out_dir / "metrics.csv", ["fold", "metric", "value"], metric_rows)
    atomic_csv(out_dir / "confusion.csv", ["fold", "kind", "true", *labels], confusion_rows)
    atomic_csv(out_dir / "predictions.csv", [*header(labels, False, manifest=True), "fold"], prediction_rows)
    plot_confusion(per_fold["pooled"]["confusion"], labels, out_dir / "confusion.png",
                   title=f"{title}: pooled UA {per_fold['pooled']['UA']:.3f}, WA {per_fold['pooled']['WA']:.3f}")
    plot_fold_confusions(per_fold, labels, out_dir / "confusion_folds.png", title=title)
    pooled = per_fold["pooled"]
    plot_reliability(pooled["reliability"], out_dir / "reliability.png",
                     title=f"{title}: pooled ECE {pooled['ECE']:.3f}, Brier {pooled['Brier']:.3f}")


def summary_table(result: EvaluationResult) -> str:
    """One screen: WA/UA/F1/ECE/Brier (and T) per fold, pooled and mean, then pooled per-class recall.

    A fold whose test utterances are of one class is marked ``*`` (its UA is that class's recall); the
    pooled UA and F1 of test utterances of one class are ``n/a``, without an interval; a run scored on
    fewer folds than it has starts with a PARTIAL line.
    """
    lines = []
    if result.partial:
        lines.append(f"PARTIAL: {result.folds_scored} of {result.folds_total} folds scored; pooled, mean and std "
                     "cover those folds only")
    lines.append(f"{'fold':>8} {'WA':>7} {'UA':>7} {'F1':>7} {'ECE':>7} {'Brier':>7} {'T':>6}")
    pooled = result.folds["pooled"]
    one_class = pooled.get("test_classes", 2) < 2
    for fold, s in result.folds.items():
        lines.append(_summary_line(fold, s, hide_ua=one_class and fold in ("pooled", "mean", "std")))
    if any(s.get("test_classes", 2) < 2 for s in result.folds.values()):
        lines.append("* test utterances of one class: UA and F1 are that class's recall and F1, not means over classes")
    if "ci" in pooled:
        lines.append(f"pooled 95 % bootstrap CI ({BOOTSTRAP_RESAMPLES} resamples of utterances): "
                     + ", ".join(f"{k} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in pooled["ci"].items())
                     + ("; none for UA and F1 (one class)" if one_class else ""))
    lines.append("pooled recall: " + ", ".join(f"{c} {r:.2f}" for c, r in zip(result.labels, pooled["recall"])
                                               if r == r))
    return "\n".join(lines)


def _summary_line(fold: str, s: dict, *, hide_ua: bool) -> str:
    """One row of :func:`summary_table` (UA and F1 ``n/a`` when ``hide_ua``; ``*``: one test class)."""
    temperature = f"{s['temperature']:6.3g}" if "temperature" in s else f"{'':6}"
    ua, f1 = ("    n/a", "    n/a") if hide_ua else (f"{s['UA']:7.3f}", f"{s['macro_F1']:7.3f}")
    mark = " *" if s.get("test_classes", 2) < 2 else ""
    return (f"{fold:>8} {s['WA']:7.3f} {ua} {f1} {s.get('ECE', np.nan):7.3f} {s.get('Brier', np.nan):7.3f} "
            f"{temperature}".rstrip() + mark)
