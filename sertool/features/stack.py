"""``stack``: several utterance-level feature sets side by side, computed from one decoded and levelled input.

A config names its parts as presets (``parts = "egemaps_functionals,mfcc_stats"``); the output is
their vectors concatenated, ``(1, sum of the parts' dims)``. ``gain = "speech_rms"`` scales the input
once, before every part (:mod:`sertool.features.base`), so the stack does not depend on the recording
gain; the parts themselves run with their own defaults otherwise.

Preset ``egemaps_mfcc_stats``: eGeMAPS functionals (88) and MFCC statistics (80) of the input scaled to
-26 dBFS active speech level: the input of the bundled multi-corpus model, chosen by leave-one-corpus-out
over the shared corpora (``bench/generalisation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sertool.errors import ConfigError, FeatureError
from sertool.features.base import FeatureConfig, FeatureExtractor, add_preset, build_extractor, check_gain, register


@dataclass(frozen=True)
class StackConfig(FeatureConfig):
    """Parts (utterance-level preset names, comma-separated), the gain option and the shared sample rate."""

    parts: str = "egemaps_functionals,mfcc_stats"
    gain: str = "none"
    sample_rate: int = 16000

    def __post_init__(self):
        check_gain(self.gain)
        if not self.part_names:
            raise ConfigError("stack needs at least one part (parts = \"egemaps_functionals,mfcc_stats\")")

    @property
    def part_names(self) -> list[str]:
        """The parts' preset names, in order."""
        return [p.strip() for p in self.parts.split(",") if p.strip()]


@register
class StackExtractor(FeatureExtractor):
    """Utterance-level feature sets side by side (``parts``), from one levelled input."""

    name = "stack"
    config_cls = StackConfig
    level = "utterance"

    @cached_property
    def parts(self) -> list[FeatureExtractor]:
        """The part extractors; ConfigError for a frame-level part, a stack in a stack or another sample rate."""
        parts = [build_extractor(name) for name in self.config.part_names]
        for name, part in zip(self.config.part_names, parts):
            if part.level != "utterance" or part.name == "stack":
                raise ConfigError(f"stack part {name!r} must be an utterance-level feature set (e.g. "
                                  "egemaps_functionals, mfcc_stats)")
            if part.sample_rate != self.sample_rate:
                raise ConfigError(f"stack part {name!r} runs at {part.sample_rate} Hz, the stack at "
                                  f"{self.sample_rate} Hz; give every part one rate")
        return parts

    @property
    def dim(self) -> int:
        return sum(part.dim for part in self.parts)

    @property
    def min_duration(self) -> float:
        return max(part.min_duration for part in self.parts)

    @property
    def feature_names(self) -> list[str]:
        return [f"{name}:{column}" for name, part in zip(self.config.part_names, self.parts)
                for column in part.feature_names]

    def extract(self, samples: np.ndarray, sr: int) -> np.ndarray:
        """``(1, dim)`` float32: each part's vector of the levelled input, concatenated."""
        self.check_input(samples, sr)
        levelled = self.levelled(np.asarray(samples, dtype=np.float32))
        vectors = [part.extract(levelled, sr).reshape(1, -1) for part in self.parts]
        out = np.concatenate(vectors, axis=1).astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise FeatureError("stack features are not finite")
        return out


add_preset("egemaps_mfcc_stats", "stack",
           "eGeMAPS functionals and MFCC statistics of the input scaled to -26 dBFS active speech level "
           "(gain = speech_rms), one row per utterance",
           parts="egemaps_functionals,mfcc_stats", gain="speech_rms")
