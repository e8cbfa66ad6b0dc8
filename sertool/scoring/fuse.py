"""Late fusion: a run whose members are runs (``sertool fuse RUN_A RUN_B ... -o RUN_F``).

The fused model's class probabilities are a weighted mean of its members'
probabilities, each member computing its own features with its own
normalisation and scoring with its own calibrated temperature
(:mod:`sertool.training.calibration`): the weights are fitted on, and
applied to, calibrated probabilities, so an over-confident member does not
outvote the others by its confidence alone. Members must be trained on the same folds: per fold the same
training, validation and test utterances (same manifest, ``--protocol``,
``--folds``, ``--valid-speakers`` and ``--seed``) and the same labels.

Weights are either given (one per member, normalised to sum 1) or fitted per
fold on that fold's validation speakers: every weight vector on a grid of
step ``grid_step`` over the simplex is tried and the one with the highest
validation UA is kept (ties: lower validation negative log-likelihood, then
the earlier vector). Test speakers never choose anything.

Regression runs (``train --target``) fuse the same way: the fused model's
values are the weighted mean of the members' predicted values on the
targets' scale, the weights chosen by the highest mean validation CCC over
the targets (ties: lower mean RMSE, then the earlier vector). Members must
predict the same target columns; regression and classification runs do not mix.

``RUN_F/run.json`` lists the members with their stores;
``RUN_F/fold-<i>/checkpoint.pt`` is a fused checkpoint holding each member's
checkpoint of that fold inline (tensors and plain data only), so
``evaluate RUN_F`` and ``predict RUN_F/fold-<i>/checkpoint.pt`` work as for
any run.
"""

from __future__ import annotations

import itertools
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from sertool.errors import ConfigError, SertoolError
from sertool.inference.runner import fuse
from sertool.io.manifest import read_manifest
from sertool.metrics import confusion, regression_scores, scores
from sertool.models.checkpoint import FUSION, Checkpoint
from sertool.scoring.evaluate import load_fold_checkpoint, score_ids
from sertool.training.runs import atomic_json, finished_folds, fold_index, read_run_info, read_split, rewrite_hint
from sertool.training.targets import target_values

#: run.json keys a member run must have
MEMBER_KEYS = ("manifest", "store", "labels")


@dataclass
class FusionResult:
    """Per fold: the weights used and their validation score (UA; the mean CCC over targets for regression runs)."""

    out_dir: Path
    weights: list[list[float]]
    valid_ua: list[float]
    #: what ``valid_ua`` holds: ``UA``, or ``CCC`` for regression runs
    score_name: str = "UA"


@dataclass
class FusionTask:
    """What the fused runs predict: how their validation truth is read, weights fitted and scored.

    ``truth(ids)`` gives the validation truth (class indices, or target values (N, K)); ``fit(outputs, truth,
    step=...)`` -> (weights, score); ``score(fused, truth)`` -> the score of given weights' fused outputs;
    ``fields``: the fused checkpoint's and run.json's task fields.
    """

    score_name: str
    truth: Callable
    fit: Callable
    score: Callable
    fields: dict = field(default_factory=dict)


def simplex_grid(members: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector with entries in multiples of ``step`` summing to 1."""
    n = round(1 / step)
    if n < 1 or abs(n * step - 1) > 1e-9:
        raise ConfigError(f"grid step {step} must divide 1 (e.g. 0.1, 0.05)")
    return [tuple(c / n for c in combo) for combo in itertools.product(range(n + 1), repeat=members)
            if sum(combo) == n]


def fit_weights(member_probs: list[np.ndarray], truth: np.ndarray, *, step: float = 0.1) -> tuple[list[float], float]:
    """Weights maximising UA of the fused validation probabilities (member_probs: each (N, C))."""
    best, best_key = None, None
    classes = member_probs[0].shape[1]
    for weights in simplex_grid(len(member_probs), step):
        fused = fuse(member_probs, weights)
        ua = scores(confusion(truth, fused.argmax(1), classes))["UA"]
        nll = float(-np.log(np.clip(fused[np.arange(len(truth)), truth], 1e-12, None)).mean())
        key = (ua, -nll)
        if best_key is None or key > best_key:
            best, best_key = list(weights), key
    return best, best_key[0]


def mean_ccc_rmse(true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """The mean over targets of the CCC and of the RMSE of ``pred`` against ``true`` (N, K)."""
    found = [regression_scores(true[:, k], pred[:, k]) for k in range(true.shape[1])]
    return float(np.mean([f["CCC"] for f in found])), float(np.mean([f["RMSE"] for f in found]))


def fit_regression_weights(member_values: list[np.ndarray], true: np.ndarray, *,
                           step: float = 0.1) -> tuple[list[float], float]:
    """Weights maximising the mean CCC over targets of the fused validation values.

    Parameters
    ----------
    member_values
        Each member's predicted values ``(N, K)`` on the targets' scale.
    true
        ``(N, K)`` target values.
    step
        The weight grid's step (:func:`simplex_grid`).

    Returns
    -------
    tuple
        The weights (ties: lower mean RMSE, then the earlier vector; an undefined CCC ranks last) and their
        mean validation CCC.
    """
    best, best_key, best_ccc = None, None, float("nan")
    for weights in simplex_grid(len(member_values), step):
        ccc, rmse = mean_ccc_rmse(true, fuse(member_values, weights))
        key = (ccc if math.isfinite(ccc) else -math.inf, -rmse)
        if best_key is None or key > best_key:
            best, best_key, best_ccc = list(weights), key, ccc
    return best, best_ccc


def fusion_task(info: dict, manifest, utterances) -> FusionTask:
    """The :class:`FusionTask` of runs whose (first) run.json is ``info``, trained on ``utterances``."""
    by_id = {u.id: u for u in utterances}
    if info.get("task") == "regression":
        targets = list(info.get("targets") or [])

        def truth(ids):
            values = target_values(manifest, [by_id[i] for i in ids], targets)
            return np.stack([values[i] for i in ids])

        return FusionTask("CCC", truth, fit_regression_weights, lambda fused, true: mean_ccc_rmse(true, fused)[0],
                          {"task": "regression", "targets": targets, "labels": []})
    labels = list(info["labels"])
    index = {c: k for k, c in enumerate(labels)}
    return FusionTask("UA", lambda ids: np.array([index[by_id[i].label] for i in ids]), fit_weights,
                      lambda fused, truth: scores(confusion(truth, fused.argmax(1), len(labels)))["UA"],
                      {"labels": labels})


def _member_runs(run_dirs: list[Path], allow_missing_folds: bool, log) -> list[dict]:
    """Each run's folder, run.json and finished folds; SertoolError for a run that cannot be a member."""
    members = []
    for run in run_dirs:
        info = read_run_info(run)
        if not info:
            raise SertoolError(f"{run}: no run.json; fuse runs written by `sertool train`")
        if info.get("members"):
            raise SertoolError(f"{run}: is itself a fused run; fuse its members instead")
        lacking = [k for k in MEMBER_KEYS if k not in info]
        if lacking:
            raise SertoolError(f"{run}/run.json is damaged (no {', '.join(lacking)}); {rewrite_hint(run, info)}")
        folds, total = finished_folds(run, info=info, allow_missing=allow_missing_folds, log=log)
        members.append({"run": str(Path(run).resolve()), "info": info, "folds": folds, "total": total})
    return members


def _check_same_task(first: dict, other: dict) -> None:
    """SertoolError unless both runs are classifiers, or regression runs of the same targets."""
    kinds = [m["info"].get("task") or "classification" for m in (first, other)]
    if kinds[0] != kinds[1]:
        raise SertoolError(f"{other['run']}: a {kinds[1]} run, but {first['run']} is a {kinds[0]} run; fuse runs of "
                           "one kind: classifiers (class probabilities) or regression runs (train --target) of the "
                           "same targets")
    targets = [m["info"].get("targets") for m in (first, other)]
    if kinds[0] == "regression" and targets[0] != targets[1]:
        raise SertoolError(f"{other['run']}: targets {targets[1]} differ from {first['run']}'s {targets[0]}; fuse "
                           "regression runs trained with the same --target columns, in the same order")


def _check_same_folds(members: list[dict]) -> None:
    first = members[0]
    for m in members[1:]:
        _check_same_task(first, m)
        if m["info"]["labels"] != first["info"]["labels"]:
            raise SertoolError(f"{m['run']}: labels {m['info']['labels']} differ from {first['run']}'s; "
                               "fuse runs trained on the same manifest")
        if [d.name for d in m["folds"]] != [d.name for d in first["folds"]]:
            raise SertoolError(f"{m['run']}: finished folds {[d.name for d in m['folds']]} differ from "
                               f"{first['run']}'s {[d.name for d in first['folds']]}; finish or match the folds")
        for a, b in zip(first["folds"], m["folds"]):
            sa, sb = read_split(a / "split.csv"), read_split(b / "split.csv")
            for role in ("train", "valid", "test"):
                if set(sa[role]) != set(sb[role]):
                    raise SertoolError(f"{b}: {role} utterances differ from {a}'s; fuse runs trained with the same "
                                       "manifest, --protocol, --folds, --valid-speakers and --seed")


def _normalised_weights(weights: list[float] | None, members: int) -> list[float] | None:
    """``weights`` scaled to sum 1 (None stays None: fit them); ConfigError unless ``members`` non-negative ones."""
    if weights is None:
        return None
    if len(weights) != members or min(weights) < 0 or sum(weights) <= 0:
        raise ConfigError(f"--weights needs {members} non-negative numbers, one per run")
    return [w / sum(weights) for w in weights]


def _check_checkpoints(members: list[dict], checkpoints: list, task: FusionTask, weights_given: bool) -> None:
    """SertoolError when a member's checkpoint was refit on the validation speakers the weights would be fitted on
    (given weights fit nothing there), or predicts other targets than its run.json says."""
    for m, c in zip(members, checkpoints):
        if c.model_config.get("refit") and not weights_given:
            raise SertoolError(f"{m['run']}: its {c.model} was refit on the validation speakers, which fit the "
                               "fusion weights; retrain it without --set refit=true, or give --weights")
        if c.is_regression != (task.score_name == "CCC") or list(c.targets) != task.fields.get("targets", []):
            raise SertoolError(f"{c.source}: its model's outputs ({', '.join(c.outputs)}) differ from its run.json's; "
                               f"the run is damaged: {rewrite_hint(m['run'], m['info'])}")


def fuse_runs(run_dirs, output, *, weights: list[float] | None = None, grid_step: float = 0.1,
              log=lambda m: None, allow_missing_folds: bool = False) -> FusionResult:
    """Fuse the runs ``run_dirs`` into the run folder ``output`` (see the module docstring).

    Parameters
    ----------
    run_dirs
        Two or more run folders trained on the same folds.
    output
        Folder of the fused run (``run.json``, ``fold-<i>/checkpoint.pt``); not one of ``run_dirs``.
    weights, grid_step, log
        One weight per run (normalised to sum 1; default: fitted per fold on a grid of step ``grid_step``);
        ``log`` is called with each progress line.
    allow_missing_folds
        Fuse the folds every run has finished when some of the runs' folds have no checkpoint (the fused
        run's run.json keeps the runs' fold count, so its evaluation says how many it scores); default: an
        error naming them.

    Returns
    -------
    FusionResult
        The fused run's folder, and per fold the weights and their validation UA (mean CCC over the targets
        for regression runs: ``score_name``).

    Raises
    ------
    SertoolError
        Fewer than two runs, runs on different folds or labels, regression runs mixed with classifiers or
        of other targets, folds without a checkpoint, damaged run files, or weights of the wrong length.
    """
    run_dirs = [Path(r) for r in run_dirs]
    if len(run_dirs) < 2:
        raise ConfigError("fuse needs at least two runs")
    weights = _normalised_weights(weights, len(run_dirs))
    members = _member_runs(run_dirs, allow_missing_folds, log)
    _check_same_folds(members)
    output = Path(output)
    if output.resolve() in {Path(m["run"]) for m in members}:
        raise ConfigError(f"{output}: is one of the fused runs; write the fusion to a new folder")
    output.mkdir(parents=True, exist_ok=True)
    info0 = members[0]["info"]
    utterances = read_manifest(info0["manifest"])
    task = fusion_task(info0, info0["manifest"], utterances)
    stores = [(m["info"]["store"], m["info"].get("utterance_store")) for m in members]
    all_weights, all_scores = [], []
    for k, fold0 in enumerate(members[0]["folds"]):
        checkpoints = [load_fold_checkpoint(m["folds"][k] / "checkpoint.pt", m["run"], m["info"]) for m in members]
        _check_checkpoints(members, checkpoints, task, weights is not None)
        refit = any(c.model_config.get("refit") for c in checkpoints)
        valid_ids = [] if refit else read_split(fold0 / "split.csv")["valid"]  # refit: no unseen validation rows
        if not valid_ids and weights is None:
            raise ConfigError(f"{fold0}: no validation speakers to fit fusion weights on; pass --weights")
        fold_weights, score = weights, float("nan")
        if valid_ids:
            truth = task.truth(valid_ids)
            outputs = [score_ids(c, valid_ids, utterances=utterances, stores=[pair])
                       for c, pair in zip(checkpoints, stores)]
            if fold_weights is None:
                fold_weights, score = task.fit(outputs, truth, step=grid_step)
            else:
                score = task.score(fuse(outputs, fold_weights), truth)
        fold_dir = output / fold0.name
        fold_dir.mkdir(exist_ok=True)
        shutil.copyfile(fold0 / "split.csv", fold_dir / "split.csv")
        _fused_checkpoint(checkpoints, members, task, fold_weights, score,
                          {"grid_step": grid_step, "weights_given": weights is not None}).save(fold_dir / "checkpoint.pt")
        log(f"{fold0.name}: weights {', '.join(f'{w:.2f}' for w in fold_weights)} "
            + ("(no validation score: a member was refit on the validation speakers)" if refit
               else f"(valid {task.score_name} {score:.3f})"))
        all_weights.append(fold_weights)
        all_scores.append(score)
    _write_run_info(output, members, task, grid_step)
    return FusionResult(output, all_weights, all_scores, task.score_name)


def _fused_checkpoint(checkpoints: list, members: list[dict], task: FusionTask, weights: list[float], score: float,
                      train_config: dict) -> Checkpoint:
    """One fold's fused checkpoint: the members' checkpoints inline, their weights and validation score.

    A regression fusion's values are already on the targets' scale (each member destandardises its own), so its
    ``target_mean`` / ``target_std`` are the identity (0 and 1).
    """
    scale = {}
    if "targets" in task.fields:
        scale = {"target_mean": [0.0] * len(task.fields["targets"]), "target_std": [1.0] * len(task.fields["targets"])}
    return Checkpoint(model=FUSION, model_config={"weights": weights, "runs": [m["run"] for m in members]},
                      feature_set=FUSION, feature_config={}, norm_mean=checkpoints[0].norm_mean[:0],
                      norm_std=checkpoints[0].norm_std[:0], train_config=train_config, state_dict={},
                      metrics={f"valid_{task.score_name}": score, "valid_UA": score},
                      members=[c.payload() for c in checkpoints], **task.fields, **scale)


def _write_run_info(output: Path, members: list[dict], task: FusionTask, grid_step: float) -> None:
    """The fused run's ``run.json``: its members, their manifest, protocol and folds, and the task's fields
    (``labels``; ``task`` and ``targets`` of regression runs)."""
    info0 = members[0]["info"]
    atomic_json(output / "run.json", {
        "manifest": info0["manifest"], "protocol": info0.get("protocol"),
        "folds": info0.get("folds") or members[0]["total"],
        "folds_requested": [fold_index(d) for d in members[0]["folds"]],
        "model": FUSION, **task.fields, "grid_step": grid_step,
        "members": [{"run": m["run"], "model": m["info"].get("model"), "store": m["info"]["store"],
                     "utterance_store": m["info"].get("utterance_store")} for m in members]})
