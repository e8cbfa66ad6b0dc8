"""Training: one model per fold, epoch chosen on validation speakers, resumable.

Per fold, ``RUN_DIR/fold-<i>/`` holds

- ``split.csv``: id, speaker, label, role (train / valid / test) of every utterance;
- ``train_log.csv``: epoch, train_loss, valid_loss, valid_UA, valid_WA, lr, seconds;
- ``state.pt``: the last finished epoch (weights, optimiser, best weights and
  the running sum of the last epochs' weights), rewritten atomically after
  every epoch: a rerun resumes from it;
- ``checkpoint.pt``: the model ``TrainConfig.selection`` names, as a
  :class:`~sertool.models.checkpoint.Checkpoint`, written when the fold finishes,
  beside ``checkpoint-best.pt`` (highest validation UA), ``checkpoint-last.pt``
  and ``checkpoint-average.pt`` (mean weights of the last epochs);
- ``config.json``: model, feature, train configs and the fold's speakers.

Classic estimators (trainer ``fit``) write ``train_log.csv`` with one row per
value of C tried on the validation speakers, and ``checkpoint.pt``.

Normalisation (:mod:`sertool.features.normalise`): global statistics come from the fold's
training utterances only; speaker statistics from each speaker's own
utterances. Randomness is seeded per (seed, epoch), so a resumed run replays the same
batches and dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sertool.io.atomic import atomic_path, atomic_write
from sertool.errors import ConfigError, SertoolError
from sertool.io.manifest import Utterance, read_manifest
from sertool.training.runs import atomic_json, read_run_info
from sertool.models.common import fast_layout
from sertool.training.splits import Fold, make_folds

LOG_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_UA", "valid_WA", "lr", "seconds")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
LOSSES = ("ce", "focal")
BALANCES = ("none", "loss", "sampler")
SELECTIONS = ("best", "average", "last")
DEVICES = ("auto", "cpu", "cuda")
#: ``auto``: bfloat16 autocast where the device computes it natively, else float32; ``bf16`` autocast anywhere.
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. These defaults are the generic recipe; each model's registry entry
    overrides some of them (its ``recipe``), and ``--recipe paper`` takes the paper's setting instead.

    Schedules (learning rate as a function of the step, so a resumed run replays it exactly):
    ``onecycle`` (linear warm-up over the first 30 % of steps from lr/25 to lr, then cosine down
    to lr/1e4), ``cosine`` (linear warm-up over ``warmup_epochs``, then cosine to 0), ``step``
    (the LIGHT-SERNET paper: constant, then x ``lr_decay_factor`` every ``lr_decay_every`` epochs
    from ``lr_decay_start``) and ``constant``.

    ``precision``: the forward pass and loss of training steps under bfloat16 autocast (``bf16``;
    weights, optimiser and validation stay float32), or float32 (``fp32``); ``auto`` is bf16 where the
    device computes it natively (CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX) and fp32
    elsewhere. Measured on RAVDESS (4 speaker folds, LIGHT-SERNET default recipe): pooled UA 0.604 with
    bf16, 0.599 with fp32, 1.78 instead of 2.94 s per epoch (``bench/bench_train.py``).

    ``selection`` says which weights become ``checkpoint.pt``: ``best`` (the epoch with the highest
    validation UA), ``average`` (the mean of the weights of the last ``average_last`` epochs, batch-norm
    statistics recomputed on the training data) or ``last``. ``patience`` 0 never stops early.
    """

    epochs: int = 40
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = 0.9
    weight_decay: float = 1e-2
    decay_params: str = "matrices"
    schedule: str = "onecycle"
    warmup_epochs: int = 2
    lr_decay_start: int = 50
    lr_decay_every: int = 20
    lr_decay_factor: float = math.exp(-0.15)
    loss: str = "ce"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    mixup: float = 0.0
    balance: str = "none"
    norm: str = "global"
    patience: int = 0
    selection: str = "last"
    average_last: int = 5
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int = 0
    specaugment: bool = True
    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 20
    random_crop: bool = True
    precision: str = "auto"

    def __post_init__(self):
        from sertool.features.normalise import check_mode

        for name, value, allowed in (("loss", self.loss, LOSSES), ("device", self.device, DEVICES),
                                     ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("schedule", self.schedule, SCHEDULES), ("balance", self.balance, BALANCES),
                                     ("selection", self.selection, SELECTIONS),
                                     ("precision", self.precision, PRECISIONS),
                                     ("decay_params", self.decay_params, ("matrices", "conv"))):
            if value not in allowed:
                raise ConfigError(f"{name} {value!r} must be one of {', '.join(allowed)}")
        check_mode(self.norm)
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and lr > 0")
        if not 0 <= self.label_smoothing < 1 or self.mixup < 0:
            raise ConfigError("label_smoothing must be in [0, 1) and mixup (a Beta alpha) >= 0")
        if self.selection == "average" and self.average_last < 1:
            raise ConfigError("selection 'average' needs average_last >= 1")

    def lr_at(self, epoch: int, fraction: float = 0.0) -> float:
        """Learning rate at 1-based ``epoch`` plus ``fraction`` (0 <= fraction < 1) of its steps."""
        t = (epoch - 1 + fraction) / self.epochs  # progress through the run, 0 .. 1
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "step":
            if epoch < self.lr_decay_start:
                return self.lr
            return self.lr * self.lr_decay_factor ** ((epoch - self.lr_decay_start) // self.lr_decay_every + 1)
        if self.schedule == "onecycle":
            peak = 0.3
            if t < peak:
                return self.lr / 25 + (self.lr - self.lr / 25) * t / peak
            return self.lr / 1e4 + (self.lr - self.lr / 1e4) * 0.5 * (1 + math.cos(math.pi * (t - peak) / (1 - peak)))
        warm = self.warmup_epochs / self.epochs
        if t < warm:
            return self.lr * (t + 1 / self.epochs) / (warm + 1 / self.epochs)
        return self.lr * 0.5 * (1 + math.cos(math.pi * (t - warm) / max(1e-9, 1 - warm)))


def build_train_config(overrides: dict[str, Any] | None = None, *, model_name: str | None = None,
                       recipe: str = "default") -> TrainConfig:
    """TrainConfig: defaults, then model ``model_name``'s ``recipe``, then ``overrides`` (None values ignored)."""
    from sertool.configs import dataclass_from_dict

    values = {}
    if model_name is not None:
        from sertool.models import recipe as model_recipe

        values.update(model_recipe(model_name, recipe))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return dataclass_from_dict(TrainConfig, values, what="training")


def load_train_toml(path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A train TOML's ``[model]`` and ``[train]`` tables: (model overrides, :class:`TrainConfig` overrides).

    Raises
    ------
    ConfigError
        A missing or malformed file, or tables other than ``[model]`` and ``[train]``.
    """
    from sertool.configs import load_toml

    data = load_toml(path)
    stray = sorted(set(data) - {"model", "train"})
    if stray:
        raise ConfigError(f"{path}: unknown table(s) {stray}; a train config has [model] and [train] tables")
    return dict(data.get("model", {})), dict(data.get("train", {}))


def _device(name: str):
    """The torch device; under DDP on CUDA, this process's GPU (``LOCAL_RANK``)."""
    import torch

    from sertool.training.distributed import world
    from sertool.runtime.process import torch_device

    device = torch_device(name)
    if device.type == "cuda" and world().active:
        return torch.device("cuda", world().local_rank)
    return device


@dataclass
class FoldResult:
    fold: Fold
    directory: Path
    best_epoch: int
    valid_ua: float
    epochs_run: int
    seconds: float
    skipped: bool


@dataclass
class _FoldSetup:
    """What one fold's training needs, built once by :func:`_set_up_fold`."""

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

    @property
    def state_path(self) -> Path:
        return self.out_dir / "state.pt"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "train_log.csv"


def _fingerprint(fold: Fold, model_name: str, model_config, train_config: TrainConfig, labels: list[str],
                 features: list[str], by_id: dict[str, Utterance]) -> dict:
    """What a resumed fold must share with the run in its folder: settings, features and the data of its split.

    ``features`` are the config hashes of the store (and utterance store); the split's ids with their
    labels and speakers are hashed, so another manifest or store is another run. Workers, threads and
    device may differ on resume.
    """
    import hashlib

    results_config = {k: v for k, v in dataclasses.asdict(train_config).items()
                      if k not in ("workers", "threads", "device", "precision")}
    rows = [(role, i, by_id[i].label, by_id[i].speaker)
            for role, ids in (("train", fold.train), ("valid", fold.valid), ("test", fold.test)) for i in ids]
    from sertool.training.distributed import world

    fingerprint = {"model": model_name, "model_config": dataclasses.asdict(model_config),
                   "train_config": results_config, "labels": labels, "train": len(fold.train),
                   "valid": len(fold.valid), "test": len(fold.test), "features": features,
                   "split": hashlib.sha256(json.dumps(rows).encode()).hexdigest()}
    if world().active:  # each rank's share of a batch depends on it: resume with the same number of processes
        fingerprint["world_size"] = world().size
    precision = resolved_precision(train_config, _device(train_config.device))
    if precision != "fp32":  # bf16 steps give other weights: resume only in bf16 (fp32 runs keep older fingerprints)
        fingerprint["precision"] = precision
    return json.loads(json.dumps(fingerprint))


def _set_up_fold(fold: Fold, *, utterances, store_path: Path, model_name: str, model_config,
                 train_config: TrainConfig, labels: list[str], out_dir: Path, utterance_store: Path | None,
                 fingerprint: dict, log) -> _FoldSetup:
    """Write split.csv and config.json, fit the normaliser, build the datasets."""
    from sertool.training.data import FeatureDataset, JoinedStore
    from sertool.models import model_spec
    from sertool.features.normalise import fit_normaliser
    from sertool.training.runs import atomic_json, write_split

    from sertool.training.distributed import world

    by_id = {u.id: u for u in utterances}
    writer = world().is_main  # under DDP, rank 0 alone writes the fold's files
    if writer:
        write_split(out_dir / "split.csv", fold, by_id)
    joined = JoinedStore(store_path, utterance_store)
    info = {"feature_set": joined.frames.attrs["feature_set"], "feature_config": joined.frames.attrs["config"],
            "utterance_feature_config": joined.utterance.attrs["config"] if joined.utterance else {},
            "input_dim": joined.dim}
    normaliser = fit_normaliser(train_config.norm, joined, utterances, train_ids=list(fold.train),
                                other_ids=list(fold.valid))
    if writer:
        atomic_json(out_dir / "config.json", {
            **fingerprint, **{k: v for k, v in info.items() if k != "input_dim"}, "store": str(store_path),
            "utterance_store": str(utterance_store) if utterance_store else None,
            "fold": fold.index, "fold_name": fold.name,
            "speakers": {role: sorted({by_id[i].speaker for i in ids})
                         for role, ids in (("train", fold.train), ("valid", fold.valid), ("test", fold.test))}})
    index = {label: k for k, label in enumerate(labels)}

    def dataset(ids):
        return FeatureDataset(store_path, list(ids), [index[by_id[i].label] for i in ids], normaliser,
                              utterance_store)

    train_set, valid_set = dataset(fold.train), dataset(fold.valid)
    spec = model_spec(model_name)
    if spec.trainer == "sgd" and spec.level == "frame":
        from sertool.training.data import RandomCrop, SpecAugment

        transforms = []
        frames = getattr(model_config, "input_frames", None)
        if train_config.random_crop and frames:
            transforms.append(RandomCrop(frames))
        if train_config.specaugment:
            transforms.append(SpecAugment(train_config.freq_masks, train_config.freq_mask_width,
                                          train_config.time_masks, train_config.time_mask_width))
        train_set.transform = _Chain(transforms) if transforms else None
    return _FoldSetup(fold, out_dir, labels, model_name, model_config, train_config, fingerprint, info, normaliser,
                      train_set, valid_set, _device(train_config.device), log)


class _Chain:
    """Transforms applied in order, sharing one generator (picklable for loader workers)."""

    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x, generator=None):
        for t in self.transforms:
            x = t(x, generator)
        return x


def train_fold(fold: Fold, *, utterances: list[Utterance], store_path: Path, model_name: str,
               model_config, train_config: TrainConfig, labels: list[str], out_dir: Path,
               utterance_store: Path | None = None, log: Callable[[str], None] = lambda m: None) -> FoldResult:
    """Train one fold into ``out_dir`` (resuming from ``state.pt`` when present)."""
    from sertool.models import model_spec
    from sertool.store.core import FeatureStore

    out_dir.mkdir(parents=True, exist_ok=True)
    features = []
    for path in filter(None, (store_path, utterance_store)):
        with FeatureStore(path) as store:
            features.append(store.config_hash)
    fingerprint = _fingerprint(fold, model_name, model_config, train_config, labels, features,
                               {u.id: u for u in utterances})
    from sertool.training import distributed

    state = distributed.broadcast(_resume_state(out_dir, fingerprint) if distributed.world().is_main else None)
    if isinstance(state, str):  # rank 0 found another run in the folder: every rank stops with its message
        raise SertoolError(state)
    if state is not None and state.get("finished"):
        log(f"fold {fold.index}: already finished (best epoch {state['best_epoch']}), skipped")
        return FoldResult(fold, out_dir, state["best_epoch"], state["best_ua"], state["epoch"], 0.0, True)
    setup = _set_up_fold(fold, utterances=utterances, store_path=store_path, model_name=model_name,
                         model_config=model_config, train_config=train_config, labels=labels, out_dir=out_dir,
                         utterance_store=utterance_store, fingerprint=fingerprint, log=log)
    from sertool.runtime.process import torch_threads

    with torch_threads(train_config.threads):  # the caller's thread count comes back afterwards
        if model_spec(model_name).trainer == "fit":  # one fit, on rank 0; the others wait for its result
            return distributed.broadcast(_fit_fold(setup) if distributed.world().is_main else None)
        return _sgd_fold(setup, state)


def _resume_state(out_dir: Path, fingerprint: dict):
    """The fold's saved state (None for a fresh fold), or the error message when the folder holds another run."""
    import torch

    state_path, ckpt_path = out_dir / "state.pt", out_dir / "checkpoint.pt"
    if not state_path.exists():
        return None
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fingerprint:
        return (f"{out_dir}: holds a run with other settings, features or data (or another number of DDP "
                "processes); use a new -o folder or delete it to start over")
    if state.get("finished") and not ckpt_path.exists():
        return None  # finished states keep no weights: train the fold again
    return state


# --------------------------------------------------------------------------- classic estimators
def _fit_fold(setup: _FoldSetup) -> FoldResult:
    """Fit a classic estimator: hyperparameter chosen on the validation speakers, one log row per value."""
    from sertool.training.data import utterance_matrix
    from sertool.models import model_spec

    begin = time.monotonic()
    x, y = utterance_matrix(setup.train_set)
    xv, yv = utterance_matrix(setup.valid_set)
    spec = model_spec(setup.model_name)
    config, state_dict, rows = spec.cls.fit(x, y, xv, yv, config=setup.model_config,
                                            num_classes=len(setup.labels), log=setup.log)
    chosen = {r[0]: r for r in rows}.get(config.C, (config.C, float("nan"), float("nan")))
    with open(setup.out_dir / "train_log.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["C", "valid_UA", "valid_WA"])
        w.writerows([[f"{c:g}", f"{ua:.4f}", f"{wa:.4f}"] for c, ua, wa in rows])
    model = spec.cls(config, input_dim=setup.info["input_dim"], num_classes=len(setup.labels))
    model.load_state_dict(state_dict)  # checks every array has the shape the config implies
    metrics = {"valid_UA": chosen[1], "C": config.C, "best_epoch": 0, "epochs_run": 0}
    _write_checkpoint(setup, "checkpoint.pt", model, metrics, model_config=config)
    _save_state(setup.state_path, {"epoch": 0, "best_ua": chosen[1], "best_epoch": 0},
                setup.fingerprint, finished=True)
    setup.log(f"fold {setup.fold.index}: {setup.model_name} C={config.C:g} (valid UA {chosen[1]:.3f})")
    return FoldResult(setup.fold, setup.out_dir, 0, chosen[1], 0, time.monotonic() - begin, False)


# --------------------------------------------------------------------------- torch training loop
def _optimiser(model, config: TrainConfig):
    import torch

    if config.decay_params == "conv":  # the LIGHT-SERNET paper: L2 on convolution kernels only
        decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "conv" in type(_owner(model, n)).__name__.lower()]
    else:
        decay = [p for p in model.parameters() if p.ndim > 1]
    decay_ids = {id(p) for p in decay}
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": [p for p in model.parameters() if id(p) not in decay_ids], "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, betas=(config.beta1, config.beta2))


def _loss_function(config: TrainConfig, class_counts):
    """``loss(logits (B, C), target (B,)) -> scalar``: CE (label smoothing, class weights) or focal."""
    import torch

    from sertool.models.common import focal_loss

    weight = None
    if config.balance == "loss":
        counts = torch.tensor(class_counts, dtype=torch.float32).clamp(min=1)
        weight = counts.sum() / (len(counts) * counts)
    if config.loss == "focal":
        return lambda logits, y: focal_loss(logits, y, config.focal_gamma)
    smoothing = config.label_smoothing

    def ce(logits, y):
        w = weight.to(logits.device) if weight is not None else None
        return torch.nn.functional.cross_entropy(logits, y, weight=w, label_smoothing=smoothing)

    return ce


def _train_loader(setup: _FoldSetup, epoch: int):
    import torch

    from sertool.training.data import collate

    from sertool.training import distributed

    config = setup.train_config
    order = torch.Generator().manual_seed(config.seed * 100003 + epoch)
    options = dict(batch_size=config.batch_size, collate_fn=collate, num_workers=config.workers)
    if config.balance == "sampler":
        counts = _class_counts(setup)
        weights = [1.0 / counts[y] for y in setup.train_set.labels]
        sampler = torch.utils.data.WeightedRandomSampler(weights, len(weights), replacement=True, generator=order)
    elif distributed.world().active:
        sampler = torch.randperm(len(setup.train_set), generator=order).tolist()  # the order every rank shares
    else:
        return torch.utils.data.DataLoader(setup.train_set, shuffle=True, generator=order, **options)
    if distributed.world().active:  # this rank's share of the order; the global batch stays batch_size
        sampler = distributed.shard(list(sampler))
        options["batch_size"] = max(1, config.batch_size // distributed.world().size)
    return torch.utils.data.DataLoader(setup.train_set, sampler=sampler, **options)


def _class_counts(setup: _FoldSetup) -> list[int]:
    counts = [0] * len(setup.labels)
    for y in setup.train_set.labels:
        counts[y] += 1
    return counts


def _train_epoch(setup: _FoldSetup, model, optimiser, loss_fn, epoch: int) -> float:
    """One pass over the training set (lr set per step); returns the mean training loss (over all ranks).

    ``model`` is the network, or its DistributedDataParallel wrapper under DDP.
    """
    import torch

    config = setup.train_config
    torch.manual_seed(config.seed * 100003 + epoch)  # dropout, masks, mixup and batch order per epoch
    setup.train_set.epoch_seed = config.seed * 100003 + epoch
    loader = _train_loader(setup, epoch)
    steps = len(loader)
    model.train()
    total, count = 0.0, 0
    for step, (feats, lengths, y) in enumerate(loader):
        for group in optimiser.param_groups:
            group["lr"] = config.lr_at(epoch, step / steps)
        feats, y, lengths = feats.to(setup.device), y.to(setup.device), lengths.to(setup.device)
        with _autocast(config, setup.device):
            if config.mixup > 0:
                lam = float(torch.distributions.Beta(config.mixup, config.mixup).sample())
                perm = torch.randperm(len(y))
                feats = lam * feats + (1 - lam) * feats[perm]
                lengths = torch.maximum(lengths, lengths[perm])
                logits = model(feats, lengths).float()
                loss = lam * loss_fn(logits, y) + (1 - lam) * loss_fn(logits, y[perm])
            else:
                loss = loss_fn(model(feats, lengths).float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
    from sertool.training.distributed import world

    if world().active:
        import torch.distributed as dist

        sums = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(sums)
        total, count = float(sums[0]), int(sums[1])
    return total / max(count, 1)


def native_bf16(device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 / AMX."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _cpu_has_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 in /proc/cpuinfo's flags (read once: training asks on every step)."""
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolved_precision(config: TrainConfig, device) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on ``device`` (``auto``: bf16 where it is native)."""
    if config.precision != "auto":
        return config.precision
    return "bf16" if native_bf16(device) else "fp32"


def _autocast(config: TrainConfig, device):
    """bfloat16 autocast when the resolved precision is bf16; otherwise a no-op."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolved_precision(config, device) == "bf16")


def _validate(setup: _FoldSetup, model, loss_fn) -> tuple[dict, float]:
    """Validation scores (UA, WA, ...) and loss; UA nan when the fold has no validation utterances."""
    import torch

    from sertool.training.data import collate
    from sertool.inference.runner import evaluate_loader
    from sertool.metrics import confusion, scores

    if not len(setup.valid_set):
        return {"UA": float("nan"), "WA": float("nan")}, float("nan")
    loader = torch.utils.data.DataLoader(setup.valid_set, batch_size=setup.train_config.batch_size,
                                         collate_fn=collate, num_workers=setup.train_config.workers)
    probs, truth, loss = evaluate_loader(model, loader, setup.device, loss_fn)
    return scores(confusion(truth, probs.argmax(axis=1), len(setup.labels))), loss


def _weights(model) -> dict:
    """A CPU copy of the weights in the standard (contiguous) layout, whatever the model's memory format."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _accumulate(average: dict | None, model) -> dict:
    """Running sum of floating-point weights (others: the latest value)."""
    weights = _weights(model)
    if average is None:
        return {k: v.double() if v.is_floating_point() else v for k, v in weights.items()}
    return {k: average[k] + v.double() if v.is_floating_point() else v for k, v in weights.items()}


def _averaged_model(setup: _FoldSetup, model, total: dict, count: int):
    """``model`` with the mean of the accumulated weights and batch-norm statistics recomputed on training data."""
    import torch

    from sertool.training.data import collate

    reference = model.state_dict()
    model.load_state_dict({k: (v / count).to(reference[k].dtype) if v.is_floating_point() else v
                           for k, v in total.items()})
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        torch.manual_seed(setup.train_config.seed * 100003)
        loader = torch.utils.data.DataLoader(setup.train_set, batch_size=setup.train_config.batch_size,
                                             collate_fn=collate, num_workers=setup.train_config.workers)
        model.train()
        with torch.no_grad():
            for feats, lengths, _ in loader:
                model(feats.to(setup.device), lengths)
        for m in norms:
            m.momentum = 0.1
    return model.eval()


def _sgd_fold(setup: _FoldSetup, state: dict | None) -> FoldResult:
    """The epoch loop with validation, per-epoch state for resuming, and the final checkpoints."""
    import torch

    from sertool.models import build_model

    from sertool.training import distributed

    config = setup.train_config
    main = distributed.world().is_main
    torch.manual_seed(config.seed)
    model = fast_layout(build_model(setup.model_name, setup.model_config, input_dim=setup.info["input_dim"],
                                    num_classes=len(setup.labels)).to(setup.device))
    trained = model  # what the epoch runs: the model, or under DDP its wrapper (gradients all-reduced)
    if distributed.world().active:
        from torch.nn.parallel import DistributedDataParallel

        gpu = [setup.device.index] if setup.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=gpu)
    optimiser = _optimiser(model, config)
    loss_fn = _loss_function(config, _class_counts(setup))
    start_epoch, best, average = 1, {"ua": -1.0, "epoch": 0, "weights": None}, {"sum": None, "count": 0}
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        start_epoch = state["epoch"] + 1
        best = {"ua": state["best_ua"], "epoch": state["best_epoch"], "weights": state["best_weights"]}
        average = {"sum": state.get("average_sum"), "count": state.get("average_count", 0)}
        if main:
            _truncate_log(setup.log_path, state["epoch"])
        setup.log(f"fold {setup.fold.index}: resuming after epoch {state['epoch']}")
    elif main and setup.log_path.exists():
        setup.log_path.unlink()
    begin, epoch = time.monotonic(), start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        if config.patience and best["epoch"] > 0 and epoch - best["epoch"] > config.patience:
            epoch -= 1
            break
        tick = time.monotonic()
        train_loss = _train_epoch(setup, trained, optimiser, loss_fn, epoch)
        if not main:  # rank 0 validates and writes; the others only need its early-stopping decision
            best["epoch"] = distributed.broadcast(None)
            continue
        valid, valid_loss = _validate(setup, model, loss_fn)
        ua = valid["UA"] if valid["UA"] == valid["UA"] else 0.0
        if ua > best["ua"] or not len(setup.valid_set):  # no validation set: the last epoch is "best"
            best = {"ua": valid["UA"], "epoch": epoch, "weights": _weights(model)}
        if epoch > config.epochs - config.average_last:
            average = {"sum": _accumulate(average["sum"], model), "count": average["count"] + 1}
        seconds = time.monotonic() - tick
        _append_log(setup.log_path, [epoch, f"{train_loss:.5f}", f"{valid_loss:.5f}", f"{valid['UA']:.4f}",
                                     f"{valid['WA']:.4f}", f"{config.lr_at(epoch):.3g}", f"{seconds:.2f}"])
        _save_state(setup.state_path, {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                                       "epoch": epoch, "best_ua": best["ua"], "best_epoch": best["epoch"],
                                       "best_weights": best["weights"], "average_sum": average["sum"],
                                       "average_count": average["count"]}, setup.fingerprint, finished=False)
        setup.log(f"fold {setup.fold.index} epoch {epoch}: train loss {train_loss:.3f}, valid UA {valid['UA']:.3f} "
                  f"WA {valid['WA']:.3f} (best {best['ua']:.3f} @ {best['epoch']}), {seconds:.1f} s")
        distributed.broadcast(best["epoch"])
    selected = float("nan")
    if main:
        selected = _write_checkpoints(setup, model, best, average, epoch)
        _save_state(setup.state_path, {"epoch": epoch, "best_ua": best["ua"], "best_epoch": best["epoch"]},
                    setup.fingerprint, finished=True)
    best_epoch, selected = distributed.broadcast((best["epoch"], selected))
    return FoldResult(setup.fold, setup.out_dir, best_epoch, selected, epoch, time.monotonic() - begin, False)


def _write_checkpoints(setup: _FoldSetup, model, best: dict, average: dict, epochs_run: int) -> float:
    """checkpoint-best.pt, checkpoint-last.pt, checkpoint-average.pt (when the run reached the last epochs)
    and checkpoint.pt (the one ``selection`` names); returns the selected model's validation UA."""
    from sertool.models import build_model

    candidates = {"last": (model, epochs_run)}
    if best["weights"] is not None:
        best_model = build_model(setup.model_name, setup.model_config, input_dim=setup.info["input_dim"],
                                 num_classes=len(setup.labels))
        best_model.load_state_dict(best["weights"])
        candidates["best"] = (best_model, best["epoch"])
    if average["count"]:
        averaged = _averaged_model(setup, copy.deepcopy(model), average["sum"], average["count"])
        candidates["average"] = (averaged, epochs_run)
    chosen = setup.train_config.selection if setup.train_config.selection in candidates else "best"
    if chosen != setup.train_config.selection:
        setup.log(f"fold {setup.fold.index}: stopped before the last {setup.train_config.average_last} epochs; "
                  "checkpoint.pt is the best-validation epoch")
    uas = {}
    for name, (m, epoch) in candidates.items():
        valid, _ = _validate(setup, m, None)
        uas[name] = valid["UA"]
        metrics = {"valid_UA": valid["UA"], "best_epoch": best["epoch"], "epochs_run": epochs_run,
                   "selection": name, "epoch": epoch,
                   "precision": resolved_precision(setup.train_config, setup.device)}
        _write_checkpoint(setup, f"checkpoint-{name}.pt", m, metrics)
        if name == chosen:
            _write_checkpoint(setup, "checkpoint.pt", m, metrics)
    setup.log(f"fold {setup.fold.index}: valid UA " + ", ".join(f"{k} {v:.3f}" for k, v in uas.items())
              + f"; checkpoint.pt = {chosen}")
    return uas.get(chosen, float("nan"))


def _write_checkpoint(setup: _FoldSetup, name: str, model, metrics: dict, *, model_config=None) -> None:
    from sertool.models.checkpoint import Checkpoint

    info = setup.info
    Checkpoint(model=setup.model_name, model_config=dataclasses.asdict(model_config or setup.model_config),
               feature_set=info["feature_set"], feature_config=info["feature_config"], labels=setup.labels,
               train_config=dataclasses.asdict(setup.train_config), state_dict=_weights(model), metrics=metrics,
               utterance_feature_config=info["utterance_feature_config"],
               **setup.normaliser.checkpoint_fields(info["input_dim"])).save(setup.out_dir / name)


def _owner(model, param_name: str):
    module = model
    for part in param_name.split(".")[:-1]:
        module = getattr(module, part)
    return module


def _save_state(path: Path, payload: dict, fingerprint: dict, *, finished: bool) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save({**payload, "fingerprint": fingerprint, "finished": finished}, tmp)


def _append_log(path: Path, row: list) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(LOG_COLUMNS)
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def _truncate_log(path: Path, last_epoch: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_epoch]
    with atomic_write(path) as fh:
        csv.writer(fh).writerows(kept)


def check_store_kind(model_name: str, store_path, *, norm: str = "global") -> None:
    """ConfigError unless the store's level (frame / utterance) is the one model ``model_name`` reads."""
    from sertool.models import MODELS, model_spec
    from sertool.features.normalise import check_mode
    from sertool.store.core import FeatureStore

    spec = model_spec(model_name)
    with FeatureStore(store_path) as store:
        level, feature_set = store.attrs.get("level", "frame"), store.attrs.get("feature_set", "?")
    check_mode(norm, level=level)
    if level != spec.level:
        fitting = sorted(n for n, s in MODELS.items() if s.level == level)
        article = "an" if level == "utterance" else "a"
        raise ConfigError(
            f"{store_path}: {feature_set} is {article} {level}-level store, but model {model_name!r} reads "
            f"{spec.level}-level features (e.g. --features {spec.features}); for this store use one of: {', '.join(fitting)}")


def train_run(manifest, store_path, *, model_name: str, out_dir, protocol: str = "speaker-kfold",
              folds: int = 5, fold: int | None = None, valid_speakers: int = 2,
              test_speakers: list[str] | None = None, split_column: str = "split",
              model_overrides: dict | None = None, train_config: TrainConfig | None = None,
              utterance_store=None, log: Callable[[str], None] = lambda m: None) -> list[FoldResult]:
    """Split ``manifest`` by ``protocol`` and train every fold (or only ``fold``).

    Raises
    ------
    SertoolError
        Bad protocol settings, unlabelled rows, a store without features for
        some rows, or a run folder holding a different run.
    """
    from sertool.training import distributed
    from sertool.models import build_model_config, model_spec

    train_config = train_config or build_train_config(model_name=model_name)
    world = distributed.start(train_config.device)  # a no-op unless launched by torchrun / srun
    if not world.is_main:
        log = lambda message: None  # noqa: E731 - rank 0 alone reports
    utterances = read_manifest(manifest)
    unlabelled = [u.id for u in utterances if not u.label]
    if unlabelled:
        raise SertoolError(f"{manifest}: {len(unlabelled)} rows have no label (e.g. {unlabelled[0]!r}); "
                           "training needs labels")
    labels = sorted({u.label for u in utterances})
    model_overrides = dict(model_overrides or {})
    check_store_kind(model_name, store_path, norm=train_config.norm)
    from sertool.store.core import FeatureStore

    if utterance_store:
        if not model_spec(model_name).takes_utterance_vector:
            raise ConfigError(f"model {model_name!r} takes no utterance-level vector; --utterance-store works "
                              "with models that have a speaker_dim setting (mscnn_spu, mscnn_spu_att)")
        with FeatureStore(utterance_store) as extra:
            model_overrides["speaker_dim"] = extra.dim
    adapt = model_spec(model_name).adapt
    if adapt is not None:  # settings the store decides (the user's --set still wins)
        with FeatureStore(store_path) as store:
            model_overrides = {**adapt(store.attrs["config"]), **model_overrides}
    model_config = build_model_config(model_name, model_overrides)
    all_folds = make_folds(utterances, protocol, folds=folds, valid_speakers=valid_speakers,
                           test_speakers=test_speakers, split_column=split_column, seed=train_config.seed, warn=log)
    if fold is not None and not 0 <= fold < len(all_folds):
        raise ConfigError(f"--fold {fold}: this protocol has folds 0-{len(all_folds) - 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_info = {"manifest": str(Path(manifest).resolve()), "store": str(Path(store_path).resolve()),
                "protocol": protocol, "folds": len(all_folds), "model": model_name, "labels": labels,
                "norm": train_config.norm,
                "utterance_store": str(Path(utterance_store).resolve()) if utterance_store else None}
    earlier = read_run_info(out_dir)
    changed = [k for k in ("manifest", "store", "utterance_store", "model") if earlier and earlier.get(k) != run_info[k]]
    if changed:
        raise SertoolError(f"{out_dir}: holds a run with another {', '.join(changed)} ({earlier[changed[0]]}); use a "
                           "new -o folder or delete it to start over")
    if world.is_main:
        atomic_json(out_dir / "run.json", {**run_info, **({"processes": world.size} if world.active else {})})
    results = []
    for f in all_folds:
        if fold is not None and f.index != fold:
            continue
        log(f"fold {f.index} ({f.name}): {len(f.train)} train, {len(f.valid)} valid, {len(f.test)} test utterances")
        results.append(train_fold(f, utterances=utterances, store_path=Path(store_path), model_name=model_name,
                                  model_config=model_config, train_config=train_config, labels=labels,
                                  out_dir=out_dir / f"fold-{f.index}",
                                  utterance_store=Path(utterance_store) if utterance_store else None, log=log))
    distributed.barrier()  # the files rank 0 wrote are complete before any rank goes on
    return results
