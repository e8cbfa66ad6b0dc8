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

``RUN_F/run.json`` lists the members with their stores;
``RUN_F/fold-<i>/checkpoint.pt`` is a fused checkpoint holding each member's
checkpoint of that fold inline (tensors and plain data only), so
``evaluate RUN_F`` and ``predict RUN_F/fold-<i>/checkpoint.pt`` work as for
any run.
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sertool.errors import ConfigError, SertoolError
from sertool.inference.runner import fuse
from sertool.io.manifest import read_manifest
from sertool.metrics import confusion, scores
from sertool.models.checkpoint import FUSION, Checkpoint
from sertool.scoring.evaluate import load_fold_checkpoint, score_ids
from sertool.training.runs import atomic_json, finished_folds, fold_index, read_run_info, read_split, rewrite_hint

#: run.json keys a member run must have
MEMBER_KEYS = ("manifest", "store", "labels")


@dataclass
class FusionResult:
    """Per fold: the weights used and their validation UA."""

    out_dir: Path
    weights: list[list[float]]
    valid_ua: list[float]


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


def _member_runs(run_dirs: list[Path], allow_missing_folds: bool, log) -> list[dict]:
    """Each run's folder, run.json and finished folds; SertoolError for a run that cannot be a member."""
    members = []
    for run in run_dirs:
        info = read_run_info(run)
        if not info:
            raise SertoolError(f"{run}: no run.json; fuse runs written by `sertool train`")
        if info.get("members"):
            raise SertoolError(f"{run}: is itself a fused run; fuse its members instead")
        if info.get("task") == "regression":
            raise SertoolError(f"{run}: a regression run (train --target); fuse combines class probabilities and does "
                               "not fuse regression runs yet: compare them with `sertool compare` instead")
        lacking = [k for k in MEMBER_KEYS if k not in info]
        if lacking:
            raise SertoolError(f"{run}/run.json is damaged (no {', '.join(lacking)}); {rewrite_hint(run, info)}")
        folds, total = finished_folds(run, info=info, allow_missing=allow_missing_folds, log=log)
        members.append({"run": str(Path(run).resolve()), "info": info, "folds": folds, "total": total})
    return members


def _check_same_folds(members: list[dict]) -> None:
    first = members[0]
    for m in members[1:]:
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


def _check_not_refit(members: list[dict], checkpoints: list) -> None:
    """SertoolError when a member's checkpoint was refit on the validation speakers the weights are fitted on."""
    for m, c in zip(members, checkpoints):
        if c.model_config.get("refit"):
            raise SertoolError(f"{m['run']}: its {c.model} was refit on the validation speakers, which fit the "
                               "fusion weights; retrain it without --set refit=true")


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
        The fused run's folder, and per fold the weights and their validation UA.

    Raises
    ------
    SertoolError
        Fewer than two runs, runs on different folds or labels, folds without a checkpoint, damaged run
        files, or weights of the wrong length.
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
    by_id = {u.id: u for u in utterances}
    labels = list(info0["labels"])
    index = {c: k for k, c in enumerate(labels)}
    stores = [(m["info"]["store"], m["info"].get("utterance_store")) for m in members]
    all_weights, all_ua = [], []
    for k, fold0 in enumerate(members[0]["folds"]):
        checkpoints = [load_fold_checkpoint(m["folds"][k] / "checkpoint.pt", m["run"], m["info"]) for m in members]
        _check_not_refit(members, checkpoints)
        valid_ids = read_split(fold0 / "split.csv")["valid"]
        fold_weights, ua = weights, float("nan")
        if valid_ids:
            truth = np.array([index[by_id[i].label] for i in valid_ids])
            probs = [score_ids(c, valid_ids, utterances=utterances, stores=[pair]) for c, pair in zip(checkpoints, stores)]
            if fold_weights is None:
                fold_weights, ua = fit_weights(probs, truth, step=grid_step)
            else:
                fused = fuse(probs, fold_weights)
                ua = scores(confusion(truth, fused.argmax(1), len(labels)))["UA"]
        elif fold_weights is None:
            raise ConfigError(f"{fold0}: no validation speakers to fit fusion weights on; pass --weights")
        fold_dir = output / fold0.name
        fold_dir.mkdir(exist_ok=True)
        shutil.copyfile(fold0 / "split.csv", fold_dir / "split.csv")
        Checkpoint(model=FUSION, model_config={"weights": fold_weights, "runs": [m["run"] for m in members]},
                   feature_set=FUSION, feature_config={}, labels=labels, norm_mean=checkpoints[0].norm_mean[:0],
                   norm_std=checkpoints[0].norm_std[:0], train_config={"grid_step": grid_step,
                                                                       "weights_given": weights is not None},
                   state_dict={}, metrics={"valid_UA": ua}, members=[c.payload() for c in checkpoints]
                   ).save(fold_dir / "checkpoint.pt")
        log(f"{fold0.name}: weights {', '.join(f'{w:.2f}' for w in fold_weights)} (valid UA {ua:.3f})")
        all_weights.append(fold_weights)
        all_ua.append(ua)
    _write_run_info(output, members, labels, grid_step)
    return FusionResult(output, all_weights, all_ua)


def _write_run_info(output: Path, members: list[dict], labels: list[str], grid_step: float) -> None:
    """The fused run's ``run.json``: its members, their manifest, protocol and folds."""
    info0 = members[0]["info"]
    atomic_json(output / "run.json", {
        "manifest": info0["manifest"], "protocol": info0.get("protocol"),
        "folds": info0.get("folds") or members[0]["total"],
        "folds_requested": [fold_index(d) for d in members[0]["folds"]],
        "model": FUSION, "labels": labels, "grid_step": grid_step,
        "members": [{"run": m["run"], "model": m["info"].get("model"), "store": m["info"]["store"],
                     "utterance_store": m["info"].get("utterance_store")} for m in members]})
