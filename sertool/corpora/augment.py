"""Waveform augmentation: new audio files plus manifest rows that remember their source.

Each augmentation is a small frozen dataclass called as ``aug(samples, sr,
rng) -> samples`` with a ``tag``. :func:`augment_manifest` applies each
requested augmentation to the selected utterances and writes
``<audio_dir>/<id>+<tag>.flac`` (24-bit FLAC, clipped to [-1, 1]); the new
rows have id ``<id>+<tag>``, the source's speaker, label, gender and session,
and ``source_id = <id>``, so every split keeps a copy with its source.

Randomness comes from ``numpy.random.default_rng([seed, crc32(id), copy])``:
the same seed gives byte-identical files whatever the order or ``--jobs``.
Files already written are kept, so an interrupted run resumes.

Each augmentation holds the whole recording (and a copy or two of it), so a
recording longer than :data:`MAX_SECONDS` is not augmented: it gets a
failure row telling to cut it first, instead of exhausting memory.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sertool.io.atomic import atomic_path
from sertool.io.audio import audio_info, load_audio
from sertool.io.scan import ScanSkips, find_audio
from sertool.errors import AudioError, ConfigError, SertoolError
from sertool.io.manifest import Utterance, read_manifest, write_manifest
from sertool.io.progress import progress_bar
from sertool.io.report import RunReport


#: Longest recording (s) augmented: every augmentation holds all of it at once (4 h of 16 kHz audio is 0.9 GB as
#: float32, and white noise adds two float64 copies). Read at run time.
MAX_SECONDS = 1800.0


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def _scale_to_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` scaled so that 10 log10(P_signal / P_noise) = ``snr_db``."""
    p_signal, p_noise = _power(signal), _power(noise)
    if p_signal == 0 or p_noise == 0:
        return np.zeros_like(signal)
    return noise * np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))


def _files(folder: str) -> list[Path]:
    """Audio files under ``folder`` (every format the decoders read; hidden files left out); ConfigError for none."""
    skips = ScanSkips()
    files = find_audio(Path(folder), recursive=True, skips=skips)
    if not files:
        raise ConfigError(f"{folder}: no audio files found ({skips.text() or 'the folder is empty'}); "
                          "give a folder of noise or impulse-response recordings")
    return files


@dataclass(frozen=True)
class WhiteNoise:
    """Gaussian white noise at ``snr_db`` relative to the utterance's power (papers 000, 002)."""

    snr_db: float

    @property
    def tag(self) -> str:
        return f"wn{self.snr_db:g}"

    def __call__(self, samples, sr, rng):
        noise = rng.standard_normal(samples.shape[0])
        return samples + _scale_to_snr(samples, noise, self.snr_db).astype(np.float32)


@dataclass(frozen=True)
class NoiseMix:
    """A random file from ``folder`` (looped or cut to length, random offset) at an SNR drawn from [lo, hi]."""

    folder: str
    snr_low: float
    snr_high: float

    @property
    def tag(self) -> str:
        return "noise"

    def __call__(self, samples, sr, rng):
        files = _files(self.folder)
        noise = load_audio(files[rng.integers(len(files))], sr=sr)
        noise = np.tile(noise, int(np.ceil(2 * samples.shape[0] / noise.shape[0])))
        start = rng.integers(noise.shape[0] - samples.shape[0] + 1)
        snr = rng.uniform(self.snr_low, self.snr_high)
        return samples + _scale_to_snr(samples, noise[start:start + samples.shape[0]], snr).astype(np.float32)


@dataclass(frozen=True)
class Speed:
    """Speed perturbation by ``factor`` (tempo and pitch together, like sox ``speed``)."""

    factor: float

    @property
    def tag(self) -> str:
        return f"sp{self.factor:g}"

    def __call__(self, samples, sr, rng):
        return soxr.resample(samples, sr * self.factor, sr, quality="HQ").astype(np.float32)


@dataclass(frozen=True)
class PitchShift:
    """Pitch shift by ``semitones`` at constant duration (librosa's phase vocoder + resampling)."""

    semitones: float

    @property
    def tag(self) -> str:
        return f"ps{self.semitones:+g}"

    def __call__(self, samples, sr, rng):
        import librosa  # heavy (numba, ~3 s): loaded only when a pitch shift runs

        return librosa.effects.pitch_shift(samples, sr=sr, n_steps=self.semitones).astype(np.float32)


@dataclass(frozen=True)
class Gain:
    """Gain change by ``db`` decibels."""

    db: float

    @property
    def tag(self) -> str:
        return f"gain{self.db:+g}"

    def __call__(self, samples, sr, rng):
        return (samples * 10 ** (self.db / 20)).astype(np.float32)


@dataclass(frozen=True)
class TimeShift:
    """Circular shift by a random offset of up to ``max_seconds`` either way."""

    max_seconds: float

    @property
    def tag(self) -> str:
        return "shift"

    def __call__(self, samples, sr, rng):
        limit = int(self.max_seconds * sr)
        return np.roll(samples, int(rng.integers(-limit, limit + 1)))


@dataclass(frozen=True)
class Reverb:
    """Convolution with a random room impulse response from ``folder``, same length and RMS as the input."""

    folder: str

    @property
    def tag(self) -> str:
        return "rir"

    def __call__(self, samples, sr, rng):
        from scipy.signal import fftconvolve  # scipy.signal: heavy, loaded only when a reverb runs

        files = _files(self.folder)
        rir = load_audio(files[rng.integers(len(files))], sr=sr)
        rir = rir[int(np.argmax(np.abs(rir))):]  # align the direct path with the dry signal
        wet = fftconvolve(samples, rir)[: samples.shape[0]]
        p_wet = _power(wet)
        return (wet * np.sqrt(_power(samples) / p_wet) if p_wet > 0 else wet).astype(np.float32)


def select(utterances: list[Utterance], *, speakers: list[str] | None = None,
           split_column: str | None = None, split_value: str = "train") -> list[Utterance]:
    """The originals to augment: all, or those of ``speakers``, or those whose ``split_column`` is ``split_value``."""
    chosen = [u for u in utterances if not u.source_id]  # never augment a copy again
    if speakers:
        unknown = sorted(set(speakers) - {u.speaker for u in utterances})
        if unknown:
            raise ConfigError(f"--speakers: {', '.join(unknown)} not in the manifest")
        chosen = [u for u in chosen if u.speaker in speakers]
    if split_column:
        chosen = [u for u in chosen if u.extra.get(split_column) == split_value]
    return chosen


def _rng(seed: int, utt_id: str, copy: int, tag: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(utt_id.encode()), copy, zlib.crc32(tag.encode())])


def _plan(utterances, augmentations: list[tuple[object, int]]):
    """(utterance, augmentation, copy index, new id) for every file to write."""
    for utt in utterances:
        for aug, copies in augmentations:
            for copy in range(copies):
                suffix = aug.tag if copies == 1 else f"{aug.tag}-{copy}"
                yield utt, aug, copy, f"{utt.id}+{suffix}"


def augment_manifest(manifest, output, audio_dir, augmentations: list[tuple[object, int]], *, seed: int = 0,
                     speakers: list[str] | None = None, split_column: str | None = None,
                     split_value: str = "train", max_failures: int = 0, progress=None) -> RunReport:
    """Write augmented copies and a manifest of the originals plus the copies.

    Parameters
    ----------
    augmentations
        ``(augmentation, copies)`` pairs; each selected utterance gets
        ``copies`` files per augmentation.

    Returns the run report (``ok`` written, ``skipped`` already present).
    """
    if not augmentations:
        raise ConfigError("no augmentation chosen; add e.g. --white-noise 20 or --speed 0.9")
    rows = read_manifest(manifest)
    existing = {u.id for u in rows}
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    report = RunReport(max_failures=max_failures)
    new_rows = []
    plan = list(_plan(select(rows, speakers=speakers, split_column=split_column, split_value=split_value),
                      augmentations))
    with progress_bar(len(plan), progress, desc="augment") as bar:
        for utt, aug, copy, new_id in plan:
            bar.update()
            path = audio_dir / f"{new_id}.flac"
            row = replace(utt, id=new_id, path=path, source_id=utt.id, extra={**utt.extra, "augmentation": aug.tag})
            if new_id in existing:
                continue  # the input manifest already lists this copy
            try:
                if path.exists():
                    report.skip()
                else:
                    sr = _usable_rate(utt.path)
                    samples = load_audio(utt.path, sr=sr)
                    out = np.clip(aug(samples, sr, _rng(seed, utt.id, copy, aug.tag)), -1.0, 1.0)
                    with atomic_path(path) as tmp:
                        sf.write(tmp, out, sr, format="FLAC", subtype="PCM_24")
                    report.done()
                new_rows.append(replace(row, duration=sf.info(str(path)).duration))
            except (SertoolError, OSError) as exc:
                report.fail(new_id, utt.path, "augment", exc)
    write_manifest(rows + new_rows, output)
    report.write_failures(Path(output).with_suffix(".failures.csv"))
    return report


def _usable_rate(path) -> int:
    """The file's own sample rate.

    Raises
    ------
    AudioError
        The file is not readable audio (named in the message).
        Also when the recording is longer than :data:`MAX_SECONDS`.
    """
    info = audio_info(path)
    if info.duration > MAX_SECONDS:
        raise AudioError(f"{path}: {info.duration / 60:.1f} min of audio is too long to augment (limit "
                         f"{MAX_SECONDS / 60:g} min: every augmentation holds the whole recording); cut it into "
                         "pieces first, e.g. `sertool prepare ... --vad-split DIR`")
    return info.sample_rate


def plan_augmentations(*, white_noise=(), noise_dir=None, snr_range=(5.0, 20.0), speed=(), pitch=(), gain=(),
                       time_shift: float | None = None, rir_dir=None, copies: int = 1) -> list[tuple[object, int]]:
    """``(augmentation, copies)`` pairs for :func:`augment_manifest` from the ``sertool augment`` options.

    Parameters
    ----------
    white_noise
        SNRs in dB; ``copies`` files per value.
    noise_dir, snr_range
        Mix random files of this folder at an SNR drawn from ``(low, high)`` dB.
    speed, pitch, gain
        Speed factors, pitch shifts in semitones, gains in dB; one file per value.
    time_shift
        Random circular shift of up to this many seconds.
    rir_dir
        Reverberate with random impulse responses from this folder.
    copies
        Files per utterance for white noise values, noise mixing, time shift and reverb.
    """
    if copies < 1:
        raise ConfigError(f"copies must be at least 1, not {copies}")
    chosen = [(WhiteNoise(v), copies) for v in white_noise]
    if noise_dir:
        low, high = snr_range
        chosen.append((NoiseMix(noise_dir, low, high), copies))
    chosen += [(Speed(v), 1) for v in speed] + [(PitchShift(v), 1) for v in pitch] + [(Gain(v), 1) for v in gain]
    if time_shift:
        chosen.append((TimeShift(time_shift), copies))
    if rir_dir:
        chosen.append((Reverb(rir_dir), copies))
    return chosen
