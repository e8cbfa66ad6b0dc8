"""What a fold writes while it trains: checkpoints, the resumable state and ``train_log.csv``.

File names are :mod:`sertool.training.runs`'s. Imports torch: load it only when a model trains.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from pathlib import Path

import torch

from sertool.io.atomic import atomic_path, atomic_write
from sertool.models.checkpoint import Checkpoint
from sertool.training.calibration import describe, fold_calibration
from sertool.training.runs import CONFIG_FILE, LOG_COLUMNS, atomic_json


def weights(model) -> dict:
    """A CPU copy of the weights in the standard (contiguous) layout, whatever the model's memory format.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    dict
        state-dict key -> contiguous CPU tensor.
    """
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def accumulate(total: dict | None, model) -> dict:
    """Add ``model``'s weights to a running sum (float64 for floating-point weights, others: the latest value).

    Parameters
    ----------
    total : dict or None
        The sum so far (None: start one).
    model : torch.nn.Module

    Returns
    -------
    dict
        The new sum.
    """
    current = weights(model)
    if total is None:
        return {k: v.double() if v.is_floating_point() else v for k, v in current.items()}
    return {k: total[k] + v.double() if v.is_floating_point() else v for k, v in current.items()}


def write_checkpoint(setup, name: str, model, metrics: dict, *, model_config=None) -> None:
    """Save ``model`` as a :class:`~sertool.models.checkpoint.Checkpoint` named ``name`` in the fold's folder.

    Its ``calibration`` (a softmax temperature, :func:`~sertool.training.calibration.fold_calibration`) is
    fitted here on the fold's validation speakers with the weights saved; ``checkpoint.pt``'s also goes into
    the fold's ``config.json`` and the log.

    Parameters
    ----------
    setup : sertool.training.folds.FoldSetup
        The fold (labels, configs, feature info, normaliser, folder).
    name : str
        File name, e.g. ``checkpoint.pt``.
    model : torch.nn.Module
    metrics : dict
        Stored with the checkpoint (validation UA, epochs, ...).
    model_config : dataclass, optional
        The config to store instead of the fold's (a classic estimator's chosen C).
    """
    info = setup.info
    if info.get("train_duration_s"):  # [1st, 99th percentile] s of the training clips (predict's short/long flags)
        metrics = {**metrics, "train_duration_s": info["train_duration_s"]}
    calibration = fold_calibration(setup, model, model_config=model_config)
    task = setup.regression.checkpoint_fields() if setup.regression is not None else {"labels": setup.labels}
    Checkpoint(model=setup.model_name, model_config=dataclasses.asdict(model_config or setup.model_config),
               feature_set=info["feature_set"], feature_config=info["feature_config"], **task,
               train_config=dataclasses.asdict(setup.train_config), state_dict=weights(model), metrics=metrics,
               utterance_feature_config=info["utterance_feature_config"], calibration=calibration,
               **setup.normaliser.checkpoint_fields(info["input_dim"])).save(setup.out_dir / name)
    if name == "checkpoint.pt" and setup.regression is None:  # a regression model has no calibration
        _record_calibration(setup, calibration)


def _record_calibration(setup, calibration: dict) -> None:
    """Add ``checkpoint.pt``'s calibration to the fold's ``config.json`` and log it."""
    config_path = setup.out_dir / CONFIG_FILE
    if config_path.exists():
        atomic_json(config_path, {**json.loads(config_path.read_text()), "calibration": calibration})
    setup.log(f"fold {setup.fold.index}: calibration {describe(calibration)}")


def save_state(path: Path, payload: dict, fingerprint: dict, *, finished: bool) -> None:
    """Write the fold's resumable state atomically.

    Parameters
    ----------
    path : Path
        ``state.pt`` of the fold.
    payload : dict
        Epoch, best epoch and UA, and (unfinished) weights and optimiser state.
    fingerprint : dict
        What a resumed run must share with this one.
    finished : bool
        True once the fold's checkpoints are written.
    """
    with atomic_path(path) as tmp:
        torch.save({**payload, "fingerprint": fingerprint, "finished": finished}, tmp)


def append_log(path: Path, row: list, columns=LOG_COLUMNS) -> None:
    """Append one epoch's row to ``train_log.csv`` (header first in a new file), synced to disk.

    Parameters
    ----------
    path : Path
    row : list
        Values in the order of ``columns``.
    columns : tuple of str
        The header: :data:`~sertool.training.runs.LOG_COLUMNS`, or ``REGRESSION_LOG_COLUMNS``.
    """
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(columns)
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def truncate_log(path: Path, last_epoch: int) -> None:
    """Drop the rows after ``last_epoch`` from ``train_log.csv`` (a resumed run rewrites them).

    Parameters
    ----------
    path : Path
    last_epoch : int
        The last epoch the resumable state holds.
    """
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_epoch]
    with atomic_write(path) as fh:
        csv.writer(fh).writerows(kept)


def write_fit_log(path: Path, rows: list[tuple[float, float, float]]) -> None:
    """``train_log.csv`` of a classic estimator: one row per value of C tried.

    Parameters
    ----------
    path : Path
    rows : list of (C, valid UA, valid WA)
    """
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["C", "valid_UA", "valid_WA"])
        w.writerows([[f"{c:g}", f"{ua:.4f}", f"{wa:.4f}"] for c, ua, wa in rows])
