"""Feature sources: decoded audio -> the raw (unnormalised) features a checkpoint's model scores.

One :class:`FeatureSource` per checkpoint gives the features of a file, of
a long file decoded block by block, of a :class:`Clip` in memory, of a live
stream's sample blocks, and of the speech regions Silero VAD finds.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from sertool.errors import AudioError, SertoolError
from sertool.features import build_extractor
from sertool.inference.flags import InputChecks, checkpoint_range, file_mix_db, mix_db
from sertool.inference.windows import audio_slices
from sertool.io import audio  # read as audio.NAME: tests and tools may tune audio.STREAM_SECONDS at run time


@dataclass(frozen=True)
class Clip:
    """Audio already in memory: ``samples`` (N,) or (N, channels) float, at ``sample_rate`` Hz, called ``name``."""

    samples: np.ndarray
    sample_rate: int
    name: str

    def __str__(self) -> str:
        return self.name

    @property
    def stem(self) -> str:
        return self.name


def decode(source: "Path | Clip", sr: int, min_duration: float, on_warning=None) -> np.ndarray:
    """float32 mono samples ``(N,)`` of a file or a :class:`Clip` at ``sr`` Hz.

    Parameters
    ----------
    source
        An audio file, or samples in memory.
    sr
        Rate in Hz of the result (resampled when the source's differs).
    min_duration
        Shortest usable audio in seconds.
    on_warning
        ``on_warning(message)`` for decode warnings (a truncated file).

    Raises
    ------
    AudioError
        Unusable audio (named in the message): undecodable, empty, non-finite or too short.
    """
    if not isinstance(source, Clip):
        return audio.load_audio(source, sr=sr, min_duration=min_duration, on_warning=on_warning)
    audio.check_rate(source.sample_rate, str(source), "pass the samples' real rate")  # 1 Hz -> 16 kHz: 16000x memory
    samples = audio.pcm_to_float(source.samples)  # integer PCM (as scipy.io.wavfile returns it) scaled to [-1, 1]
    if samples.ndim == 2:
        samples = samples.mean(axis=1)  # (N, channels), as soundfile returns it
    if samples.ndim != 1 or samples.shape[0] == 0:
        raise AudioError(f"{source}: expected samples of shape (N,) or (N, channels), got {samples.shape}")
    if not np.isfinite(samples).all():
        raise AudioError(f"{source}: the samples contain NaN or infinite values")
    if source.sample_rate != sr:
        import soxr  # soxr: heavy, loaded only when a clip needs resampling

        samples = soxr.resample(samples, source.sample_rate, sr, quality="HQ").astype(np.float32)
    if samples.shape[0] < min_duration * sr:
        raise AudioError(f"{source}: {samples.shape[0] / sr:.3f} s of audio is shorter than the "
                         f"{min_duration:.3f} s the features need")
    return np.ascontiguousarray(samples)


@contextlib.contextmanager
def naming(source) -> Iterator[None]:
    """Errors raised inside the block name ``source`` first (as a one-line SertoolError of the same type)."""
    try:
        yield
    except SertoolError as exc:
        message = str(exc)
        raise type(exc)(message if message.startswith(str(source)) else f"{source}: {message}") from None


#: Headers :class:`FeatureSource` keeps between a file's :meth:`~FeatureSource.is_long` and its input checks.
HEADERS_KEPT = 64


class FeatureSource:
    """The features of a checkpoint's extractors (and its utterance-level extractor, appended to every frame).

    Parameters
    ----------
    checkpoint
        A :class:`~sertool.models.checkpoint.Checkpoint` (not fused).
    window_s, hop_s
        Utterance-level models: audio slices of ``window_s`` seconds every ``hop_s`` (default half the window),
        one vector each; None: one vector per input.

    Attributes
    ----------
    notes
        str(source) -> decode warnings, taken (popped) by the caller.
    checks
        str(source) -> the :class:`~sertool.inference.flags.InputChecks` of its decoded audio (the ``flags``
        column), taken (popped) by the caller.
    """

    def __init__(self, checkpoint, window_s: float | None = None, hop_s: float | None = None):
        self.extractor = build_extractor(checkpoint.feature_config)
        extra = checkpoint.utterance_feature_config
        self.utterance_extractor = build_extractor(extra) if extra else None
        self.utterance_level = self.extractor.level == "utterance"
        self.sample_rate = self.extractor.sample_rate
        self.window_s, self.hop_s = window_s, hop_s
        self.notes: dict[str, list[str]] = {}
        self.checks: dict[str, InputChecks] = {}
        self.train_range = checkpoint_range(checkpoint)
        self._headers: dict[str, audio.AudioInfo] = {}  # str(file) -> its header, read once per scoring

    def header(self, source: Path) -> "audio.AudioInfo":
        """``source``'s header (:func:`sertool.io.audio.audio_info`), read once while the file is scored.

        :meth:`is_long` and :meth:`checks_for` both need it; the entry is dropped when the checks take it,
        and at most :data:`HEADERS_KEPT` headers are kept. Raises AudioError as ``audio_info`` does.
        """
        key = str(source)
        if key not in self._headers:
            if len(self._headers) >= HEADERS_KEPT:
                del self._headers[next(iter(self._headers))]
            self._headers[key] = audio.audio_info(source)
        return self._headers[key]

    def checks_for(self, source) -> InputChecks:
        """A fresh :class:`InputChecks` of ``source`` (kept in :attr:`checks`), with its rate and channel mix."""
        if isinstance(source, Clip):
            samples = np.asarray(source.samples)
            native, mix = source.sample_rate, mix_db(samples) if samples.ndim == 2 else None
        else:
            try:
                info = self.header(source)
                native, mix = info.sample_rate, file_mix_db(source) if info.channels > 1 else None
            except (SertoolError, RuntimeError):  # the checks are advisory: decoding reports a bad file
                native, mix = None, None
            finally:
                self._headers.pop(str(source), None)
        checks = self.checks[str(source)] = InputChecks(self.sample_rate, native, mix, self.train_range)
        return checks

    def measured(self, source, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``blocks`` of ``source``'s samples, each measured by its (fresh) :meth:`checks_for` on the way."""
        checks = self.checks_for(source)
        for block in blocks:
            checks.push(block)
            yield block

    def note_for(self, source) -> Callable[[str], None]:
        """A ``note(message)`` that keeps each decode warning of ``source`` once in :attr:`notes`."""
        def note(message: str) -> None:
            if message not in self.notes.setdefault(str(source), []):
                self.notes[str(source)].append(message)

        return note

    @property
    def can_stream(self) -> bool:
        """Whether long files can be decoded block by block (a frame-level extractor alone that streams)."""
        return not self.utterance_level and self.utterance_extractor is None and self.extractor.streams

    @property
    def streams_blocks(self) -> bool:
        """Whether long files can be scored as their feature blocks arrive (:meth:`feature_blocks`)."""
        return self.can_stream and self.extractor.streams_blocks

    @property
    def streams_live(self) -> bool:
        """Whether a live stream's features can be computed as its samples arrive (a single pass)."""
        return self.streams_blocks and self.extractor.streams_live

    def is_long(self, source, longer_than: float) -> bool:
        """Whether ``source`` is a file to decode block by block: over ``longer_than`` s and STREAM_SECONDS."""
        if isinstance(source, Clip) or not self.can_stream:
            return False
        try:
            duration = self.header(source).duration
        except SertoolError:
            return False  # the normal path reports the problem
        return duration > max(audio.STREAM_SECONDS, longer_than)

    def features(self, source: "Path | Clip", longer_than: float = 0.0):
        """Decode ``source`` and compute its raw features.

        Parameters
        ----------
        source
            A file or a :class:`Clip`.
        longer_than
            Files longer than this (s) and STREAM_SECONDS are decoded block by block when the extractor streams.

        Returns
        -------
        tuple
            ``(duration s, feats, spans)``: feats ``(T, D)`` for frame-level models (spans None); for
            utterance-level ones ``(W, D)``, one vector per audio slice, and spans their ``(start s, end s)``.

        Raises
        ------
        SertoolError
            Unusable audio, or features that cannot be computed (the source is named).
        """
        note = self.note_for(source)
        if self.is_long(source, longer_than):
            return self._streamed_features(source, note)
        samples = decode(source, self.sample_rate, self.extractor.min_duration, note)
        self.checks_for(source).push(samples)
        extra, extra_samples = self.utterance_extractor, None
        if extra is not None and not self.utterance_level and extra.sample_rate != self.sample_rate:
            extra_samples = decode(source, extra.sample_rate, extra.min_duration, note)
        return (samples.shape[0] / self.sample_rate, *self.sample_features(samples, extra_samples))

    def sample_features(self, samples: np.ndarray, extra_samples: np.ndarray | None = None):
        """``(feats, spans)`` of decoded samples ``(N,)`` at :attr:`sample_rate`, as :meth:`features` gives them.

        ``extra_samples``: the same audio at the utterance extractor's rate, when that differs.
        """
        sr = self.sample_rate
        if self.utterance_level:
            slices = audio_slices(samples.shape[0], sr, self.window_s, self.hop_s)
            vectors = [self.extractor.extract(samples[a:b], sr) for a, b in slices]
            return np.concatenate(vectors), [(a / sr, b / sr) for a, b in slices]
        feats = self.extractor.extract(samples, sr)
        if self.utterance_extractor is not None:
            extra = self.utterance_extractor
            vector = extra.extract(samples if extra_samples is None else extra_samples, extra.sample_rate)
            feats = np.concatenate([feats, np.repeat(vector, feats.shape[0], axis=0)], axis=1)
        return feats, None

    def _streamed_features(self, source: Path, note):
        """``(duration s, feats (T, D), None)`` of a long file, decoded and transformed block by block."""
        count = [0]

        def blocks():
            for block in self.measured(source, audio.stream_audio(source, sr=self.sample_rate, on_warning=note)):
                count[0] += block.shape[0]
                yield block

        with naming(source):
            feats = self.extractor.extract_stream(blocks())
        return count[0] / self.sample_rate, feats, None

    def feature_blocks(self, source: Path) -> Iterator[tuple[np.ndarray, int]]:
        """``(raw features (frames, D), samples decoded so far)`` of a long file, block by block (bounded memory)."""
        note = self.note_for(source)
        return self.extractor.feature_blocks(
            lambda: self.measured(source, audio.stream_audio(source, sr=self.sample_rate, on_warning=note)))

    def live_blocks(self, samples: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, int]]:
        """:meth:`feature_blocks` of a live stream's sample blocks at :attr:`sample_rate` (read once)."""
        return self.extractor.feature_blocks(lambda: iter(samples))

    def speech(self, source) -> tuple[np.ndarray, list[tuple[np.ndarray, float, float]]]:
        """The samples of ``source`` and its speech regions ``[(samples, start s, end s)]`` (Silero VAD).

        Regions too short for the features are left out.

        Raises
        ------
        SertoolError
            Two feature sets at different rates (the regions are cut at one rate), or unusable audio.
        """
        from sertool.features.vad import speech_regions  # silero_vad/torch: heavy, loaded only with --vad

        sr = self.sample_rate
        if self.utterance_extractor is not None and self.utterance_extractor.sample_rate != sr:
            raise SertoolError(f"{source}: --vad needs the checkpoint's two feature sets at one sample rate")
        samples = decode(source, sr, 0.0, self.note_for(source))
        self.checks_for(source).push(samples)
        regions = []
        for start, end in speech_regions(samples, sr):
            piece = samples[int(round(start * sr)):int(round(end * sr))]
            if piece.shape[0] >= max(1, self.extractor.min_duration * sr):
                regions.append((piece, start, min(end, start + piece.shape[0] / sr)))
        return samples, regions
