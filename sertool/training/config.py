"""Training settings: :class:`TrainConfig`, its value sets (``metadata["choices"]``) and TOML loading.

Fields that take one of a fixed set of values declare it as ``metadata["choices"]``; the CLI builds its
choice lists from it (:func:`sertool.configs.choices`) and :meth:`TrainConfig.__post_init__` validates
against it, so the set is written once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from sertool.configs import choices, dataclass_from_dict, load_toml
from sertool.errors import ConfigError
from sertool.features.normalise import NORM_MODES
from sertool.models import recipe as model_recipe

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "constant")
LOSSES = ("ce", "focal", "mse", "ccc")
#: losses of class probabilities (a classifier); ``mse`` and ``ccc`` are those of values (``train --target``)
CLASSIFICATION_LOSSES = ("ce", "focal")
REGRESSION_LOSSES = ("mse", "ccc")
BALANCES = ("none", "loss", "sampler", "corpus")
SELECTIONS = ("best", "average", "last")
DEVICES = ("auto", "cpu", "cuda")
#: ``auto``: bfloat16 autocast where the device computes it natively, else float32; ``bf16`` autocast anywhere.
PRECISIONS = ("auto", "fp32", "bf16")
#: ``matrices``: weight decay on every weight with 2+ dimensions; ``conv``: only on convolution kernels.
DECAY_PARAMS = ("matrices", "conv")


def _option(default: Any, help: str, values: tuple[str, ...] | None = None):
    """A dataclass field with ``metadata["help"]`` and, for a fixed value set, ``metadata["choices"]``."""
    metadata: dict[str, Any] = {"help": help}
    if values is not None:
        metadata["choices"] = values
    return dataclasses.field(default=default, metadata=metadata)


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

    Raises
    ------
    ConfigError
        A value outside its field's ``choices``, or an out-of-range number.
    """

    epochs: int = 40
    batch_size: int = 32
    optimizer: str = _option("adamw", "Optimiser.", OPTIMIZERS)
    lr: float = _option(1e-3, "Peak learning rate.")
    beta1: float = 0.9
    beta2: float = 0.999
    momentum: float = _option(0.9, "sgd: momentum.")
    weight_decay: float = 1e-2
    decay_params: str = _option("matrices", "Weights that get weight decay: every matrix, or conv kernels only.",
                                DECAY_PARAMS)
    schedule: str = _option("onecycle", "Learning-rate schedule.", SCHEDULES)
    warmup_epochs: int = _option(2, "cosine: linear warm-up epochs.")
    lr_decay_start: int = _option(50, "step: first epoch of decay.")
    lr_decay_every: int = _option(20, "step: epochs between decays.")
    lr_decay_factor: float = _option(math.exp(-0.15), "step: factor per decay.")
    loss: str = _option("ce", "Loss: cross-entropy or focal (classes); mse or ccc (1 - CCC, the mean over targets) "
                        "for regression targets (default there: ccc).", LOSSES)
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    mixup: float = _option(0.0, "Mixup with Beta(ALPHA, ALPHA); 0 = off.")
    balance: str = _option("none", "Class balance: none, class-weighted loss, class-balanced sampling, or sampling "
                           "balanced per corpus and class (several corpora; networks).", BALANCES)
    norm: str = _option("global", "Feature normalisation: training-set statistics, each speaker's own, each "
                        "utterance's own, or each set's own (a corpus in training; the files scored together).",
                        NORM_MODES)
    patience: int = _option(0, "Epochs without a better valid UA before stopping (0: never).")
    selection: str = _option("last", "checkpoint.pt: best-validation epoch, mean weights of the last "
                             "average_last epochs, or last.", SELECTIONS)
    average_last: int = _option(5, "Epochs averaged for selection 'average'.")
    grad_clip: float = 5.0
    seed: int = 0
    device: str = _option("auto", "Device: auto picks CUDA when present.", DEVICES)
    workers: int = _option(0, "DataLoader worker processes.")
    threads: int = _option(0, "torch CPU threads (0: all cores).")
    specaugment: bool = _option(True, "SpecAugment on the fly (time and feature masks).")
    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 20
    random_crop: bool = _option(True, "Random input-length crops of longer training clips (fixed-length models).")
    precision: str = _option("auto", "Training steps in float32 or under bfloat16 autocast; auto: bf16 where the "
                             "device has native bf16, else fp32.", PRECISIONS)

    def __post_init__(self):
        for item in dataclasses.fields(self):
            allowed = choices(type(self), item.name)
            value = getattr(self, item.name)
            if allowed and value not in allowed:
                raise ConfigError(f"{item.name} {value!r} must be one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and lr > 0")
        if not 0 <= self.label_smoothing < 1 or self.mixup < 0:
            raise ConfigError("label_smoothing must be in [0, 1) and mixup (a Beta alpha) >= 0")
        if self.selection == "average" and self.average_last < 1:
            raise ConfigError("selection 'average' needs average_last >= 1")

    def lr_at(self, epoch: int, fraction: float = 0.0) -> float:
        """Learning rate at 1-based ``epoch`` plus ``fraction`` of its steps.

        Parameters
        ----------
        epoch : int
            1-based epoch.
        fraction : float
            Part of the epoch's steps done, 0 <= fraction < 1.

        Returns
        -------
        float
            The learning rate of that step under :attr:`schedule`.
        """
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


def build_train_config(settings: dict[str, Any] | None = None, *, model: str | None = None,
                       recipe: str = "default") -> TrainConfig:
    """TrainConfig: defaults, then model ``model``'s ``recipe``, then ``settings``.

    Parameters
    ----------
    settings : dict, optional
        Field name -> value (strings are coerced); None values are ignored.
    model : str, optional
        A registered model whose recipe applies before ``settings``.
    recipe : str
        ``"default"`` or ``"paper"``.

    Returns
    -------
    TrainConfig

    Raises
    ------
    ConfigError
        Unknown fields or invalid values.
    """
    values = {}
    if model is not None:
        values.update(model_recipe(model, recipe))
    values.update({k: v for k, v in (settings or {}).items() if v is not None})
    return dataclass_from_dict(TrainConfig, values, what="training")


def load_train_toml(path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A train TOML's ``[model]`` and ``[train]`` tables: (model overrides, :class:`TrainConfig` overrides).

    Parameters
    ----------
    path : str or Path
        The TOML file.

    Returns
    -------
    tuple of dict
        The ``[model]`` table and the ``[train]`` table (empty when absent).

    Raises
    ------
    ConfigError
        A missing or malformed file, or tables other than ``[model]`` and ``[train]``.
    """
    data = load_toml(path)
    stray = sorted(set(data) - {"model", "train"})
    if stray:
        raise ConfigError(f"{path}: unknown table(s) {stray}; a train config has [model] and [train] tables")
    return dict(data.get("model", {})), dict(data.get("train", {}))
