"""Frame-level spectral features: ``mfcc``, ``logmel`` and the ``mfcc_logmel`` stack.

Pipeline (shapes time-major, T frames)::

    samples (N,) -> |STFT|^power (T, 1 + n_fft/2) -> mel (T, n_mels) -> log
        logmel: the log-mel matrix                                  (T, n_mels)
        mfcc:   orthonormal DCT-II of it, first n_mfcc, opt. lifter  (T, n_mfcc)
        mfcc_logmel: [mfcc | logmel]                                 (T, n_mfcc + n_mels)
    then optional deltas ([x, d1] or [x, d1, d2], width 9) and clipping.

With ``log = "db"`` (10 log10 with ``amin`` and ``top_db``) and the same STFT
settings, ``mfcc`` equals ``librosa.feature.mfcc`` and ``logmel`` equals
``librosa.power_to_db(librosa.feature.melspectrogram(...))``; with
``log = "ln"`` logmel is ``ln(mel + log_offset)``. Tests check both against
librosa to a relative error under 1e-4.

Times are in milliseconds (``win_ms``, ``hop_ms``) and converted to samples
at ``sample_rate`` (rounded). ``fmax = 0`` means the Nyquist frequency,
``top_db = 0`` and ``clip = 0`` switch those off (TOML has no null).
``gain = "speech_rms"`` scales the input to a fixed active speech level
first (:mod:`sertool.features.base`): block by block, the level comes from
a first pass (``feature_blocks``) or scales the kept power-mel matrix
(``extract_stream``, exact since mel power scales as gain**power).
Long files (over ``STREAM_SECONDS``): decoded and computed block by block,
deltas too, after a first pass for ``top_db`` and the level (``long_rows``);
memory holds a block of audio and the result (``mfcc_stats``: running moments).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sertool.errors import ConfigError, FeatureError
from sertool.features import dsp
from sertool.features.base import (FeatureConfig, FeatureExtractor, add_preset, check_gain, gather_rows,
                                   register)
from sertool.io import audio

WINDOWS = ("hann", "hamming", "blackman", "boxcar", "bartlett")


@dataclass(frozen=True)
class SpectralConfig(FeatureConfig):
    """Settings shared by every STFT-based feature (see the module docstring)."""

    sample_rate: int = 16000
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    window: str = "hamming"
    center: bool = True
    pad_mode: str = "constant"
    power: float = 2.0
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 0.0
    htk: bool = False
    mel_norm: str = "slaney"
    log: str = "db"
    log_offset: float = 1e-6
    amin: float = 1e-10
    top_db: float = 80.0
    clip: float = 0.0
    delta_order: int = 0
    delta_width: int = 9
    gain: str = "none"

    @property
    def win_length(self) -> int:
        """Window length in samples."""
        return int(round(self.win_ms * self.sample_rate / 1000))

    @property
    def hop_length(self) -> int:
        """Hop in samples."""
        return int(round(self.hop_ms * self.sample_rate / 1000))

    @property
    def mel_fmax(self) -> float:
        return self.fmax if self.fmax > 0 else self.sample_rate / 2

    def __post_init__(self):
        checks = [
            (self.sample_rate > 0, "sample_rate must be positive"),
            (self.hop_length >= 1, f"hop_ms {self.hop_ms} is below one sample"),
            (1 <= self.win_length <= self.n_fft,
             f"window of {self.win_length} samples ({self.win_ms} ms) must fit in n_fft = {self.n_fft}; "
             "raise n_fft or shorten win_ms"),
            (self.window in WINDOWS, f"window {self.window!r} is not one of {', '.join(WINDOWS)}"),
            (self.pad_mode in ("constant", "reflect", "edge"), "pad_mode must be constant, reflect or edge"),
            (self.power in (1.0, 2.0), "power must be 1 (magnitude) or 2 (power)"),
            (self.n_mels >= 1, "n_mels must be at least 1"),
            (0 <= self.fmin < self.mel_fmax <= self.sample_rate / 2,
             f"need 0 <= fmin < fmax <= sample_rate / 2 (got fmin={self.fmin}, fmax={self.fmax})"),
            (self.mel_norm in ("slaney", "none"), "mel_norm must be 'slaney' or 'none'"),
            (self.log in ("db", "ln"), "log must be 'db' (10 log10) or 'ln' (natural log + log_offset)"),
            (self.log_offset > 0 and self.amin > 0, "log_offset and amin must be positive"),
            (self.top_db >= 0 and self.clip >= 0, "top_db and clip must be >= 0 (0 switches them off)"),
            (self.delta_order in (0, 1, 2), "delta_order must be 0, 1 or 2"),
            (self.delta_width >= 3 and self.delta_width % 2 == 1, "delta_width must be odd and >= 3"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        check_gain(self.gain)


@dataclass(frozen=True)
class MfccConfig(SpectralConfig):
    """Spectral settings + number of cepstral coefficients and liftering."""

    n_mels: int = 64
    n_mfcc: int = 40
    lifter: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.n_mfcc <= self.n_mels:
            raise ConfigError(f"n_mfcc = {self.n_mfcc} must be between 1 and n_mels = {self.n_mels}")
        if self.lifter < 0:
            raise ConfigError("lifter must be >= 0")


@dataclass(frozen=True)
class LogMelConfig(SpectralConfig):
    """Spectral settings; natural log with an offset by default."""

    log: str = "ln"


@dataclass(frozen=True)
class MfccLogMelConfig(MfccConfig):
    """MFCC settings; the log-mel matrix the MFCCs come from is appended."""


#: Inputs with more frames than this (about 5 min at a 16 ms hop) are transformed in blocks of this many frames.
LONG_INPUT_FRAMES = 16384


class _SpectralExtractor(FeatureExtractor):
    """Shared STFT -> mel -> log front end; subclasses pick the output columns."""

    @cached_property
    def _window(self) -> np.ndarray:
        """float32 ``(win_length,)`` periodic window."""
        c = self.config
        return dsp.periodic_window(c.window, c.win_length).astype("float32")

    @cached_property
    def _mel(self) -> "dsp.BandedMel":
        c = self.config
        return dsp.BandedMel(dsp.mel_filterbank(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin,
                                                fmax=c.mel_fmax, htk=c.htk, norm=c.mel_norm))

    @property
    def base_dim(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        return self.base_dim * (1 + self.config.delta_order)

    @property
    def min_duration(self) -> float:
        c = self.config
        samples = c.win_length if c.center else c.n_fft
        return samples / c.sample_rate

    @property
    def frame_timing(self):
        if self.level == "utterance":
            return None
        c = self.config
        span = c.win_length / c.sample_rate
        return c.hop_length / c.sample_rate, span, span / 2 if c.center else 0.0  # centred frames start early

    @property
    def _pad(self) -> int:
        """Samples of padding on each side of a centred STFT."""
        return self.config.n_fft // 2 if self.config.center else 0

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel matrix ``(num_frames, n_mels)`` float32 of float32 ``samples``."""
        samples = np.asarray(samples, dtype=np.float32)
        if self._pad:
            samples = np.pad(samples, self._pad, mode=self.config.pad_mode)
        return self._padded_log_mel(samples)

    def _padded_log_mel(self, padded: np.ndarray) -> np.ndarray:
        """:meth:`log_mel` of samples that already carry the STFT padding."""
        blocks, _ = self._power_mel_of(padded)
        if len(blocks) == 1:
            mel = blocks[0]  # a fresh array: the log may overwrite it
        else:
            mel = np.concatenate(blocks) if blocks else np.zeros((0, self.config.n_mels), np.float32)
        return self._log(mel)

    def _power_mel_of(self, padded: np.ndarray) -> tuple[list[np.ndarray], int]:
        """Power mel rows of every complete frame of already padded samples, and the number of frames.

        Long inputs go ``LONG_INPUT_FRAMES`` frames at a time, so the complex
        spectrum (8 bytes x n_fft/2 per frame) never exists for the whole input.
        """
        c = self.config
        count = dsp.num_frames(padded.shape[0], n_fft=c.n_fft, hop_length=c.hop_length, center=False)
        blocks = [self._mel.power_mel(dsp.padded_frame_spectrum(
            padded[first * c.hop_length:(min(count, first + LONG_INPUT_FRAMES) - 1) * c.hop_length + c.n_fft],
            window=self._window, n_fft=c.n_fft, hop_length=c.hop_length), power=c.power)
            for first in range(0, count, LONG_INPUT_FRAMES)]
        return blocks, count

    def _columns(self, logmel: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def extract(self, samples: np.ndarray, sr: int) -> np.ndarray:
        self.check_input(samples, sr)
        return self._finish(self.log_mel(self.levelled(samples)))

    def extract_decoded(self, path) -> np.ndarray:
        """As the base class, but decodes straight into the STFT's zero padding when there is one."""
        if self.config.pad_mode != "constant":
            return super().extract_decoded(path)
        padded = audio.load_audio(path, sr=self.sample_rate, min_duration=self.min_duration, pad=self._pad)
        if self.gain != "none":  # the level of the samples alone (the padding is no part of the recording)
            factor = self.level_factor(padded[self._pad:padded.shape[0] - self._pad])
            np.multiply(padded, np.float32(factor), out=padded)
        return self._finish(self._padded_log_mel(padded))

    # The streaming capabilities depend on the config, so they are properties (declared, not probed: see
    # FeatureExtractor).
    @property
    def streams(self) -> bool:
        """Whether :meth:`extract_stream` gives the same features as :meth:`extract` (constant padding only)."""
        return self.level == "frame" and self.config.pad_mode == "constant"

    @property
    def streams_blocks(self) -> bool:
        """Whether :meth:`feature_blocks` can yield the features block by block (no deltas: they need context)."""
        return self.streams and self.config.delta_order == 0

    @property
    def streams_live(self) -> bool:
        """Whether :meth:`feature_blocks` reads its blocks once (no whole-file ``top_db`` floor or level): live."""
        whole_file = (self.config.log == "db" and self.config.top_db > 0) or self.gain != "none"
        return self.streams_blocks and not whole_file

    def _power_mel_blocks(self, blocks):
        """Yield ``(power mel rows (frames, n_mels), samples seen so far)`` of consecutive sample ``blocks``."""
        return dsp.carried_frames(blocks, pad=self._pad, hop_length=self.config.hop_length,
                                  transform=self._power_mel_of, sr=self.sample_rate, min_seconds=self.min_duration)

    def _log(self, mel: np.ndarray, floor=None) -> np.ndarray:
        """The configured log of power ``mel`` in place; ``floor``: the whole file's ``max dB - top_db``."""
        c = self.config
        if c.log == "db":
            if floor is None:
                return dsp.power_to_db(mel, amin=c.amin, top_db=c.top_db, inplace=True)
            logmel = dsp.power_to_db(mel, amin=c.amin, top_db=0.0, inplace=True)
            return np.maximum(logmel, floor, out=logmel)
        mel += np.float32(c.log_offset)
        return np.log(mel, out=mel)

    def extract_stream(self, blocks) -> np.ndarray:
        """Features of the audio whose consecutive float32 sample blocks at ``sample_rate`` are ``blocks``.

        Equal to :meth:`extract` of the joined samples (same frames, same
        values to float rounding) while holding one block of audio at a time;
        the power mel matrix is kept, the log and ``top_db`` (relative to the
        whole file's maximum) and the output columns are computed at the end.
        """
        if not self.streams:
            raise FeatureError(f"{self.name} with pad_mode {self.config.pad_mode!r} cannot stream; use extract()")
        meter = dsp.LevelMeter(self.sample_rate) if self.gain != "none" else None
        pieces = [mel for mel, _ in self._power_mel_blocks(dsp.metered(blocks, meter))]
        mel = np.concatenate(pieces) if pieces else np.zeros((0, self.config.n_mels), np.float32)
        del pieces
        if meter is not None:  # mel power scales as gain ** power
            mel *= np.float32(dsp.speech_level_gain(meter.powers()) ** self.config.power)
        return self._finish(self._log(mel))

    def feature_blocks(self, open_blocks):
        """Yield the rows of :meth:`extract` block by block, holding one block of audio and features at a time.

        ``open_blocks()`` returns a fresh iterator over the sample blocks; it is
        called twice when ``top_db`` needs the whole file's maximum first (a
        pass that keeps only that number). Yields ``(features (frames, dim),
        samples seen so far)``.
        """
        if not self.streams_blocks:
            raise FeatureError(f"{self.name} cannot yield feature blocks (deltas need context); use extract()")
        floor, blocks = self._scaled_blocks(open_blocks)
        for mel, total in self._power_mel_blocks(blocks):
            yield self._finish(self._log(mel, floor=floor)), total

    def _scaled_blocks(self, open_blocks):
        """``(top_db floor or None, blocks scaled to the speech level)``, after a first pass (two numbers) if needed."""
        c = self.config
        floor, factor = None, 1.0
        if c.log == "db" and c.top_db > 0 or self.gain != "none":
            peak, factor = self._first_pass(open_blocks())
            floor = None if peak is None else peak + 10.0 * np.log10(factor ** c.power) - c.top_db
        blocks = open_blocks()
        if factor != 1.0:
            blocks = (np.asarray(b, dtype=np.float32) * np.float32(factor) for b in blocks)
        return floor, blocks

    @property
    def streams_files(self) -> bool:
        """Whether long files are computed block by block (constant padding: deltas and statistics too)."""
        return self.config.pad_mode == "constant"

    def extract_long_file(self, path, seconds: float) -> np.ndarray:
        """Features of the long file ``path`` (``seconds`` by its header), block by block (:meth:`long_rows`)."""
        c = self.config
        expected = dsp.num_frames(int(round(seconds * c.sample_rate)), n_fft=c.n_fft, hop_length=c.hop_length,
                                  center=c.center) + 2  # resampling may add a sample
        return gather_rows(self.long_rows(lambda: audio.stream_audio(path, sr=self.sample_rate)), expected, self.dim)

    def long_rows(self, open_blocks):
        """Yield the frame rows (deltas included: :func:`dsp.streamed_deltas`) of ``open_blocks()``'s samples.

        As :meth:`feature_blocks`; ``open_blocks`` is called twice when a first pass is needed.
        """
        c = self.config
        floor, blocks = self._scaled_blocks(open_blocks)
        columns = (self._columns(self._log(mel, floor=floor)) for mel, _ in self._power_mel_blocks(blocks))
        if c.delta_order:
            columns = dsp.streamed_deltas(columns, order=c.delta_order, width=c.delta_width)
        for rows in columns:
            yield self._checked(rows)

    def _first_pass(self, blocks) -> tuple[float | None, float]:
        """``(peak dB of the unscaled log mel or None without top_db, gain factor)`` of one pass over ``blocks``."""
        c = self.config
        meter = dsp.LevelMeter(self.sample_rate) if self.gain != "none" else None
        if not (c.log == "db" and c.top_db > 0):
            for block in blocks:
                meter.push(block)
            return None, dsp.speech_level_gain(meter.powers())
        peak = None
        for mel, _ in self._power_mel_blocks(dsp.metered(blocks, meter)):
            top = self._log(mel, floor=-np.inf).max()
            peak = top if peak is None else max(peak, top)
        return peak, 1.0 if meter is None else dsp.speech_level_gain(meter.powers())

    def _finish(self, logmel: np.ndarray) -> np.ndarray:
        """Output columns, deltas and clipping of a log-mel matrix; float32 ``(num_frames, dim)``."""
        c = self.config
        feats = self._columns(logmel)
        if c.delta_order:
            feats = dsp.with_deltas(feats, order=c.delta_order, width=c.delta_width)
        return self._checked(feats)

    def _checked(self, feats: np.ndarray) -> np.ndarray:
        """Frame rows (deltas included) clipped, as contiguous float32; FeatureError unless finite."""
        c = self.config
        if c.clip > 0:
            np.clip(feats, -c.clip, c.clip, out=feats)
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if not np.isfinite(feats).all():
            raise FeatureError(f"{self.name} produced non-finite values; check the audio")
        return feats


class _CepstralMixin:
    @cached_property
    def _dct(self) -> np.ndarray:
        c = self.config
        basis = dsp.dct_matrix(c.n_mels, c.n_mfcc)
        if c.lifter > 0:
            n = np.arange(1, c.n_mfcc + 1)
            basis = basis * (1 + (c.lifter / 2) * np.sin(np.pi * n / c.lifter)).astype(np.float32)
        return basis


@register
class MfccExtractor(_CepstralMixin, _SpectralExtractor):
    """MFCC (optionally with deltas), equal to librosa.feature.mfcc."""

    name = "mfcc"
    config_cls = MfccConfig

    @property
    def base_dim(self) -> int:
        return self.config.n_mfcc

    def _columns(self, logmel):
        return logmel @ self._dct


@register
class LogMelExtractor(_SpectralExtractor):
    """Log-mel spectrogram (optionally with deltas)."""

    name = "logmel"
    config_cls = LogMelConfig

    @property
    def base_dim(self) -> int:
        return self.config.n_mels

    def _columns(self, logmel):
        return logmel


@register
class MfccLogMelExtractor(_CepstralMixin, _SpectralExtractor):
    """MFCC and the log-mel matrix they come from, side by side."""

    name = "mfcc_logmel"
    config_cls = MfccLogMelConfig

    @property
    def base_dim(self) -> int:
        return self.config.n_mfcc + self.config.n_mels

    def _columns(self, logmel):
        return np.concatenate([logmel @ self._dct, logmel], axis=1)


# Paper presets (see docs in the README and ../shared/docs/MODELS.md).
_LIGHTSERNET = dict(
    sample_rate=16000, win_ms=64.0, hop_ms=16.0, n_fft=1024, window="hamming", center=False, power=1.0,
    n_mels=128, fmin=80.0, fmax=7600.0, htk=True, mel_norm="none", log="ln", log_offset=1e-6,
    top_db=0.0, n_mfcc=40, clip=10.0,
)
add_preset(
    "lightsernet_mfcc", "mfcc",
    "LIGHT-SERNET (ICASSP 2022) input, as in the authors' code: 40 MFCC, 64 ms Hamming / 16 ms hop, "
    "1024-point FFT, |STFT|, 128 HTK mel bands 80-7600 Hz, ln(mel + 1e-6), clipped to [-10, 10], "
    "no centring (3 s -> 184 frames)",
    **_LIGHTSERNET,
)
add_preset(
    "lightsernet_mfcc_level", "mfcc",
    "lightsernet_mfcc of the input scaled to -26 dBFS active speech level first (gain = speech_rms), so the "
    "features do not depend on the recording's gain",
    **_LIGHTSERNET, gain="speech_rms",
)
add_preset(
    "transformer_logmel", "logmel",
    "ILT/CAT transformer-integration paper input: 40-band log-Mel (librosa, dB), 25 ms Hann / 10 ms hop",
    sample_rate=16000, win_ms=25.0, hop_ms=10.0, n_fft=400, window="hann", n_mels=40, log="db",
)
add_preset(
    "mscnn_mfcc96", "mfcc",
    "MSCNN-SPU input: 32 MFCC + deltas + delta-deltas (96-dim), 25 ms Hamming / 10 ms hop",
    sample_rate=16000, win_ms=25.0, hop_ms=10.0, n_fft=512, window="hamming", n_mels=40, n_mfcc=32,
    delta_order=2,
)
add_preset(
    "resnet_transformer_map", "mfcc_logmel",
    "ResNet-CNN-Transformer paper input: 40 MFCC + 40 log-mel (dB) from librosa's defaults at 48 kHz "
    "(2048-point Hann, hop 512; 3 s -> 282 frames), 80 columns",
    sample_rate=48000, win_ms=2048 / 48, hop_ms=512 / 48, n_fft=2048, window="hann", n_mels=40, n_mfcc=40,
    log="db",
)


@dataclass(frozen=True)
class MfccStatsConfig(MfccConfig):
    """MFCC settings; the output is their mean and standard deviation over the utterance."""


@register
class MfccStatsExtractor(_CepstralMixin, _SpectralExtractor):
    """Utterance-level MFCC statistics: [mean | std] over frames, (1, 2 x n_mfcc)."""

    name = "mfcc_stats"
    config_cls = MfccStatsConfig
    level = "utterance"

    @property
    def base_dim(self) -> int:
        return self.config.n_mfcc

    @property
    def dim(self) -> int:
        return 2 * super().dim

    def _columns(self, logmel):
        return logmel @ self._dct

    def _finish(self, logmel):
        frames = super()._finish(logmel)
        return np.concatenate([frames.mean(axis=0), frames.std(axis=0)])[None, :].astype(np.float32)

    def extract_long_file(self, path, seconds: float) -> np.ndarray:
        """[mean | std] of the frame rows of a long file, accumulated block by block (no frame matrix kept)."""
        moments = dsp.RunningMoments(self.dim // 2)  # the frame rows' columns
        for rows in self.long_rows(lambda: audio.stream_audio(path, sr=self.sample_rate)):
            moments.push(rows)
        return np.concatenate([moments.mean, moments.std])[None, :].astype(np.float32)
