"""One fold's set-up: its fingerprint, the state to resume from, and the files, normaliser and datasets it trains on."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sertool.errors import CheckpointError, SertoolError
from sertool.features.normalise import fit_normaliser
from sertool.io.atomic import atomic_write
from sertool.io.manifest import Utterance
from sertool.models import model_spec
from sertool.models.checkpoint import Checkpoint
from sertool.training import distributed
from sertool.training.config import TrainConfig
from sertool.training.device import resolved_precision, training_device
from sertool.training.runs import (CONFIG_FILE, LOG_COLUMNS, LOG_FILE, REGRESSION_LOG_COLUMNS, SPLIT_FILE,
                                   STATE_FILE, atomic_json, read_split, write_split)
from sertool.training.splits import Fold
from sertool.training.targets import TargetScale

#: TrainConfig fields a resumed run may change: they do not change the results
RESUMABLE_CHANGES = ("workers", "threads", "device", "precision")


@dataclass
class FoldResult:
    """What training one fold gave: its folder, the best epoch and the selected model's validation UA."""

    fold: Fold
    directory: Path
    best_epoch: int
    valid_ua: float
    epochs_run: int
    seconds: float
    skipped: bool
    #: what ``valid_ua`` is: ``UA``, or ``CCC`` (the mean over targets) for a regression fold
    score_name: str = "UA"


@dataclass
class FoldSetup:
    """What one fold's training needs, built once by :func:`set_up_fold`."""

    fold: Fold
    out_dir: Path
    labels: list[str]
    model_name: str
    model_config: Any
    train_config: TrainConfig
    fingerprint: dict
    info: dict  # feature_set, feature_config, utterance_feature_config, input_dim
    normaliser: Any
    train_set: Any
    valid_set: Any
    device: Any
    log: Callable[[str], None]
    #: regression (``train --target``): the fold's :class:`~sertool.training.targets.TargetScale`; None: classes
    regression: Any = None

    @property
    def state_path(self) -> Path:
        return self.out_dir / STATE_FILE

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_FILE


def _roles(fold: Fold):
    return (("train", fold.train), ("valid", fold.valid), ("test", fold.test))


def fingerprint(fold: Fold, model: str, model_config, train_config: TrainConfig, labels: list[str],
                features: list[str], by_id: dict[str, Utterance]) -> dict:
    """What a resumed fold must share with the run in its folder: settings, features and the data of its split.

    Parameters
    ----------
    fold : Fold
    model : str
        A registered model.
    model_config : dataclass
    train_config : TrainConfig
        Fields in :data:`RESUMABLE_CHANGES` are left out.
    labels : list of str
    features : list of str
        Config hashes of the store (and utterance store).
    by_id : dict
        Utterance id -> :class:`~sertool.io.manifest.Utterance`; the split's ids with their labels and
        speakers are hashed, so another manifest or store is another run.

    Returns
    -------
    dict
        JSON-compatible; with ``world_size`` under DDP and ``precision`` when it resolves to bf16.
    """
    results_config = {k: v for k, v in dataclasses.asdict(train_config).items() if k not in RESUMABLE_CHANGES}
    rows = [(role, i, by_id[i].label, by_id[i].speaker) for role, ids in _roles(fold) for i in ids]
    found = {"model": model, "model_config": dataclasses.asdict(model_config),
             "train_config": results_config, "labels": labels, "train": len(fold.train),
             "valid": len(fold.valid), "test": len(fold.test), "features": features,
             "split": hashlib.sha256(json.dumps(rows).encode()).hexdigest()}
    world = distributed.world()
    if world.active:  # each rank's share of a batch depends on it: resume with the same number of processes
        found["world_size"] = world.size
    precision = resolved_precision(train_config, training_device(train_config.device))
    if precision != "fp32":  # bf16 steps give other weights: resume only in bf16 (fp32 runs keep older fingerprints)
        found["precision"] = precision
    return json.loads(json.dumps(found))


def resume_state(out_dir: Path, expected: dict, log=lambda m: None):
    """The fold's saved state, None for a fresh fold, or the error message when the folder cannot be resumed.

    Parameters
    ----------
    out_dir : Path
        The fold's folder.
    expected : dict
        This run's :func:`fingerprint`.
    log : callable
        Told when a finished fold is trained again because a checkpoint of it is damaged.

    Returns
    -------
    dict, None or str
        The state; None when there is none, or a finished one whose ``checkpoint.pt`` is gone or any of
        whose checkpoints is damaged (the fold trains again); a message when its fingerprint differs or
        ``state.pt`` is damaged.
    """
    import torch  # torch: heavy, loaded only when a model trains

    state_path, checkpoint_path = out_dir / STATE_FILE, out_dir / "checkpoint.pt"
    if not state_path.exists():
        return None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, empty or foreign: torch raises many kinds
        return (f"{state_path} is damaged ({type(exc).__name__}); delete it and rerun to train {out_dir} again from "
                "the start (the other folds are kept)")
    if not isinstance(state, dict) or state.get("fingerprint") != expected:
        return (f"{out_dir}: holds a run with other settings, features or data (or another number of DDP "
                "processes); use a new -o folder or delete it to start over")
    if state.get("finished") and not checkpoint_path.exists():
        return None  # finished states keep no weights: train the fold again
    if state.get("finished") and _damaged_checkpoint(out_dir, log):
        return None
    if not state.get("finished"):
        repair_log(out_dir / LOG_FILE)
    return state


def _damaged_checkpoint(out_dir: Path, log) -> bool:
    """Whether a ``checkpoint*.pt`` of the fold is empty or unreadable (logged: the fold trains again)."""
    for path in sorted(out_dir.glob("checkpoint*.pt")):
        try:
            if path.stat().st_size == 0:
                raise CheckpointError(f"{path}: 0 bytes")
            Checkpoint.load(path)
        except SertoolError as exc:
            log(f"warning: {exc}: training {out_dir.name} again")
            return True
    return False


def repair_log(path: Path) -> None:
    """Keep the header and the complete rows of an unfinished fold's ``train_log.csv`` (a kill can cut its last line).

    The resumed run rewrites the rows after its saved epoch, so only rows whose cells are all numbers
    stay; a log without its header starts again from the header.
    """
    if not path.exists():
        return
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error):
        rows = []
    columns = next((list(c) for c in (LOG_COLUMNS, REGRESSION_LOG_COLUMNS) if rows[:1] == [list(c)]), None)
    columns = columns or list(log_columns(path.parent))
    kept = [r for r in rows[1:] if len(r) == len(columns) and _numbers(r)]
    if rows[:1] == [columns] and len(kept) == len(rows) - 1:
        return
    with atomic_write(path) as fh:
        csv.writer(fh).writerows([columns, *kept])


def log_columns(out_dir: Path) -> tuple[str, ...]:
    """The ``train_log.csv`` columns of the fold in ``out_dir``: a regression fold's (its config.json has
    ``targets``) or a classifier's."""
    try:
        config = json.loads((out_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return LOG_COLUMNS
    return REGRESSION_LOG_COLUMNS if isinstance(config, dict) and config.get("targets") else LOG_COLUMNS


def _numbers(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def restore_split(out_dir: Path, fold: Fold, by_id: dict, log) -> None:
    """Write a finished fold's ``split.csv`` again when it is missing or does not read back as ``fold``."""
    path = out_dir / SPLIT_FILE
    want = {"train": list(fold.train), "valid": list(fold.valid), "test": list(fold.test)}
    try:
        if read_split(path) == want:
            return
    except SertoolError as exc:
        log(f"warning: {str(exc).split('; ')[0]}: writing it again")
    write_split(path, fold, by_id)


def _write_fold_files(output: Path, fold: Fold, by_id: dict, found: dict, info: dict, store: Path,
                      utterance_store: Path | None) -> None:
    """split.csv and config.json of the fold."""
    write_split(output / SPLIT_FILE, fold, by_id)
    atomic_json(output / CONFIG_FILE, {
        **found, **{k: v for k, v in info.items() if k != "input_dim"}, "store": str(store),
        "utterance_store": str(utterance_store) if utterance_store else None,
        "fold": fold.index, "fold_name": fold.name,
        "speakers": {role: sorted({by_id[i].speaker for i in ids}) for role, ids in _roles(fold)}})


def _train_transform(model: str, model_config, train_config: TrainConfig):
    """Random crops and SpecAugment for a frame-level torch model (None when neither applies)."""
    from sertool.training.data import RandomCrop, SpecAugment  # torch: heavy, loaded only when a model trains

    spec = model_spec(model)
    if spec.trainer != "sgd" or spec.level != "frame":
        return None
    transforms = []
    frames = spec.input_frames(model_config)
    if train_config.random_crop and frames:
        transforms.append(RandomCrop(frames))
    if train_config.specaugment:
        transforms.append(SpecAugment(train_config.freq_masks, train_config.freq_mask_width,
                                      train_config.time_masks, train_config.time_mask_width))
    return Chain(transforms) if transforms else None


def set_up_fold(fold: Fold, *, utterances, store: Path, model: str, model_config,
                train_config: TrainConfig, labels: list[str], output: Path, utterance_store: Path | None,
                found: dict, log, targets: dict | None = None) -> FoldSetup:
    """Write split.csv and config.json (rank 0), fit the normaliser, build the datasets.

    Parameters
    ----------
    fold : Fold
    utterances : list of Utterance
        The whole manifest.
    store, utterance_store : Path
        Feature stores (the second optional).
    model, model_config, train_config, labels, output, log
        As for :func:`sertool.training.trainer.train_fold`.
    found : dict
        The fold's :func:`fingerprint`.
    targets : dict, optional
        Regression: id -> target values (:func:`~sertool.training.targets.target_values`); ``labels`` are then
        the target names, and each item's target is its values standardised by the training rows' statistics.

    Returns
    -------
    FoldSetup
    """
    from sertool.training.data import FeatureDataset, JoinedStore  # torch: heavy, loaded only when a model trains

    by_id = {u.id: u for u in utterances}
    joined = JoinedStore(store, utterance_store)
    info = {"feature_set": joined.frames.attrs["feature_set"], "feature_config": joined.frames.attrs["config"],
            "utterance_feature_config": joined.utterance.attrs["config"] if joined.utterance else {},
            "input_dim": joined.dim}
    normaliser = fit_normaliser(train_config.norm, joined, utterances, train_ids=list(fold.train),
                                other_ids=list(fold.valid))
    if distributed.world().is_main:  # under DDP, rank 0 alone writes the fold's files
        _write_fold_files(output, fold, by_id, found, info, store, utterance_store)
    index = {label: k for k, label in enumerate(labels)}
    scale = TargetScale.fit(labels, targets, fold.train, f"fold {fold.index} ({fold.name})") if targets else None

    def dataset(ids):
        truth = scale.standardised(ids) if scale else [index[by_id[i].label] for i in ids]
        return FeatureDataset(store, list(ids), truth, normaliser, utterance_store)

    train_set, valid_set = dataset(fold.train), dataset(fold.valid)
    train_set.corpora = [by_id[i].corpus for i in fold.train]  # for balance "corpus"
    train_set.transform = _train_transform(model, model_config, train_config)
    return FoldSetup(fold, output, labels, model, model_config, train_config, found, info, normaliser,
                     train_set, valid_set, training_device(train_config.device), log, scale)


class Chain:
    """Transforms applied in order, sharing one generator (picklable for loader workers)."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x, generator=None):
        for t in self.transforms:
            x = t(x, generator)
        return x
