"""Regression outputs of a model: the names of its target columns and their standardisation.

A regression checkpoint (``task: "regression"``) has no classes: ``labels`` is empty, ``targets`` names the
manifest columns it predicts (e.g. ``arousal, valence, dominance``), and ``target_mean`` / ``target_std`` are
the fold's training rows' statistics. The network learns standardised values; its raw output ``z`` (B, K)
maps back to the targets' scale as ``z * target_std + target_mean`` (:func:`destandardise`), in the torch
runner and inside an exported graph alike.
"""

from __future__ import annotations

import math

import numpy as np

from sertool.errors import CheckpointError, SertoolError

TASKS = ("classification", "regression")
#: The column of predictions.csv holding target ``t``'s predicted value.
PRED_PREFIX = "pred_"


class Targets(list):
    """The output names of a regression model (a list of target column names).

    Passed where class names go (``labels`` of :mod:`sertool.inference.rows`), its type tells the row
    writers that the outputs are values, one ``pred_<target>`` column each, not class probabilities.
    """


def is_regression(outputs) -> bool:
    """Whether ``outputs`` (a model's output names) are regression targets (:class:`Targets`)."""
    return isinstance(outputs, Targets)


def destandardise(values, mean, std):
    """``values`` (B, K) of standardised targets back on the targets' scale: ``values * std + mean``."""
    return values * std + mean


def _is_names(value) -> bool:
    return (isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
            and len(set(value)) == len(value))


def _finite_numbers(value, count: int, positive: bool) -> bool:
    if not (isinstance(value, list) and len(value) == count):
        return False
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    return ok and (not positive or all(v > 0 for v in value))


def check_task(data: dict, where: str, error=CheckpointError) -> None:
    """``error`` naming ``where`` unless ``data``'s task fields are consistent.

    A classification payload (no ``task``, or ``"classification"``) needs nothing more; a regression one
    needs ``targets`` (distinct names), finite ``target_mean`` and positive ``target_std`` of one value per
    target, and an empty ``labels``.
    """
    task = data.get("task", "classification")
    if task not in TASKS:
        raise error(f"{where}: task {task!r} must be one of {', '.join(TASKS)}; the file is damaged or written by "
                    "a newer sertool: upgrade, retrain or re-save it")
    if task != "regression":
        return
    targets = data.get("targets")
    if not _is_names(targets):
        raise error(f"{where}: a regression model needs 'targets', a list of distinct column names; the file is "
                    "damaged: retrain or re-save it")
    if not (_finite_numbers(data.get("target_mean"), len(targets), False)
            and _finite_numbers(data.get("target_std"), len(targets), True)):
        raise error(f"{where}: target_mean and target_std must hold one finite number per target (std > 0); the "
                    "file is damaged: retrain or re-save it")
    if data.get("labels"):
        raise error(f"{where}: a regression model has no class labels; the file is damaged: retrain or re-save it")


def labels_rule(data: dict, rule: tuple) -> tuple:
    """The schema rule for ``labels``: ``rule`` (non-empty class names), or an empty list for a regression payload."""
    if isinstance(data, dict) and data.get("task") == "regression":
        return (lambda v: v == [], "an empty list (a regression model)")
    return rule


def output_names(labels, task: str | None, targets) -> list[str]:
    """A model's output names: its ``labels``, or :class:`Targets` of its ``targets`` for a regression model."""
    return Targets(targets or []) if task == "regression" else list(labels)


def as_array(values) -> np.ndarray:
    """``values`` (a list of numbers) as float32, for :func:`destandardise`."""
    return np.asarray(values, np.float32)


def classifier(checkpoint, path):
    """``checkpoint``, unless it is a regression model (SertoolError naming ``path`` and the evaluation that fits)."""
    if checkpoint.is_regression:
        raise SertoolError(f"{path}: a regression model (targets {', '.join(checkpoint.targets)}); evaluate it with "
                           "sertool.scoring.regression.evaluate_regression_run (`sertool evaluate` does)")
    return checkpoint
