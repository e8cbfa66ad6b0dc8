"""The extractor contract, the registry of extractor types, and named presets.

An extractor is a frozen config dataclass plus a class that turns samples
into a time-major float32 matrix::

    extractor = build_extractor("mfcc", {"n_mfcc": 20})
    feats = extractor.extract(samples, extractor.sample_rate)   # (num_frames, dim)

Frame-level extractors return ``(num_frames, dim)``; utterance-level ones
``(1, dim)``. Output is always finite. What an extractor can do is declared
on its class (:class:`FeatureExtractor`: ``level``, ``streams``,
``streams_blocks``, ...), never probed; ``tests/test_feature_contract.py``
checks every registered preset against the declarations.

Configs round-trip through plain dicts with a ``type`` tag
(:meth:`FeatureConfig.to_dict` / :func:`config_from_dict`) and through TOML;
:meth:`FeatureConfig.config_hash` (sha256 of canonical JSON) keys the cache.
A *preset* is a name for an extractor type plus overrides of its defaults
(``lightsernet_mfcc`` = ``mfcc`` with the paper's settings); ``--features``
takes any preset name.

Gain invariance: spectral and openSMILE configs have a ``gain`` option.
``"none"`` (the default) computes features of the samples as recorded;
``"speech_rms"`` first scales the input to an active speech level of
:data:`~sertool.features.dsp.TARGET_SPEECH_DBFS` (measured over the frames
within :data:`~sertool.features.dsp.ACTIVE_RANGE_DB` of the loud reference
frame, :func:`sertool.features.dsp.active_frames`: a measurement that moves
with the gain, so the scaled input and its features do not depend on the
recording's gain). Extraction and scoring both call the extractor, so both
scale alike. The level is the whole input's: a long file decoded block by
block is measured in a first pass (its features equal the whole file's), and
such an extractor cannot follow a live stream (``streams_live`` is False), so
``sertool stream`` scores each window as a clip, scaled to its own level.

Long files: :meth:`FeatureExtractor.extract_file` decodes a file longer than
:data:`sertool.io.audio.STREAM_SECONDS` block by block when the extractor
declares ``streams_files`` (the spectral ones, ``mfcc_stats`` included):
memory then holds one block of audio and the feature matrix, whatever the
file's length, and the features equal the whole file's to float rounding.
Extractors that need all the audio at once (openSMILE, ``stack``,
``embedding``, ``ssl``) refuse files longer than :data:`WHOLE_FILE_SECONDS`
with a one-line error (a failure row in ``extract``): their memory grows with
the file (openSMILE's by about 33 MB a minute, 8 GB for 4 hours).
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np

from sertool.configs import dataclass_from_dict, toml_value
from sertool.errors import ConfigError, FeatureError, SertoolError
from sertool.features import dsp
from sertool.io import audio  # read as audio.STREAM_SECONDS: tests and tools may tune it at run time

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

#: Files longer than this (s) are refused by extractors that cannot stream a file (``streams_files`` False):
#: they hold all of its audio, and openSMILE grows by about 33 MB per minute of it. Read at run time.
WHOLE_FILE_SECONDS = 1800.0

#: Values of the ``gain`` option (see the module docstring).
GAINS = ("none", "speech_rms")
#: Fields added to configs after stores were written, and the value that leaves a config as it was: left out
#: of :meth:`FeatureConfig.to_dict` (so of the hash and the store's name) at that value.
LATE_DEFAULTS = {"gain": "none"}


def check_gain(gain: str) -> None:
    """ConfigError unless ``gain`` is one of :data:`GAINS`."""
    if gain not in GAINS:
        raise ConfigError(f"gain {gain!r} must be one of {', '.join(GAINS)} (speech_rms: scale every input to "
                          f"{dsp.TARGET_SPEECH_DBFS:g} dBFS active speech level first)")


@dataclass(frozen=True)
class FeatureConfig:
    """Base of every extractor config; subclasses add fields with defaults."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with a ``type`` tag; inverse of :func:`config_from_dict`.

        A field of :data:`LATE_DEFAULTS` at its listed value is left out, so configs written before it existed
        keep their hash.
        """
        fields = {k: v for k, v in dataclasses.asdict(self).items() if LATE_DEFAULTS.get(k, ...) != v}
        return {"type": self.type, **fields}

    def config_hash(self) -> str:
        """sha256 hex digest of the canonical JSON of :meth:`to_dict`."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_toml(self) -> str:
        """The config as TOML text (readable by ``--config``)."""
        lines = [f"type = {json.dumps(self.type)}"]
        for key, value in self.to_dict().items():
            if key != "type":
                lines.append(f"{key} = {toml_value(value)}")
        return "\n".join(lines) + "\n"


class FeatureExtractor(abc.ABC):
    """The extractor contract: a config in, time-major float32 features out.

    Subclasses set ``name`` and ``config_cls``, implement :attr:`dim` and
    :meth:`extract`, and declare what they can do in the class attributes
    below (an extractor whose capability depends on its config, e.g.
    spectral features that stream only with constant padding, overrides the
    attribute with a property). Callers read the attributes; they never
    probe for methods.

    Attributes
    ----------
    name : str
        The extractor type (the ``type`` tag of its configs; also a preset name).
    config_cls : type[FeatureConfig]
        Its frozen config dataclass.
    level : {"frame", "utterance"}
        ``frame``: :meth:`extract` returns ``(num_frames, dim)``, with
        :attr:`frame_timing` saying where each frame lies; ``utterance``:
        ``(1, dim)`` and ``frame_timing`` None.
    streams : bool
        :meth:`extract_stream` computes the features of a long file from its
        sample blocks, equal to :meth:`extract` of the joined samples, holding
        one block of audio at a time. Default False.
    streams_blocks : bool
        :meth:`feature_blocks` yields those features block by block (holding
        one block of features at a time). Default False.
    streams_live : bool
        :meth:`feature_blocks` reads its blocks once (no whole-file pass), so
        it can follow a live stream. Default False.
    streams_files : bool
        :meth:`extract_file` computes the features of a file longer than
        :data:`sertool.io.audio.STREAM_SECONDS` from its decoded blocks
        (:meth:`extract_long_file`), in memory that does not grow with the
        audio, equal to :meth:`extract` of all of it. Default: :attr:`streams`.
    sample_rate : int
        Rate in Hz that :meth:`extract` expects (a property, from the config).
    min_duration : float
        Shortest input in seconds that gives an output (a property).
    frame_timing : tuple of float or None
        ``(shift, span, lead)`` in seconds for frame-level output (a property).
    """

    name: ClassVar[str]
    config_cls: ClassVar[type[FeatureConfig]]
    level: ClassVar[str] = "frame"  # or "utterance"
    streams: ClassVar[bool] = False
    streams_blocks: ClassVar[bool] = False
    streams_live: ClassVar[bool] = False

    def __init__(self, config: FeatureConfig):
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config

    @property
    def sample_rate(self) -> int:
        """Rate in Hz that :meth:`extract` expects; audio is resampled to it."""
        return int(self.config.sample_rate)

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Number of feature columns."""

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

    @property
    def gain(self) -> str:
        """The config's ``gain`` option (``"none"`` for configs without one)."""
        return getattr(self.config, "gain", "none")

    def level_factor(self, samples: np.ndarray) -> float:
        """The factor ``gain = "speech_rms"`` scales ``samples`` ``(N,)`` at :attr:`sample_rate` by (1.0 without it)."""
        if self.gain == "none":
            return 1.0
        return dsp.speech_level_gain(dsp.frame_powers(samples, self.sample_rate))

    def levelled(self, samples: np.ndarray) -> np.ndarray:
        """float32 ``samples`` ``(N,)`` scaled by :meth:`level_factor` (the same array without a gain option)."""
        if self.gain == "none":
            return samples
        return np.asarray(samples, dtype=np.float32) * np.float32(self.level_factor(samples))

    def check_input(self, samples, sr: int) -> None:
        """Raise FeatureError unless ``samples`` are at this extractor's rate and long enough."""
        if sr != self.sample_rate:
            raise FeatureError(f"{self.name} expects {self.sample_rate} Hz audio, got {sr} Hz; resample it first")
        if samples.shape[0] < self.min_duration * sr or samples.shape[0] == 0:
            raise FeatureError(f"{samples.shape[0] / sr:.3f} s of audio is shorter than one analysis window "
                               f"({self.min_duration:.3f} s)")

    @abc.abstractmethod
    def extract(self, samples: np.ndarray, sr: int) -> np.ndarray:
        """Features of one signal.

        Parameters
        ----------
        samples
            float32 ``(num_samples,)``, mono, in [-1, 1].
        sr
            Its rate in Hz; must equal :attr:`sample_rate`.

        Returns
        -------
        numpy.ndarray
            float32 ``(num_frames, dim)`` (``(1, dim)`` at utterance level), finite.

        Raises
        ------
        FeatureError
            Another rate, input shorter than :attr:`min_duration`, or features that are not finite.
        """

    def extract_stream(self, blocks: Iterable[np.ndarray]) -> np.ndarray:
        """Features of the audio whose consecutive sample blocks are ``blocks``, as :meth:`extract` of them joined.

        Parameters
        ----------
        blocks
            float32 ``(block_samples,)`` arrays at :attr:`sample_rate`, in order.

        Returns
        -------
        numpy.ndarray
            float32 ``(num_frames, dim)``.

        Raises
        ------
        FeatureError
            The extractor does not declare :attr:`streams` (this default).
        """
        raise FeatureError(f"{self.name} cannot compute features block by block; use extract()")

    def feature_blocks(self, open_blocks: Callable[[], Iterable[np.ndarray]]) -> Iterator[tuple[np.ndarray, int]]:
        """Yield the rows of :meth:`extract` block by block.

        Parameters
        ----------
        open_blocks
            Returns a fresh iterator over the float32 sample blocks (it may be
            called twice, when a first pass over the file is needed).

        Yields
        ------
        tuple
            ``(features (frames, dim) float32, samples seen so far)``.

        Raises
        ------
        FeatureError
            The extractor does not declare :attr:`streams_blocks` (this default).
        """
        raise FeatureError(f"{self.name} cannot yield feature blocks; use extract()")

    @property
    def streams_files(self) -> bool:
        """Whether :meth:`extract_file` streams long files (see the class docstring); default :attr:`streams`."""
        return self.streams

    def extract_file(self, path) -> np.ndarray:
        """Features of the audio file ``path``, decoded at :attr:`sample_rate`; as :meth:`extract`.

        A file longer than :data:`sertool.io.audio.STREAM_SECONDS` goes to
        :meth:`extract_long_file` when the extractor :attr:`streams_files`;
        otherwise it is decoded whole, up to :data:`WHOLE_FILE_SECONDS`.

        Raises
        ------
        AudioError
            Audio that cannot be used (the file is named).
        FeatureError
            A file too long for an extractor that holds all of its audio (the file is named).
        """
        seconds = _header_seconds(path)
        if seconds > audio.STREAM_SECONDS and self.streams_files:
            return self.extract_long_file(path, seconds)
        if seconds > WHOLE_FILE_SECONDS:
            raise FeatureError(
                f"{path}: {seconds / 60:.1f} min of audio is too long for {self.name}, which holds the whole file "
                f"in memory (limit {WHOLE_FILE_SECONDS / 60:g} min); cut it into pieces first (e.g. `sertool "
                "prepare ... --vad-split DIR`), or use a feature set that streams long files (mfcc, logmel, "
                "mfcc_stats)")
        return self.extract_decoded(path)

    def extract_decoded(self, path) -> np.ndarray:
        """:meth:`extract` of all of ``path``'s audio, decoded at once (AudioError naming the file when unusable)."""
        samples = audio.load_audio(path, sr=self.sample_rate, min_duration=self.min_duration)
        return self.extract(samples, self.sample_rate)

    def extract_long_file(self, path, seconds: float) -> np.ndarray:
        """Features of the long file ``path`` (``seconds`` long by its header), decoded block by block.

        This default hands the blocks to :meth:`extract_stream`; extractors
        whose :attr:`streams_files` differs from :attr:`streams` override it.

        Raises
        ------
        AudioError, FeatureError
            As :meth:`extract_file`.
        """
        return self.extract_stream(audio.stream_audio(path, sr=self.sample_rate))


def _header_seconds(path) -> float:
    """Duration in seconds of ``path`` by its header, at most what its bytes can hold; 0.0 when unreadable.

    A damaged or hostile header (a FLAC claiming 2^36 samples in a few KB) is
    believed only up to :data:`sertool.io.audio.MAX_SAMPLES_PER_BYTE` samples
    per byte of the file; an unreadable one is left to decoding, which says why.
    """
    try:
        info = audio.audio_info(path)
        size = os.stat(path).st_size
    except (SertoolError, OSError):
        return 0.0
    return min(info.duration, size * audio.MAX_SAMPLES_PER_BYTE / (info.sample_rate * max(1, info.channels)))


def gather_rows(blocks: Iterable[np.ndarray], expected: int, dim: int) -> np.ndarray:
    """Consecutive float32 row ``blocks`` ``(frames, dim)`` joined into one ``(total, dim)`` array.

    The array is allocated once for ``expected`` rows (grown if more come, trimmed if fewer), so the rows
    are never held twice as a list and a concatenation would hold them.
    """
    out, filled = np.empty((max(0, expected), dim), np.float32), 0
    for block in blocks:
        if filled + block.shape[0] > out.shape[0]:
            grown = np.empty((max(filled + block.shape[0], out.shape[0] * 5 // 4), dim), np.float32)
            grown[:filled] = out[:filled]
            out = grown
        out[filled:filled + block.shape[0]] = block
        filled += block.shape[0]
    return out[:filled]


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
