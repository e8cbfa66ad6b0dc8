"""openSMILE features through the real ``opensmile`` package (audEERING), not a re-implementation.

Feature sets, each at two levels (presets ``<set>_lld`` and ``<set>_functionals``):

| preset prefix | openSMILE config | LLD dim | functionals dim |
|---|---|---|---|
| ``egemaps`` | eGeMAPSv02 | 25 | 88 |
| ``gemaps`` | GeMAPSv01b | 18 | 62 |
| ``compare`` | ComParE_2016 | 65 | 6373 |
| ``emobase`` | emobase | 26 | 988 |

LLDs are frame level (10 ms hop), functionals utterance level (one row).
Column names are openSMILE's and are kept in the store (``feature_names``).

``drn_lld17`` assembles the 17 LLDs of the DRN paper (Li et al., ICASSP 2019)
from two openSMILE configs, per 10 ms frame: 12 MFCC (IS09
``pcm_fftMag_mfcc_sma[1-12]``), log energy (``ln(RMS^2 + 1e-10)`` from IS09
``pcm_RMSenergy_sma``), voicing probability (IS09 ``voiceProb_sma``), HNR
(eGeMAPSv02 ``HNRdBACF_sma3nz``), log F0 (``ln F0`` of IS09 ``F0_sma``, 0
when unvoiced) and zero-crossing rate (IS09 ``pcm_zcr_sma``); frames are
matched on their start time. Deviation: the paper uses 40 ms windows; the
stock configs use 25 ms (IS09) and 60 ms (eGeMAPS HNR) windows.

Input is clipped to [-1, 1] first (openSMILE converts to 16-bit integers);
NaN or infinite output is a per-file error, never stored. ``gain =
"speech_rms"`` scales the input to -26 dBFS active speech level before that
(:mod:`sertool.features.base`); peaks more than 26 dB above the active level are clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sertool.errors import ConfigError, FeatureError
from sertool.features.base import FeatureConfig, FeatureExtractor, add_preset, check_gain, register

SETS = {"egemaps": "eGeMAPSv02", "gemaps": "GeMAPSv01b", "compare": "ComParE_2016", "emobase": "emobase"}
LEVELS = {"lld": "LowLevelDescriptors", "functionals": "Functionals"}
#: Frame length (s) of each set's LLD output as openSMILE's own start/end index reports it (10 ms hop for all).
LLD_SPAN = {"eGeMAPSv02": 0.020, "GeMAPSv01b": 0.020, "ComParE_2016": 0.060, "emobase": 0.025}
DRN_NAMES = [f"mfcc{i}" for i in range(1, 13)] + ["log_energy", "voicing_prob", "hnr_db", "log_f0", "zcr"]


def _smile(feature_set: str, level: str):
    import opensmile  # heavy (pandas, audinterface; ~0.5 s): loaded only when an openSMILE extractor is built

    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                           feature_level=getattr(opensmile.FeatureLevel, level))


def _run(smile, samples, sr):
    clipped = np.clip(samples, -1.0, 1.0)
    try:
        return smile.process_signal(clipped, sr)
    except Exception as exc:  # openSMILE raises plain RuntimeErrors for odd input
        raise FeatureError(f"openSMILE failed ({str(exc).splitlines()[0][:120]})") from None


def _finite(values, what: str):
    values = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise FeatureError(f"openSMILE {what} produced NaN or infinite values; check the audio")
    return values


@dataclass(frozen=True)
class OpenSmileConfig(FeatureConfig):
    """An openSMILE config name and level (``lld`` or ``functionals``); audio at ``sample_rate``."""

    feature_set: str = "eGeMAPSv02"
    level: str = "lld"
    sample_rate: int = 16000
    gain: str = "none"

    def __post_init__(self):
        check_gain(self.gain)
        if self.feature_set not in SETS.values():
            raise ConfigError(f"feature_set {self.feature_set!r} must be one of {', '.join(SETS.values())}")
        if self.level not in LEVELS:
            raise ConfigError(f"level {self.level!r} must be lld or functionals")


@register
class OpenSmileExtractor(FeatureExtractor):
    """openSMILE LLDs (frame level) or functionals (utterance level)."""

    name = "opensmile"
    config_cls = OpenSmileConfig
    #: openSMILE processes the whole signal in one call
    streams = streams_blocks = streams_live = False

    @property
    def level(self) -> str:
        return "frame" if self.config.level == "lld" else "utterance"

    @cached_property
    def _smile(self):
        return _smile(self.config.feature_set, LEVELS[self.config.level])

    @property
    def feature_names(self) -> list[str]:
        return list(self._smile.feature_names)

    @property
    def dim(self) -> int:
        return len(self.feature_names)

    @property
    def min_duration(self) -> float:
        return 0.1  # openSMILE returns no LLD frame for shorter input

    @property
    def frame_timing(self):
        return None if self.level == "utterance" else (0.010, LLD_SPAN[self.config.feature_set], 0.0)

    def extract(self, samples, sr):
        self.check_input(samples, sr)
        values = _finite(_run(self._smile, self.levelled(samples), sr).values, self.config.feature_set)
        if values.shape[0] == 0:
            raise FeatureError("openSMILE returned no frames")
        return values


@dataclass(frozen=True)
class DrnLldConfig(FeatureConfig):
    """The DRN paper's 17 LLDs assembled from IS09 and eGeMAPSv02 (see the module docstring)."""

    sample_rate: int = 16000
    energy_floor: float = 1e-10
    gain: str = "none"

    def __post_init__(self):
        check_gain(self.gain)


@register
class DrnLldExtractor(FeatureExtractor):
    """DRN's 17 LLDs: 12 MFCC, log energy, voicing probability, HNR, log F0, ZCR (10 ms frames)."""

    name = "drn_lld17"
    config_cls = DrnLldConfig
    feature_names = DRN_NAMES
    #: openSMILE processes the whole signal in one call
    streams = streams_blocks = streams_live = False

    @cached_property
    def _smiles(self):
        return _smile("IS09", "LowLevelDescriptors"), _smile("eGeMAPSv02", "LowLevelDescriptors")

    @property
    def dim(self) -> int:
        return len(DRN_NAMES)

    @property
    def min_duration(self) -> float:
        return 0.1

    @property
    def frame_timing(self):
        return 0.010, 0.025, 0.0  # 10 ms hop; span of the MFCC/energy window (pitch uses 60 ms)

    def extract(self, samples, sr):
        self.check_input(samples, sr)
        samples = self.levelled(samples)
        is09_smile, egemaps_smile = self._smiles
        is09 = _run(is09_smile, samples, sr)
        hnr = _run(egemaps_smile, samples, sr)["HNRdBACF_sma3nz"]
        starts = is09.index.get_level_values("start")
        hnr = hnr.groupby(level="start").first().reindex(starts)
        keep = ~hnr.isna().to_numpy()
        is09, hnr = is09[keep], hnr.to_numpy()[keep]
        if is09.shape[0] == 0:
            raise FeatureError("openSMILE returned no frames")
        mfcc = is09[[f"pcm_fftMag_mfcc_sma[{i}]" for i in range(1, 13)]].to_numpy()
        energy = np.log(is09["pcm_RMSenergy_sma"].to_numpy() ** 2 + self.config.energy_floor)
        f0 = is09["F0_sma"].to_numpy()
        log_f0 = np.where(f0 > 0, np.log(np.maximum(f0, 1e-6)), 0.0)
        values = np.column_stack([mfcc, energy, is09["voiceProb_sma"].to_numpy(), hnr, log_f0,
                                  is09["pcm_zcr_sma"].to_numpy()])
        return _finite(values, "drn_lld17")


for _short, _set in SETS.items():
    for _level in LEVELS:
        add_preset(f"{_short}_{_level}", "opensmile",
                   f"openSMILE {_set} {'low-level descriptors (10 ms frames)' if _level == 'lld' else 'functionals (one row per utterance)'}",
                   feature_set=_set, level=_level)
