"""The run folder: one reader/writer for what train writes and evaluate, fuse and bench read.

Layout::

    RUN_DIR/run.json                 manifest, store, protocol, folds, model, labels (and members of a fused run)
    RUN_DIR/fold-<i>/split.csv       id, speaker, label, role (train / valid / test)
    RUN_DIR/fold-<i>/config.json     model, feature, train configs and the fold's speakers
    RUN_DIR/fold-<i>/checkpoint.pt   the selected model (see ``train --selection``)
    RUN_DIR/fold-<i>/checkpoint-<selection>.pt   the alternatives (best, average)
    RUN_DIR/fold-<i>/train_log.csv   one row per epoch (or per hyperparameter value for classic models)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sertool.io.atomic import atomic_write
from sertool.errors import SertoolError

ROLES = ("train", "valid", "test")
RUN_FILE = "run.json"
SPLIT_FILE = "split.csv"
CONFIG_FILE = "config.json"
#: the last finished epoch of a fold (weights, optimiser, best and averaged weights), for resuming
STATE_FILE = "state.pt"
LOG_FILE = "train_log.csv"
#: columns of a torch model's ``train_log.csv`` (one row per epoch)
LOG_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_UA", "valid_WA", "lr", "seconds")


def fold_dir(run_dir, index: int) -> Path:
    """``RUN_DIR/fold-<index>``."""
    return Path(run_dir) / f"fold-{index}"


def atomic_json(path: Path, data) -> None:
    """Write ``data`` as JSON through a temp file and a rename."""
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True, default=str))


def write_split(path: Path, fold, by_id: dict) -> None:
    """``split.csv`` of ``fold`` (a :class:`~sertool.training.splits.Fold`); ``by_id``: id -> Utterance."""
    with atomic_write(path) as fh:
        w = csv.writer(fh)
        w.writerow(["id", "speaker", "label", "role"])
        for role, ids in zip(ROLES, (fold.train, fold.valid, fold.test)):
            for i in ids:
                w.writerow([i, by_id[i].speaker, by_id[i].label, role])


def read_split(path) -> dict[str, list[str]]:
    """role (train / valid / test) -> utterance ids, from a fold's ``split.csv``."""
    roles: dict[str, list[str]] = {role: [] for role in ROLES}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            roles[row["role"]].append(row["id"])
    return roles


def read_run_info(run_dir) -> dict:
    """``run.json`` of ``run_dir`` ({} when there is none)."""
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def fold_dirs(run_dir, checkpoint: str = "checkpoint.pt") -> list[Path]:
    """Fold folders of ``run_dir`` holding ``checkpoint``, in fold order."""
    run_dir = Path(run_dir)
    dirs = sorted((d for d in run_dir.glob("fold-*") if (d / checkpoint).is_file()),
                  key=lambda d: int(d.name.split("-")[1]))
    if not dirs:
        raise SertoolError(f"{run_dir}: no fold-*/{checkpoint}; train first with `sertool train ... -o {run_dir}`")
    return dirs


def checkpoint_name(selection: str | None) -> str:
    """File name of a fold's checkpoint: ``checkpoint.pt`` (selected) or ``checkpoint-<selection>.pt``."""
    return "checkpoint.pt" if not selection else f"checkpoint-{selection}.pt"
