"""Model registry: ``MODELS = {name: ModelSpec}``, the single source of truth for what models exist.

Contract for every model (written out in :mod:`sertool.models.contract`, checked for every entry by
``tests/test_model_contract.py``)::

    model = spec.cls(config, input_dim=D, num_classes=C)
    logits = model(feats, lengths)        # feats (B, T, D) float32, lengths (B,) int64 -> (B, C)

``config`` is a dataclass holding every hyperparameter of the paper; the CLI
builds it from defaults, a TOML file and overrides (:func:`build_model_config`).
Frames beyond ``lengths[b]`` are padding and never change the output.

Each :class:`ModelSpec` also says which kind of store the model reads
(``level``: ``"frame"`` or ``"utterance"``), which feature preset it expects
(``features``), how it is trained (``trainer``: ``"sgd"`` for the torch
training loop, ``"fit"`` for the classic estimators of :mod:`sertool.models.classic`),
and its training recipes: ``recipe`` (the default, measured to converge on a
CPU in an affordable number of epochs) and ``paper_recipe`` (the published
setting), each a dict of :class:`~sertool.training.config.TrainConfig` overrides. Its capability
tags (``fixed_frames``, ``takes_utterance_vector``, ``onnx_unsupported``, ``min_frames``) declare what
the rest of sertool would otherwise guess from names.

``MODELS`` fills itself with the built-in models the first time it is read.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from sertool.configs import dataclass_from_dict
from sertool.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its classes and capability tags (see :mod:`sertool.models.contract`)."""

    cls: type
    config_cls: type
    level: str = "frame"
    features: str = "lightsernet_mfcc"
    trainer: str = "sgd"
    recipe: dict[str, Any] = field(default_factory=dict)
    paper_recipe: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: ``adapt(store feature config dict) -> model overrides`` derived from the store (e.g. ssl_head's layers)
    adapt: Any = None
    #: why the model's graph does not export to ONNX ("" when it does; it always exports to TorchScript)
    onnx_unsupported: str = ""
    #: the fewest frames its traced (exported) graph accepts; shorter input is padded inside the model
    min_frames: int = 1
    #: it crops or pads every clip to its config's ``input_frames`` (training crops randomly to that length)
    fixed_frames: bool = False
    #: it accepts an utterance-level vector (``train --utterance-store``) in its config's ``speaker_dim`` last columns
    takes_utterance_vector: bool = False
    #: what it learns: ``classification`` (class probabilities) and/or ``regression`` (``train --target``: values
    #: of numeric columns, its head emitting one value per target)
    tasks: tuple[str, ...] = ("classification", "regression")

    def input_frames(self, config) -> int | None:
        """The fixed input length of a model built from ``config``.

        Parameters
        ----------
        config : dataclass
            The model's config (an instance of :attr:`config_cls`).

        Returns
        -------
        int or None
            ``config.input_frames`` (frames) for a :attr:`fixed_frames` model, else None (any length).
        """
        return config.input_frames if self.fixed_frames else None


#: Modules of sertool.models that register the built-in models when imported.
BUILTIN_FAMILIES = ("classic", "regressors", "drn_mhsa", "light_sernet", "mscnn_spu", "parallel_resnet_transformer", "ssl_head",
                    "transformer_integration")


class _Registry(dict):
    """A dict that imports the built-in model modules the first time it is read."""

    _loaded = False

    def _load(self) -> None:
        if not _Registry._loaded:
            _Registry._loaded = True
            # The families import this module to register themselves, so the registry finds them by
            # name (as a plugin registry does) instead of importing them: no import cycle, and torch
            # loads only when a model is first looked up.
            for family in BUILTIN_FAMILIES:
                importlib.import_module(f"sertool.models.{family}")

    def __getitem__(self, key):
        self._load()
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self._load()
        return super().__contains__(key)

    def __iter__(self):
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def keys(self):
        self._load()
        return super().keys()

    def items(self):
        self._load()
        return super().items()

    def values(self):
        self._load()
        return super().values()

    def get(self, key, default=None):
        self._load()
        return super().get(key, default)


MODELS: dict[str, ModelSpec] = _Registry()

RECIPES = ("default", "paper")


def register_model(name: str, config_cls: type, **metadata):
    """Class decorator adding a model to :data:`MODELS` under ``name``.

    Parameters
    ----------
    name : str
        The model's name (``train --model NAME``); also set as the class's ``name``.
    config_cls : type
        Its config dataclass.
    **metadata
        :class:`ModelSpec` fields: level, features, trainer, recipes and capability tags.

    Returns
    -------
    callable
        The decorator; it returns the class unchanged apart from ``name``.
    """

    def wrap(cls):
        dict.__setitem__(MODELS, name, ModelSpec(cls, config_cls, description=(cls.__doc__ or "").strip()
                                                 .splitlines()[0] if cls.__doc__ else "", **metadata))
        cls.name = name
        return cls

    return wrap


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ConfigError naming the valid models otherwise."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name]


def recipe(name: str, which: str = "default") -> dict[str, Any]:
    """Training-config overrides of model ``name``'s ``which`` recipe (``default`` or ``paper``)."""
    spec = model_spec(name)
    if which not in RECIPES:
        raise ConfigError(f"unknown recipe {which!r}; choose one of {', '.join(RECIPES)}")
    return dict(spec.recipe if which == "default" else spec.paper_recipe)


def build_model_config(name: str, overrides: dict[str, Any] | None = None, *, stored: bool = False):
    """The config dataclass of model ``name`` with ``overrides`` applied (types checked).

    ``stored``: the values come from a checkpoint written by an earlier
    version; the config class's ``upgrade(dict) -> dict`` (when it has one)
    first turns old spellings into today's (e.g. ``"9x1,1x11"`` strings, fields
    a model no longer has).
    """
    cls = model_spec(name).config_cls
    values = dict(overrides or {})
    if stored and hasattr(cls, "upgrade"):
        values = cls.upgrade(values)
    return dataclass_from_dict(cls, values, what=f"model {name!r}")


def build_model(name: str, config, *, input_dim: int, num_classes: int, stored: bool = False):
    """Instantiate model ``name`` (config: dataclass or dict of overrides; ``stored`` as for build_model_config)."""
    if not dataclasses.is_dataclass(config):
        config = build_model_config(name, config, stored=stored)
    return model_spec(name).cls(config, input_dim=input_dim, num_classes=num_classes)


def model_names(task: str | None = None) -> list[str]:
    """Every registered model name (that does ``task``, when given), sorted."""
    return sorted(name for name, spec in MODELS.items() if task is None or task in spec.tasks)


def check_task(name: str, task: str) -> None:
    """ConfigError unless model ``name`` does ``task``, naming the models that do."""
    spec = model_spec(name)
    if task not in spec.tasks:
        option = " (train --target)" if task == "regression" else ""
        fitting = [n for n in model_names(task) if MODELS[n].level == spec.level]  # those reading the same store
        raise ConfigError(f"model {name!r} does not do {task}{option}; on {spec.level}-level features use one of: "
                          f"{', '.join(fitting or model_names(task))}")
