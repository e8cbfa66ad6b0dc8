"""Input checks: the ``flags`` column of predictions.csv, for audio unlike what the model was trained on.

Each flag names one reason to distrust a score; flags never stop scoring.
They are measured on the decoded audio the model scores (float32 mono at
the model's rate), cut into non-overlapping :data:`~sertool.features.dsp.LEVEL_FRAME_S`
frames, plus three facts about the original input: its sample rate, its
channels (the stereo check) and the training clips' duration range the
checkpoint records. Levels are in dBFS, where a mean square of 1.0 is 0 dB
(a full-scale sine is -3 dBFS). *Active* frames are those within
:data:`~sertool.features.dsp.ACTIVE_RANGE_DB` of the loud reference frame
(:func:`sertool.features.dsp.active_frames`, the definition the
``gain = "speech_rms"`` feature option uses too).

================  ============================================================================
``quiet``         active speech level below :data:`QUIET_DBFS`
``clipped``       more than :data:`CLIPPED_SHARE` of the samples at or above :data:`CLIP_LEVEL` of full scale
``narrowband``    speech with a cut-off: the active frames' energy in :data:`NARROW_BAND` is
                  :data:`NARROW_DB` or more below that in :data:`BELOW_BAND` (telephone audio, audio
                  resampled from 8 kHz), or their energy above ``NARROW_BAND[0]`` is :data:`ABOVE_DB`
                  or more below their total (a cut-off lower down: audio resampled from 4 kHz);
                  or an original sample rate below the model's
``no_speech``     under :data:`NO_SPEECH_S` of speech frames: active frames :data:`SPEECH_OVER_FLOOR_DB`
                  above the input's noise floor (its :data:`FLOOR_PERCENTILE` percentile frame), so
                  silence and steady noise both count as no speech
``short``         shorter than the training clips' 1st percentile by more than :data:`DURATION_TOLERANCE`
``long``          longer than their 99th percentile by more than :data:`DURATION_TOLERANCE`
``cancelling``    channels that cancel when mixed to mono: the mix is :data:`CANCEL_DB` or more below the
                  channels' mean energy (e.g. one channel phase-inverted)
================  ============================================================================

``short`` and ``long`` need the range in the checkpoint (``metrics["train_duration_s"]``,
written by ``train`` since this version); older checkpoints skip them. A
row of one window (``predict --segments``, ``stream``) is checked on the
frames inside its span, and its duration is the span's.
The thresholds were set on the shared clean corpora (``bench/flag_rates.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from sertool.features import dsp

#: The flags, in the order the ``flags`` column lists them.
FLAGS = ("quiet", "clipped", "narrowband", "no_speech", "short", "long", "cancelling")
#: ``quiet``: active speech level below this, dBFS.
QUIET_DBFS = -65.0
#: ``clipped``: samples at or above this share of full scale (absolute value) count as clipped.
CLIP_LEVEL = 0.99
#: ``clipped``: flagged when more than this share of the samples are clipped.
CLIPPED_SHARE = 0.002
#: ``narrowband``: the band above the edge, Hz; telephone audio stops at 3.4 kHz, audio from 8 kHz files at 4 kHz.
NARROW_BAND = (4000.0, 6000.0)
#: ``narrowband``: the band below the edge it is compared with, Hz (a ratio of neighbours, so a dull voice's
#: falling spectrum is not taken for a cut-off).
BELOW_BAND = (2000.0, 3400.0)
#: ``narrowband``: flagged when the active frames' energy in :data:`NARROW_BAND` is this many dB (or more) below
#: that in :data:`BELOW_BAND`.
NARROW_DB = -40.0
#: ``narrowband``: also flagged when their energy above ``NARROW_BAND[0]`` is this many dB (or more) below their
#: total (both bands of the ratio above are empty when the cut-off is lower).
ABOVE_DB = -60.0
#: ``no_speech``: the noise floor is this percentile of the non-silent frames' levels.
FLOOR_PERCENTILE = 10.0
#: ``no_speech``: speech frames are at least this many dB above the noise floor (and active).
SPEECH_OVER_FLOOR_DB = 10.0
#: ``no_speech``: flagged with less than this many seconds of speech frames.
NO_SPEECH_S = 0.1
#: ``short`` / ``long``: the slack around the training clips' 1st-99th percentile range, as a share of it.
DURATION_TOLERANCE = 0.1
#: ``cancelling``: flagged when the mono mix's energy is this many dB (or more) below the channels' mean.
CANCEL_DB = -10.0
#: Percentiles of the training clips' durations recorded in the checkpoint (``metrics["train_duration_s"]``).
DURATION_PERCENTILES = (1.0, 99.0)


def duration_range(durations) -> list[float] | None:
    """``[1st, 99th percentile]`` in seconds of training clip ``durations`` (unknown ones, <= 0, left out).

    None when no duration is known (a manifest without the ``duration`` column).
    """
    known = np.asarray([d for d in durations if d and d > 0], dtype=np.float64)
    if known.size == 0:
        return None
    low, high = np.percentile(known, DURATION_PERCENTILES)
    return [round(float(low), 3), round(float(high), 3)]


def checkpoint_range(checkpoint) -> tuple[float, float] | None:
    """The training clips' duration range a checkpoint (or exported model) records, or None (older ones)."""
    found = (getattr(checkpoint, "metrics", None) or {}).get("train_duration_s")
    return (float(found[0]), float(found[1])) if found else None


def mix_db(channels: np.ndarray) -> float | None:
    """The mono mix's energy relative to the channels' mean energy, in dB, of ``channels`` ``(N, C)``.

    None for one channel, or for silence. Equal channels give 0 dB, independent ones of equal energy
    -3 dB, a channel and its inverse -300 dB (the floor).
    """
    channels = np.asarray(channels, dtype=np.float64)
    if channels.ndim != 2 or channels.shape[1] < 2:
        return None
    energy = float(np.mean(channels ** 2))
    if energy <= 0:
        return None
    mono = float(np.mean(channels.mean(axis=1) ** 2))
    return 10.0 * np.log10(max(mono / energy, 1e-30))


def file_mix_db(path: Path, block_frames: int = 1 << 18) -> float | None:
    """:func:`mix_db` of an audio file's channels, read block by block (None for mono files).

    Only multichannel files are read this second time (decoding mixes the channels to mono).
    """
    with sf.SoundFile(str(path)) as fh:
        if fh.channels < 2:
            return None
        energy = mono = 0.0
        for block in fh.blocks(blocksize=block_frames, dtype="float64", always_2d=True):
            energy += float(np.sum(block ** 2)) / block.shape[1]
            mono += float(np.sum(block.mean(axis=1) ** 2))
    return None if energy <= 0 else 10.0 * np.log10(max(mono / energy, 1e-30))


@dataclass
class InputChecks:
    """Frame measurements of one input as its samples arrive, and the flags of all of it or of a span.

    Parameters
    ----------
    sr
        Rate in Hz of the samples pushed (the model's).
    native_rate
        The original input's rate in Hz (None: not known, e.g. raw features).
    mix
        :func:`mix_db` of the original channels (None: mono or not known).
    train_range
        The training clips' ``(1st, 99th percentile)`` durations in seconds (None: skip ``short``/``long``).
    """

    sr: int
    native_rate: int | None = None
    mix: float | None = None
    train_range: tuple[float, float] | None = None
    samples: int = 0
    first: int = 0  # index of the oldest frame kept (streams forget older ones)
    _parts: list = field(default_factory=list, repr=False)
    _rest: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)

    def push(self, block: np.ndarray) -> None:
        """Measure the next mono samples ``(n,)`` (float, [-1, 1]); a partial frame waits for the next block."""
        block = np.asarray(block, dtype=np.float32)
        self.samples += block.shape[0]
        joined = np.concatenate([self._rest, block])
        size = dsp.frame_size(self.sr)
        whole = joined.shape[0] // size * size
        if whole:
            self._parts.append(_frame_stats(joined[:whole].reshape(-1, size), self.sr))
        self._rest = joined[whole:]

    def _stats(self) -> np.ndarray:
        """``(F, 6)`` float64 per frame kept (:func:`_frame_stats`)."""
        if len(self._parts) > 1:
            self._parts = [np.concatenate(self._parts)]
        return self._parts[0] if self._parts else np.zeros((0, 6))

    def forget_before(self, seconds: float) -> None:
        """Drop the frames that end before ``seconds`` (a stream's rows never look back that far)."""
        stats = self._stats()
        keep_from = max(0, int(seconds / dsp.LEVEL_FRAME_S) - self.first)
        if keep_from:
            self._parts = [stats[keep_from:]]
            self.first += min(keep_from, stats.shape[0])

    def measures(self, span: tuple[float, float] | None = None) -> dict[str, float | None]:
        """What the flags are decided on, of everything pushed or of the frames inside ``span`` (start s, end s).

        Returns
        -------
        dict
            ``level_db`` (active speech level, dBFS; -inf for silence), ``clipped_share`` (of the samples),
            ``high_db`` (the active frames' energy in :data:`NARROW_BAND`, dB of that in :data:`BELOW_BAND`;
            None without active frames or for a model rate whose band stops below :data:`NARROW_BAND`),
            ``above_db`` (their energy above ``NARROW_BAND[0]``, dB of their total; None likewise),
            ``speech_s`` (seconds of speech frames), ``duration`` (s), ``native_rate`` (Hz or None) and
            ``mix_db`` (:func:`mix_db` or None).
        """
        stats = self._stats()
        duration = self.samples / self.sr
        if span is not None:
            duration = span[1] - span[0]
            centres = (np.arange(stats.shape[0]) + self.first + 0.5) * dsp.LEVEL_FRAME_S
            stats = stats[(centres >= span[0]) & (centres < span[1])]
        power = stats[:, 0]
        active = dsp.active_frames(power)
        below, total = stats[active, 3].sum(), stats[active, 5].sum()
        wide = self.sr / 2 >= NARROW_BAND[1]
        return {
            "level_db": dsp.active_level_db(power),
            "clipped_share": float(stats[:, 1].sum() / max(1, stats.shape[0] * dsp.frame_size(self.sr))),
            "high_db": _db(stats[active, 2].sum(), below) if wide and below > 0 else None,
            "above_db": _db(stats[active, 4].sum(), total) if wide and total > 0 else None,
            "speech_s": speech_seconds(power),
            "duration": duration, "native_rate": self.native_rate, "mix_db": self.mix,
        }

    def flags(self, span: tuple[float, float] | None = None) -> list[str]:
        """The flags (in :data:`FLAGS` order) of everything pushed, or of the frames inside ``span`` (start, end s)."""
        return decide(self.measures(span), self.sr, self.train_range)


def decide(measured: dict, sr: int, train_range: tuple[float, float] | None = None) -> list[str]:
    """The flags, in :data:`FLAGS` order, of :meth:`InputChecks.measures` (audio scored at ``sr`` Hz)."""
    speech = measured["speech_s"] >= NO_SPEECH_S
    high, above, native = measured["high_db"], measured["above_db"], measured["native_rate"]
    cut = (high is not None and high <= NARROW_DB) or (above is not None and above <= ABOVE_DB)
    raised = {
        "quiet": measured["level_db"] < QUIET_DBFS,
        "clipped": measured["clipped_share"] > CLIPPED_SHARE,
        # the bandwidth of speech: not asked of silence or noise
        "narrowband": (speech and cut) or (native is not None and native < sr),
        "no_speech": not speech,
        "short": train_range is not None and measured["duration"] < train_range[0] * (1 - DURATION_TOLERANCE),
        "long": train_range is not None and measured["duration"] > train_range[1] * (1 + DURATION_TOLERANCE),
        "cancelling": measured["mix_db"] is not None and measured["mix_db"] <= CANCEL_DB,
    }
    return [name for name in FLAGS if raised[name]]


def _frame_stats(frames: np.ndarray, sr: int) -> np.ndarray:
    """``(F, 6)`` float64 of frames ``(F, size)``: mean square, clipped samples, and powers in NARROW_BAND,
    BELOW_BAND, above NARROW_BAND[0] and in all.

    The powers are of the Hann-windowed frame's spectrum (the window keeps low-frequency energy from leaking
    above the band edge).
    """
    from scipy.fft import rfft  # scipy.fft: heavy (0.1-0.3 s of imports), loaded only when audio is checked

    size = frames.shape[1]
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / size
    clipped = np.count_nonzero(np.abs(frames) >= CLIP_LEVEL, axis=1)
    spectrum = rfft(frames * np.hanning(size).astype(np.float32), axis=1)
    freqs = np.fft.rfftfreq(size, 1.0 / sr)

    def band_power(low: float, high: float) -> np.ndarray:
        bins = spectrum[:, (freqs >= low) & (freqs < high)]
        return np.einsum("ij,ij->i", bins.real, bins.real, dtype=np.float64) + \
            np.einsum("ij,ij->i", bins.imag, bins.imag, dtype=np.float64)

    return np.column_stack([power, clipped, band_power(*NARROW_BAND), band_power(*BELOW_BAND),
                            band_power(NARROW_BAND[0], np.inf), band_power(0.0, np.inf)])


def _db(part: float, whole: float) -> float:
    """``10 log10(part / whole)``, floored at -300 dB."""
    return 10.0 * np.log10(max(part / whole, 1e-30))


def speech_seconds(power: np.ndarray) -> float:
    """Seconds of speech in frame ``power`` (mean squares): active, :data:`SPEECH_OVER_FLOOR_DB` over the floor."""
    levels = 10.0 * np.log10(np.maximum(power, 1e-30))
    sound = levels > dsp.SILENCE_DBFS
    if not sound.any():
        return 0.0
    floor = np.percentile(levels[sound], FLOOR_PERCENTILE)
    speech = dsp.active_frames(power) & (levels >= floor + SPEECH_OVER_FLOOR_DB)
    return float(np.count_nonzero(speech) * dsp.LEVEL_FRAME_S)


def check_audio(samples: np.ndarray, sr: int, *, native_rate: int | None = None, channels: np.ndarray | None = None,
                train_range: tuple[float, float] | None = None) -> InputChecks:
    """The :class:`InputChecks` of mono ``samples`` ``(N,)`` at ``sr`` Hz (``channels``: the original ``(N', C)``)."""
    checks = InputChecks(sr, native_rate, mix_db(channels) if channels is not None else None, train_range)
    checks.push(samples)
    return checks


def flag_text(flags: list[str]) -> str:
    """The ``flags`` column's value: names joined by ``;``, empty when clean."""
    return ";".join(flags)
