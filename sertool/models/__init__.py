"""Model registry: ``MODELS = {name: (ModelClass, ConfigClass)}``.

Contract for every model::

    model = ModelClass(config, input_dim=D, num_classes=C)
    logits = model(feats, lengths)        # feats (B, T, D) float32, lengths (B,) int64 -> (B, C)

``config`` is a dataclass holding every hyperparameter of the paper; the CLI
builds it from defaults, a TOML file and overrides (:func:`build_model_config`).
Frames beyond ``lengths[b]`` are padding and never change the output.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sertool.errors import ConfigError

MODELS: dict[str, tuple[type, type]] = {}


def register_model(name: str, config_cls: type):
    """Class decorator adding a model to :data:`MODELS` under ``name``."""

    def wrap(cls):
        MODELS[name] = (cls, config_cls)
        cls.name = name
        return cls

    return wrap


def _load_builtin() -> None:
    from sertool.models import (  # noqa: F401
        drn_mhsa, light_sernet, mscnn_spu, parallel_resnet_transformer, transformer_integration)


def build_model_config(name: str, overrides: dict[str, Any] | None = None):
    """The config dataclass of model ``name`` with ``overrides`` applied (types checked)."""
    _load_builtin()
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    from sertool.configs import dataclass_from_dict

    return dataclass_from_dict(MODELS[name][1], dict(overrides or {}), what=f"model {name!r}")


def build_model(name: str, config, *, input_dim: int, num_classes: int):
    """Instantiate model ``name`` (config: dataclass or dict of overrides)."""
    if not dataclasses.is_dataclass(config):
        config = build_model_config(name, config)
    _load_builtin()
    return MODELS[name][0](config, input_dim=input_dim, num_classes=num_classes)


def model_names() -> list[str]:
    _load_builtin()
    return sorted(MODELS)
