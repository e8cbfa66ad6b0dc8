"""The extractor contract, the registry of extractor types, and named presets.

An extractor is a frozen config dataclass plus a class that turns samples
into a time-major float32 matrix::

    extractor = build_extractor("mfcc", {"n_mfcc": 20})
    feats = extractor.extract(samples, extractor.sample_rate)   # (num_frames, dim)

Frame-level extractors return ``(num_frames, dim)``; utterance-level ones
``(1, dim)``. Output is always finite.

Configs round-trip through plain dicts with a ``type`` tag
(:meth:`FeatureConfig.to_dict` / :func:`config_from_dict`) and through TOML;
:meth:`FeatureConfig.config_hash` (sha256 of canonical JSON) keys the cache.
A *preset* is a name for an extractor type plus overrides of its defaults
(``lightsernet_mfcc`` = ``mfcc`` with the paper's settings); ``--features``
takes any preset name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sertool.configs import dataclass_from_dict, toml_value
from sertool.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

#: extractor type name -> FeatureExtractor subclass (filled by @register).
EXTRACTORS: dict[str, type["FeatureExtractor"]] = {}


@dataclass(frozen=True)
class Preset:
    """A named starting configuration: extractor type + overridden defaults."""

    type: str
    overrides: dict[str, Any]
    description: str


#: preset name -> Preset. Every extractor type is also a preset of itself.
PRESETS: dict[str, Preset] = {}


@dataclass(frozen=True)
class FeatureConfig:
    """Base of every extractor config; subclasses add fields with defaults."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with a ``type`` tag; inverse of :func:`config_from_dict`."""
        return {"type": self.type, **dataclasses.asdict(self)}

    def config_hash(self) -> str:
        """sha256 hex digest of the canonical JSON of :meth:`to_dict`."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_toml(self) -> str:
        """The config as TOML text (readable by ``--config``)."""
        lines = [f"type = {json.dumps(self.type)}"]
        for key, value in dataclasses.asdict(self).items():
            lines.append(f"{key} = {toml_value(value)}")
        return "\n".join(lines) + "\n"


class FeatureExtractor:
    """Base class: subclasses set ``name``, ``config_cls``, ``level`` and implement extract."""

    name: ClassVar[str]
    config_cls: ClassVar[type[FeatureConfig]]
    level: ClassVar[str] = "frame"  # or "utterance"

    def __init__(self, config: FeatureConfig):
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def sample_rate(self) -> int:
        """Rate in Hz that :meth:`extract` expects; audio is resampled to it."""
        return int(self.config.sample_rate)

    @property
    def dim(self) -> int:
        """Number of feature columns."""
        raise NotImplementedError

    @property
    def min_duration(self) -> float:
        """Shortest input in seconds that gives a meaningful output."""
        return 0.0

    @property
    def frame_timing(self) -> tuple[float, float, float] | None:
        """``(shift, span, lead)`` in seconds for frame-level output, None at utterance level.

        Frame ``k`` covers the audio from ``k * shift - lead`` to ``k * shift - lead + span``.
        """
        if self.level == "utterance":
            return None
        raise NotImplementedError(f"{type(self).__name__} must state its frame_timing")

    @property
    def feature_names(self) -> list[str]:
        """One name per column (``<name>_<i>`` unless the extractor knows better)."""
        return [f"{self.name}_{i}" for i in range(self.dim)]

    def check_input(self, samples, sr: int) -> None:
        """Raise FeatureError unless ``samples`` are at this extractor's rate and long enough."""
        from sertool.errors import FeatureError

        if sr != self.sample_rate:
            raise FeatureError(f"{self.name} expects {self.sample_rate} Hz audio, got {sr} Hz; resample it first")
        if samples.shape[0] < self.min_duration * sr or samples.shape[0] == 0:
            raise FeatureError(f"{samples.shape[0] / sr:.3f} s of audio is shorter than one analysis window "
                               f"({self.min_duration:.3f} s)")

    def extract(self, samples: np.ndarray, sr: int) -> np.ndarray:
        """Features of ``samples`` (float32, ``(num_samples,)`` at ``sr`` Hz).

        Returns float32 ``(num_frames, dim)`` (``(1, dim)`` at utterance level).
        """
        raise NotImplementedError

    def extract_file(self, path) -> np.ndarray:
        """Features of the audio file ``path``, decoded at :attr:`sample_rate`; as :meth:`extract`.

        Raises AudioError (naming the file) for audio that cannot be used.
        """
        from sertool.io.audio import load_audio

        return self.extract(load_audio(path, sr=self.sample_rate, min_duration=self.min_duration), self.sample_rate)


def register(cls: type[FeatureExtractor]) -> type[FeatureExtractor]:
    """Class decorator: add an extractor type and a preset of the same name."""
    cls.config_cls.type = cls.name
    EXTRACTORS[cls.name] = cls
    PRESETS.setdefault(cls.name, Preset(cls.name, {}, (cls.__doc__ or "").strip().splitlines()[0]))
    return cls


def add_preset(name: str, type: str, description: str, **overrides: Any) -> None:
    """Register preset ``name``; its overrides are checked when built."""
    PRESETS[name] = Preset(type, overrides, description)


def config_from_dict(data: dict[str, Any], *, type: str | None = None) -> FeatureConfig:
    """Build a config from a dict (``type`` tag inside, or given as argument).

    Values are coerced to the field types (so CLI strings work); unknown keys
    are an error naming the valid ones.
    """
    data = dict(data)
    type_name = data.pop("type", None) or type
    if type_name not in EXTRACTORS:
        raise ConfigError(f"unknown feature type {type_name!r}; choose one of {', '.join(sorted(EXTRACTORS))}")
    return dataclass_from_dict(EXTRACTORS[type_name].config_cls, data, what=f"feature type {type_name!r}")


def build_config(preset: str, overrides: dict[str, Any] | None = None) -> FeatureConfig:
    """Config of ``preset`` with ``overrides`` (e.g. from a TOML file, then CLI) applied."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown feature set {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    p = PRESETS[preset]
    overrides = dict(overrides or {})
    if overrides.get("type", p.type) != p.type:
        raise ConfigError(
            f"config type {overrides['type']!r} does not match feature set {preset!r} (type {p.type!r})"
        )
    overrides.pop("type", None)
    return config_from_dict({**p.overrides, **overrides}, type=p.type)


def build_extractor(preset_or_config: str | FeatureConfig | dict, overrides: dict[str, Any] | None = None) -> FeatureExtractor:
    """An extractor from a preset name (+ overrides), a config, or a config dict."""
    if isinstance(preset_or_config, str):
        config = build_config(preset_or_config, overrides)
    elif isinstance(preset_or_config, dict):
        config = config_from_dict(preset_or_config)
    else:
        config = preset_or_config
    return EXTRACTORS[config.type](config)
