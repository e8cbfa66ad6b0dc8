"""``evaluate`` of runs whose folds know different classes: leave-one-corpus-out (``--protocol loco``).

Each fold's model is trained on other corpora than its test corpus, so the two rarely share every
class: RAVDESS has calm and surprised, EMO-DB bored, ASED five classes. Each fold is scored over the
classes its model and its test corpus share (test utterances of other labels are left out and
counted; the model's probabilities are renormalised over the shared classes, the usual cross-corpus
definition). Per fold (named after its test corpus): UA, WA, macro-F1, ECE, Brier over its shared
classes. ``pooled`` puts every fold's scored utterances in one label space (the union of the shared
classes; each utterance's probability mass lies on its own fold's shared classes), so pooled UA is
the mean recall over that union; ``mean``/``std`` are over the folds. The files are those of
:mod:`sertool.scoring.evaluate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sertool.errors import SertoolError
from sertool.io.manifest import read_manifest
from sertool.scoring.cross_corpus import over_shared_classes
from sertool.scoring.evaluate import (EvaluationResult, _add_summaries, _temperature, _write_outputs, fold_scores,
                                      load_fold_checkpoint, plot_curves, prediction_row, run_stores, score_ids)
from sertool.training.runs import checkpoint_name, finished_folds, read_run_info, read_split


def _fold_part(fold_dir: Path, checkpoint, test_ids: list[str], by_id: dict, stores, batch_size: int, log):
    """``(shared classes, kept ids, (N, S) probabilities, (N,) truth indices)`` of one fold, or None."""
    model_labels = list(checkpoint.labels)
    test_labels = {by_id[i].label for i in test_ids}
    shared = [c for c in model_labels if c in test_labels]
    if len(shared) < 2:  # one shared class: every utterance is "right" once renormalised over it
        log(f"{fold_dir.name}: its test corpus shares {len(shared)} class(es) with the model "
            f"({', '.join(shared) or 'none'}); UA needs two or more: skipped")
        return None
    kept = [i for i in test_ids if by_id[i].label in shared]
    left_out = sorted(test_labels - set(shared))
    if left_out:
        log(f"{fold_dir.name}: {len(test_ids) - len(kept)} test utterances of classes the model does not know "
            f"({', '.join(left_out)}) left out")
    probs = score_ids(checkpoint, kept, utterances=list(by_id.values()), stores=stores, batch_size=batch_size)
    probs = over_shared_classes(probs, model_labels, shared)
    truth = np.array([shared.index(by_id[i].label) for i in kept])
    return shared, kept, probs, truth


def evaluate_shared_classes(run_dir, *, output=None, batch_size: int = 64, selection: str | None = None,
                            log=lambda m: None, allow_missing_folds: bool = False) -> EvaluationResult:
    """Evaluate every finished fold of ``run_dir`` over the classes its model and its test set share.

    Parameters
    ----------
    run_dir
        A trained run (``--protocol loco``, or any run whose folds' models know different classes).
    output
        Folder of the result files; default ``run_dir``.
    batch_size
        Utterances per forward pass.
    selection
        ``best``, ``average`` or ``last``: score that checkpoint instead of ``checkpoint.pt``.
    log
        Called with each progress line.
    allow_missing_folds
        Score the folds there are when some of the run's folds have no checkpoint (default: an error).

    Returns
    -------
    EvaluationResult
        Per fold (by test corpus name), ``pooled``, ``mean``, ``std``; ``labels`` is the union of shared classes.

    Raises
    ------
    SertoolError
        No run.json, folds without a checkpoint, damaged run files, or no fold whose test utterances share
        two classes or more with its model.
    """
    run_dir = Path(run_dir)
    output = Path(output or run_dir)
    output.mkdir(parents=True, exist_ok=True)
    run_info = read_run_info(run_dir)
    if not run_info.get("manifest"):
        raise SertoolError(f"{run_dir}: no run.json; evaluate a run trained by `sertool train`")
    by_id = {u.id: u for u in read_manifest(run_info["manifest"])}
    stores = run_stores(run_info)
    finished, total = finished_folds(run_dir, checkpoint_name(selection), info=run_info,
                                     allow_missing=allow_missing_folds, log=log)
    parts = {}
    for fold_dir in finished:
        checkpoint = load_fold_checkpoint(fold_dir / checkpoint_name(selection), run_dir, run_info)
        part = _fold_part(fold_dir, checkpoint, read_split(fold_dir / "split.csv")["test"], by_id, stores,
                          batch_size, log)
        if part is not None:
            parts[_fold_name(fold_dir, part[1], by_id)] = (*part, _temperature(checkpoint))
    if not parts:
        raise SertoolError(f"{run_dir}: no fold has test utterances of two or more classes its model knows")
    labels = sorted({c for shared, *_ in parts.values() for c in shared})
    per_fold, truth, probs, rows = {}, [], [], []
    for name, (shared, kept, fold_probs, fold_truth, temperature) in parts.items():
        wide_truth, wide_probs = _widen(shared, fold_probs, fold_truth, labels)
        per_fold[name] = fold_scores(wide_truth, wide_probs, len(labels)) | {"classes": float(len(shared)),
                                                                             **temperature}
        log(f"fold {name}: {len(kept)} test utterances over {len(shared)} shared classes, UA "
            f"{per_fold[name]['UA']:.3f} WA {per_fold[name]['WA']:.3f} ECE {per_fold[name]['ECE']:.3f}")
        truth.append(wide_truth)
        probs.append(wide_probs)
        rows += [prediction_row(by_id[i], p, labels, by_id[i].label, name) for i, p in zip(kept, wide_probs)]
    truth, probs = np.concatenate(truth), np.concatenate(probs)
    _add_summaries(per_fold, truth, probs, len(labels), scored=len(finished), total=total)
    title = f"{run_dir.name} ({run_info.get('model', '?')}, shared classes per fold)"
    _write_outputs(output, per_fold, labels, rows, title=title)
    plot_curves(finished, output / "training_curves.png", title=title, log=log)
    return EvaluationResult(per_fold, labels, output, len(finished), total)


def _fold_name(fold_dir: Path, kept: list[str], by_id: dict) -> str:
    """The fold's test corpus when it has one (``loco``), else its number."""
    corpora = {by_id[i].corpus for i in kept}
    return corpora.pop() if len(corpora) == 1 and "" not in corpora else fold_dir.name.split("-")[1]


def _widen(shared: list[str], probs: np.ndarray, truth: np.ndarray, labels: list[str]):
    """A fold's ``(N,)`` truth and ``(N, S)`` probabilities in the union label space: ``((N,), (N, U))``.

    Its probability mass stays on its shared classes, so its scores are those over the shared classes.
    """
    wide = np.zeros((probs.shape[0], len(labels)), np.float32)
    wide[:, [labels.index(c) for c in shared]] = probs
    return np.array([labels.index(shared[t]) for t in truth]), wide
