"""``predict``: score audio files, folders or manifests with a checkpoint into CSV.

Features are recomputed from the checkpoint's own feature config and
normalisation, so the caller never passes feature options. Long files are
scored in overlapping windows of the model's input length; window
probabilities are averaged (or written one row per window with
``segments=True``). Bad files get a row with the error and no prediction.

Rows are written and flushed one file at a time; with ``resume`` (the
default) a rerun keeps the rows of files already scored and only scores the
rest (files that failed before are tried again), so a killed run over a
large folder never restarts from zero.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from sertool.io.audio import find_audio
from sertool.errors import ConfigError, SertoolError
from sertool.runtime.process import blas_threads, torch_threads
from sertool.io.report import RunReport


#: Clips up to (1 + this) x the model's input length are scored as one window that the model centre-crops, as
#: training crops them. Chosen on the pooled test predictions of the 4-fold RAVDESS LIGHT-SERNET run (global norm):
#: UA 0.554 with overlapping windows (0 and 0.25), 0.564 from 0.5 on (as evaluate, which scores whole clips).
CROP_TOLERANCE = 0.5

#: Windows of one file sent through the model together (peak memory is bounded by this, not the file's length).
WINDOW_BATCH = 32

_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"
#: Models trained on the 16 RAVDESS actors of ../shared/data, shipped inside the package (``--model NAME``):
#: ``default`` scores any file alone; ``speaker`` normalises per speaker (needs 10+ files of each speaker).
BUNDLED = {"default": _BUNDLE / "light_sernet_ravdess.pt", "speaker": _BUNDLE / "light_sernet_ravdess_speaker.pt"}
DEFAULT_CHECKPOINT = BUNDLED["default"]


def default_checkpoint(name: str = "default") -> Path:
    """Path of bundled model ``name`` (see ``sertool/models/default/README.md``)."""
    path = BUNDLED[name]
    if not path.is_file():
        raise SertoolError(f"{path}: the bundled model is missing from this installation; "
                           "pass a checkpoint with --model")
    return path


def checkpoint_path(checkpoint) -> Path:
    """A bundled model name (:data:`BUNDLED`) as its file, anything else as a path."""
    return default_checkpoint(str(checkpoint)) if str(checkpoint) in BUNDLED else Path(checkpoint)


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders searched recursively for audio, manifests (.csv) read for their paths."""
    from sertool.io.manifest import read_manifest

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(find_audio(item))  # broken links included: they get error rows
        elif item.suffix.lower() == ".csv":
            files.extend(u.path for u in read_manifest(item))
        else:
            files.append(item)  # missing or unreadable files become error rows
    seen, unique = set(), []
    for f in files:
        if str(f) not in seen:
            seen.add(str(f))
            unique.append(f)
    return unique


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


def _samples(source: "Path | Clip", sr: int, min_duration: float, on_warning=None) -> np.ndarray:
    """float32 mono samples of a file or a :class:`Clip` at ``sr`` Hz (an :class:`AudioError` if unusable)."""
    from sertool.io.audio import load_audio

    if not isinstance(source, Clip):
        return load_audio(source, sr=sr, min_duration=min_duration, on_warning=on_warning)
    from sertool.errors import AudioError

    from sertool.io.audio import pcm_to_float

    if source.sample_rate <= 0:
        raise AudioError(f"{source}: sample rate {source.sample_rate} Hz must be positive")
    samples = pcm_to_float(source.samples)  # integer PCM (as scipy.io.wavfile returns it) scaled to [-1, 1]
    if samples.ndim == 2:
        samples = samples.mean(axis=1)  # (N, channels), as soundfile returns it
    if samples.ndim != 1 or samples.shape[0] == 0:
        raise AudioError(f"{source}: expected samples of shape (N,) or (N, channels), got {samples.shape}")
    if not np.isfinite(samples).all():
        raise AudioError(f"{source}: the samples contain NaN or infinite values")
    if source.sample_rate != sr:
        import soxr

        samples = soxr.resample(samples, source.sample_rate, sr, quality="HQ").astype(np.float32)
    if samples.shape[0] < min_duration * sr:
        raise AudioError(f"{source}: {samples.shape[0] / sr:.3f} s of audio is shorter than the "
                         f"{min_duration:.3f} s the features need")
    return np.ascontiguousarray(samples)


@dataclass
class Scorer:
    """Checkpoint + extractor + model: ``score(path) -> (duration s, [((start s, end s), probs (C,))])``.

    start/end give the span of audio the window's frames cover. Utterance-level
    checkpoints (functionals, embeddings, classic models) score a whole file as
    one vector, or each ``window_s`` slice of the audio when a window is given.
    """

    checkpoint: object
    window_s: float | None
    hop_s: float | None
    #: clips up to (1 + this) x the model's input length are one centre-cropped window, as in training
    crop_tolerance: float = CROP_TOLERANCE
    #: windows (or utterance vectors) per forward pass; peak memory is bounded by it
    batch_size: int = WINDOW_BATCH
    #: "cpu", "cuda" or "auto"
    device: str = "cpu"
    #: score the speech regions Silero VAD finds (:mod:`sertool.features.vad`), one (start, end, probs) per region
    vad: bool = False

    def __post_init__(self):
        import torch

        from sertool.features import build_extractor
        from sertool.features.normalise import from_checkpoint

        self.extractor = build_extractor(self.checkpoint.feature_config)
        extra = self.checkpoint.utterance_feature_config
        self.utterance_extractor = build_extractor(extra) if extra else None
        from sertool.runtime.process import torch_device

        if self.batch_size < 1:
            raise ConfigError(f"batch size {self.batch_size} must be at least 1")
        self._device = torch_device(self.device)
        self.model = self.checkpoint.build_model().to(self._device)
        self.normaliser = from_checkpoint(self.checkpoint)
        self.utterance_level = self.extractor.level == "utterance"
        self.notes: dict[str, list[str]] = {}  # str(source) -> decode warnings, taken by the caller
        self._torch = torch
        if self.utterance_level:
            self.window = self.hop = None
            return
        if self.crop_tolerance < 0:
            raise ConfigError(f"crop_tolerance {self.crop_tolerance} must be >= 0")
        self.frame_s, self.span_s, self.lead_s = self.extractor.frame_timing
        if self.window_s:  # windows the user chose are scored as given
            self.crop_tolerance = 0.0
        model_frames = self.checkpoint.model_config.get("input_frames")
        window_s = self.window_s if self.window_s else (model_frames * self.frame_s if model_frames else None)
        self.window = max(1, round(window_s / self.frame_s)) if window_s else None
        hop_s = self.hop_s if self.hop_s else (window_s / 2 if window_s else None)
        self.hop = max(1, round(hop_s / self.frame_s)) if hop_s else None

    @property
    def needs_speakers(self) -> bool:
        """Whether scoring needs each file's speaker (speaker-normalised checkpoints)."""
        return self.normaliser.mode == "speaker"

    def features(self, source: "Path | Clip"):
        """Decode ``source`` (a file, or a :class:`Clip` in memory) and compute its raw (unnormalised) features.

        Returns ``(duration s, feats, spans)``: feats ``(T, D)`` for frame-level
        models (spans None); for utterance-level ones ``(W, D)``, one vector per
        audio window (W = 1 without ``window_s``), and spans their (start s, end s).
        """
        sr = self.extractor.sample_rate

        def note(message: str) -> None:
            if message not in self.notes.setdefault(str(source), []):
                self.notes[str(source)].append(message)

        if self._streams(source):
            return self._streamed_features(source, note)
        samples = _samples(source, sr, self.extractor.min_duration, note)
        extra = self.utterance_extractor
        extra_samples = None
        if extra is not None and not self.utterance_level and extra.sample_rate != sr:
            extra_samples = _samples(source, extra.sample_rate, extra.min_duration, note)
        return (samples.shape[0] / sr, *self.sample_features(samples, extra_samples))

    def sample_features(self, samples: np.ndarray, extra_samples: np.ndarray | None = None):
        """``(feats, spans)`` of decoded audio at the extractor's rate, as :meth:`features` returns them.

        ``extra_samples``: the same audio at the utterance extractor's rate, when that differs.
        """
        sr = self.extractor.sample_rate
        if self.utterance_level:
            return self._window_vectors(samples, sr, samples.shape[0] / sr)
        feats = self.extractor.extract(samples, sr)
        if self.utterance_extractor is not None:
            extra = self.utterance_extractor
            vector = extra.extract(samples if extra_samples is None else extra_samples, extra.sample_rate)
            feats = np.concatenate([feats, np.repeat(vector, feats.shape[0], axis=0)], axis=1)
        return feats, None

    def _streams(self, source) -> bool:
        """Long files of frame-level extractors that can stream are decoded block by block (bounded audio memory)."""
        if isinstance(source, Clip) or self.utterance_level or self.utterance_extractor is not None:
            return False
        if not getattr(self.extractor, "streams", False):
            return False
        from sertool.io.audio import STREAM_SECONDS, audio_info

        try:
            duration = audio_info(source).duration
        except SertoolError:
            return False  # the normal path reports the problem
        window_s = self.window * self.frame_s if self.window else 0.0
        return duration > max(STREAM_SECONDS, window_s * (1 + self.crop_tolerance))

    def _streamed_features(self, source: Path, note):
        """``(duration s, feats (T, D), None)`` of a long file, decoded and transformed block by block."""
        from sertool.io.audio import stream_audio

        sr = self.extractor.sample_rate
        count = [0]

        def blocks():
            for block in stream_audio(source, sr=sr, on_warning=note):
                count[0] += block.shape[0]
                yield block

        try:
            feats = self.extractor.extract_stream(blocks())
        except SertoolError as exc:
            message = str(exc)
            raise type(exc)(message if message.startswith(str(source)) else f"{source}: {message}") from None
        return count[0] / sr, feats, None

    def _score_stream(self, source: Path):
        """:meth:`score` of a long file in bounded memory: audio, features and windows stream through together.

        The windows (starts every ``hop`` frames, plus one ending at the last
        frame) and their probabilities equal those of the whole-file path;
        only about one audio block and one window of features are held.
        """
        from sertool.io.audio import stream_audio

        notes: list[str] = []
        seen = [0]  # samples decoded so far

        def blocks():
            for feats, total in self.extractor.feature_blocks(
                    lambda: stream_audio(source, sr=self.extractor.sample_rate, on_warning=notes.append)):
                seen[0] = total
                yield feats, total

        spans, probs, pending = [], [], []
        try:
            for span, window in self.stream_windows(blocks()):
                pending.append(window)
                spans.append(span)
                if len(pending) == self.batch_size:
                    probs.append(self.score_windows(pending))
                    pending.clear()
        except SertoolError as exc:
            message = str(exc)
            raise type(exc)(message if message.startswith(str(source)) else f"{source}: {message}") from None
        for message in notes:
            self.notes.setdefault(str(source), []).append(message)
        if pending:
            probs.append(self.score_windows(pending))
        duration = seen[0] / self.extractor.sample_rate
        return duration, list(zip(spans, np.concatenate(probs)))

    def stream_windows(self, blocks):
        """Yield ``((start s, end s), window (t, D) normalised)`` as soon as each window's last frame exists.

        ``blocks`` yields ``(raw features (frames, D), samples seen so far)``
        in order (``extractor.feature_blocks``). Windows start every ``hop``
        frames; after the last block, one window ending at the last frame is
        added when the end is not covered, and input of at most (1 +
        :attr:`crop_tolerance`) x ``window`` frames is one window (centre-cropped
        by the model), so the windows equal :meth:`plan_windows` of the joined
        features. At most about one window plus one block of features is held.
        """
        window, hop, sr = self.window, self.hop, self.extractor.sample_rate
        one_window = window * (1 + self.crop_tolerance)  # up to this many frames: one centre-cropped window
        buffer, offset, next_start, samples = None, 0, 0, 0  # buffer holds frames offset, offset + 1, ...
        for feats, samples in blocks:
            if feats.shape[1] != len(self.checkpoint.norm_mean):
                self.plan_windows(feats, 0.0)  # raises the damaged-checkpoint error
            feats = self.normaliser("", feats)
            buffer = feats if buffer is None else np.concatenate([buffer, feats])
            seen = offset + buffer.shape[0]
            while next_start + window <= seen and seen > one_window:
                start = next_start - offset
                yield self._spans([next_start], window, samples / sr)[0], buffer[start:start + window].copy()
                next_start += hop
            if seen > one_window:  # keep what the next window and the last window still need
                keep = max(0, min(next_start, seen - window) - offset)
                buffer, offset = buffer[keep:], offset + keep
        if buffer is None:
            return
        total, duration = offset + buffer.shape[0], samples / sr
        if total <= one_window:  # short input: the one window plan_windows makes of it
            yield from self.plan_windows(buffer, duration, normalise=lambda x: x)
        elif next_start - hop + window < total:  # the end is always covered
            first = max(0, total - window)
            yield self._spans([first], window, duration)[0], buffer[first - offset:][:window].copy()

    def _window_vectors(self, samples: np.ndarray, sr: int, duration: float):
        if not self.window_s or duration <= self.window_s:
            return self.extractor.extract(samples, sr), [(0.0, duration)]
        size, hop = round(self.window_s * sr), round((self.hop_s or self.window_s / 2) * sr)
        starts = list(range(0, samples.shape[0] - size + 1, hop))
        if starts[-1] + size < samples.shape[0]:
            starts.append(samples.shape[0] - size)
        spans = [(st / sr, (st + size) / sr) for st in starts]
        return np.concatenate([self.extractor.extract(samples[st:st + size], sr) for st in starts]), spans

    def score_features(self, feats: np.ndarray, duration: float, spans=None, normalise=None):
        """Windows of normalised ``feats`` through the model: ``[((start s, end s), probs (C,))]``.

        ``spans`` come from :meth:`features` (utterance level); ``normalise(x) -> x``
        defaults to the checkpoint's own normalisation.
        """
        planned = self.plan_windows(feats, duration, spans, normalise)
        return list(zip([span for span, _ in planned], self.score_windows([w for _, w in planned])))

    def plan_windows(self, feats: np.ndarray, duration: float, spans=None, normalise=None) -> list:
        """``[((start s, end s), window (t, D) normalised)]``: what :meth:`score_features` sends to the model.

        Frame level: one window of the whole clip up to (1 + crop_tolerance) x
        the model's input (the model centre-crops it, and its span is the
        crop's), else windows every ``hop`` frames plus one ending at the last
        frame. Utterance level: one (1, D) row per vector.
        """
        if feats.shape[1] != len(self.checkpoint.norm_mean):
            from sertool.models.checkpoint import CheckpointError

            raise CheckpointError(f"the checkpoint's normalisation has {len(self.checkpoint.norm_mean)} values but "
                                  f"its features have {feats.shape[1]} columns; the checkpoint is damaged: retrain it")
        feats = normalise(feats) if normalise is not None else self.normaliser("", feats)
        if self.utterance_level:
            return [(span, feats[k:k + 1]) for k, span in enumerate(spans)]
        total = feats.shape[0]
        if self.window is None or total <= self.window * (1 + self.crop_tolerance):
            starts = [0]  # one window, centre-cropped by the model to its input length as in training
        else:
            starts = list(range(0, total - self.window + 1, self.hop))
            if starts[-1] + self.window < total:
                starts.append(total - self.window)  # the end of the file is always covered
        size = total if self.window is None or len(starts) == 1 else min(self.window, total)
        windows = [feats[s:s + size] for s in starts]
        if self.window is not None and size > self.window:  # the model saw the centre crop: report its span
            starts, size = [(size - self.window) // 2], self.window
        return list(zip(self._spans(starts, size, duration), windows))

    def score_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """``(N, C)`` probabilities of ``windows`` (each ``(t_i, D)``), in batches of ``batch_size``.

        Windows of different lengths in one batch are zero-padded with their
        lengths given; models ignore the padding (tests check every model), so
        a window scores the same alone or batched with other files' windows.
        """
        torch = self._torch
        if getattr(self.model, "unpadded_only", False) and len({w.shape[0] for w in windows}) > 1:
            by_length: dict[int, list[int]] = {}  # exported graphs take no padding: one length per batch
            for k, w in enumerate(windows):
                by_length.setdefault(w.shape[0], []).append(k)
            out = np.zeros((len(windows), len(self.checkpoint.labels)), np.float32)
            for same in by_length.values():
                out[same] = self.score_windows([windows[k] for k in same])
            return out
        probs = []
        for first in range(0, len(windows), self.batch_size):  # bounded batches: memory does not grow with length
            chunk = windows[first:first + self.batch_size]
            lengths = [w.shape[0] for w in chunk]
            batch = np.zeros((len(chunk), max(lengths), chunk[0].shape[1]), np.float32)
            for k, w in enumerate(chunk):
                batch[k, :w.shape[0]] = w
            probs.append(self._probabilities(batch, torch.tensor(lengths, dtype=torch.long)))
        return np.concatenate(probs) if probs else np.zeros((0, len(self.checkpoint.labels)), np.float32)

    def _spans(self, starts: list[int], size: int, duration: float) -> list[tuple[float, float]]:
        """(start s, end s) of the audio covered by windows of ``size`` frames starting at frames ``starts``."""
        lead, span = self.lead_s, self.span_s
        return [(max(0.0, s * self.frame_s - lead), min(duration, (s + size - 1) * self.frame_s - lead + span))
                for s in starts]

    def _probabilities(self, batch: np.ndarray, lengths) -> np.ndarray:
        """Class probabilities ``(B, C)`` of a batch ``(B, T, D)`` with valid lengths ``(B,)``, on the scorer's device."""
        from sertool.runtime.process import inference_autocast

        torch = self._torch
        with torch.no_grad(), inference_autocast(self._device):
            logits = self.model(torch.from_numpy(batch).to(self._device), lengths.to(self._device)).float()
        return torch.softmax(logits, dim=-1).cpu().numpy()

    def score(self, path: Path):
        """Features and scores of one file with the checkpoint's normalisation (not ``speaker``)."""
        if self.needs_speakers:
            raise SertoolError(f"{path}: the checkpoint normalises per speaker; score files in speaker groups "
                               "(predict with a manifest's speaker column or --speaker-regex)")
        if self.vad:
            return _score_regions(self, path)
        if self.window is not None and self.normaliser.mode == "global" and self._streams(path) \
                and getattr(self.extractor, "streams_blocks", False):
            return self._score_stream(path)
        duration, feats, spans = self.features(path)
        return duration, self.score_features(feats, duration, spans)


def _region_scores(scorer: Scorer, path, samples: np.ndarray, sr: int) -> list:
    """``[((start s, end s), probs (C,))]``, one per speech region of ``samples`` (mean of the region's windows).

    A region is scored as a clip of its own: up to (1 + crop_tolerance) x the
    model's input length it is one centre-cropped window, longer ones are
    windowed; regions too short for the features are skipped.
    """
    from sertool.features.vad import speech_regions

    out = []
    for start, end in speech_regions(samples, sr):
        piece = samples[int(round(start * sr)):int(round(end * sr))]
        if piece.shape[0] < max(1, scorer.extractor.min_duration * sr):
            continue
        duration = piece.shape[0] / sr
        feats, spans = scorer.sample_features(piece)
        windows = scorer.score_features(feats, duration, spans)
        out.append(((start, min(end, start + duration)), np.mean([p for _, p in windows], axis=0)))
    return out


def _score_regions(scorer: Scorer, path):
    """:meth:`Scorer.score` with ``vad``: ``(duration s, regions)``; an error when no speech is found."""
    sr = scorer.extractor.sample_rate
    if scorer.utterance_extractor is not None and scorer.utterance_extractor.sample_rate != sr:
        raise SertoolError(f"{path}: --vad needs the checkpoint's two feature sets at one sample rate")
    notes: list[str] = []
    samples = _samples(path, sr, 0.0, notes.append)
    for message in notes:
        scorer.notes.setdefault(str(path), []).append(message)
    regions = _region_scores(scorer, path, samples, sr)
    if not regions:
        raise SertoolError(f"{path}: the VAD found no speech long enough to score; score it without --vad")
    return samples.shape[0] / sr, regions


#: Columns a manifest input adds after ``path``, so scores and metrics need no join.
MANIFEST_COLUMNS = ("id", "speaker", "label")


def _header(labels: list[str], segments: bool, manifest: bool = False) -> list[str]:
    lead = ["path", *(MANIFEST_COLUMNS if manifest else ()), *(("start", "end") if segments else ())]
    return lead + ["predicted", "confidence", *(f"p_{c}" for c in labels), "duration", "error"]


def _rows_for(path: Path, duration: float, windows, labels: list[str], segments: bool,
              extra: list[str] = ()) -> list[list[str]]:
    def row(probs, lead):
        k = int(np.argmax(probs))
        return [str(path), *extra, *lead, labels[k], f"{probs[k]:.4f}", *(f"{p:.4f}" for p in probs),
                f"{duration:.3f}", ""]

    if segments:
        return [row(p, [f"{a:.3f}", f"{b:.3f}"]) for (a, b), p in windows]
    return [row(np.mean([p for _, p in windows], axis=0), [])]


def _error_row(path: Path, error: str, labels: list[str], segments: bool, extra: list[str] = ()) -> list[str]:
    blanks = (2 if segments else 0) + 2 + len(labels) + 1
    return [str(path), *extra, *[""] * blanks, error]


def _resume(output: Path, header: list[str]) -> set[str]:
    """Keep the good rows of an earlier run (dropping error rows, duplicates and a torn last line); return their paths.

    A duplicate is a second row for the same file (file mode) or the same file and window (``--segments``).
    """
    with open(output, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return set()
    if rows[0] != header:
        raise SertoolError(f"{output}: written by another model or mode (other columns); use another -o "
                           "or --no-resume to overwrite it")
    if "start" in header:
        start = header.index("start")
        key = lambda r: (r[0], r[start], r[start + 1])  # noqa: E731
    else:
        key = lambda r: r[0]  # noqa: E731
    seen, good = set(), []
    for r in rows[1:]:
        if len(r) == len(header) and not r[-1] and key(r) not in seen:
            seen.add(key(r))
            good.append(r)
    from sertool.io.atomic import atomic_write

    with atomic_write(output) as fh:
        csv.writer(fh).writerows([header, *good])
    return {r[0] for r in good}


def manifest_rows(inputs) -> dict:
    """str(path) -> :class:`~sertool.io.manifest.Utterance` for the rows of the manifest (.csv) inputs."""
    from sertool.io.manifest import read_manifest

    return {str(u.path): u for item in map(Path, inputs) if item.suffix.lower() == ".csv" and not item.is_dir()
            for u in read_manifest(item)}


def file_speakers(inputs, files: list[Path], speaker_regex: str | None) -> dict[str, str]:
    """str(path) -> speaker, from the ``speaker`` column of manifest inputs, else ``speaker_regex``'s first group.

    Files with neither are left out (their rows become errors when speakers are needed).
    """
    import re

    from sertool.io.manifest import read_manifest

    speakers: dict[str, str] = {}
    for item in map(Path, inputs):
        if item.suffix.lower() == ".csv" and not item.is_dir():
            speakers.update({str(u.path): u.speaker for u in read_manifest(item) if u.speaker})
    if speaker_regex:
        try:
            pattern = re.compile(speaker_regex)
        except re.error as exc:
            raise SertoolError(f"--speaker-regex {speaker_regex!r} is not a valid regex ({exc})") from None
        if pattern.groups < 1:
            raise SertoolError(f"--speaker-regex {speaker_regex!r} needs a group, e.g. '(Actor_\\d+)/'")
        for f in files:
            match = pattern.search(f.as_posix())
            if match and str(f) not in speakers:
                speakers[str(f)] = match.group(1)
    return speakers


def predict_files(checkpoint_path, inputs, output, *, window_s: float | None = None, hop_s: float | None = None,
                  segments: bool = False, resume: bool = True, max_failures: int = 0,
                  speaker_regex: str | None = None, trust_code: bool = False,
                  progress: bool | None = None, crop_tolerance: float = CROP_TOLERANCE,
                  batch_size: int = WINDOW_BATCH, device: str = "cpu", stdin: Clip | None = None,
                  vad: bool = False, jobs: int = 1) -> RunReport:
    """Score ``inputs`` with the checkpoint and write CSV rows to ``output`` (a path or ``"-"`` for stdout).

    A checkpoint trained with ``--norm speaker`` needs every file's speaker:
    from a manifest input's ``speaker`` column or ``speaker_regex`` (first
    group, searched in the path). Each speaker's statistics come from all of
    that speaker's files in the inputs; a speaker with fewer than
    :data:`sertool.features.normalise.MIN_SPEAKER_UTTERANCES` scorable files gets error rows.

    A checkpoint whose features would import a Python function or load a
    TorchScript/ONNX file (embedding providers) is refused unless ``trust_code``.

    ``jobs``: processes; with more than one, ``jobs - 1`` workers decode and
    compute features of the next files while this process runs the model
    and writes (rows stay in input order).

    ``vad``: score only the speech regions Silero VAD finds; with ``segments``
    one row per region (its start and end).

    An input ``"-"`` is ``stdin``: a :class:`Clip` (audio read from standard
    input, see :func:`sertool.io.audio.decode_bytes`), scored like a file and
    written with path ``-``.

    Returns the run report (``ok`` scored, ``skipped`` kept from an earlier
    run, ``failures`` with their errors, also in the CSV's ``error`` column).
    """
    # One OpenBLAS thread for numpy's small feature products (the CLI also sets OPENBLAS_NUM_THREADS):
    # OpenBLAS threads spinning between calls took the cores from torch's threads (predict ran 2.4x slower).
    # With feature workers, torch gets the cores they leave: more threads than cores made both 1.4x slower.
    with torch_threads(max(1, (os.cpu_count() or 1) - (jobs - 1))), blas_threads(1):
        return _predict(checkpoint_path, inputs, output, window_s=window_s, hop_s=hop_s, segments=segments,
                        resume=resume, max_failures=max_failures, speaker_regex=speaker_regex,
                        trust_code=trust_code, progress=progress, crop_tolerance=crop_tolerance,
                        batch_size=batch_size, device=device, stdin=stdin, vad=vad, jobs=jobs)


def _predict(checkpoint_path, inputs, output, *, window_s, hop_s, segments, resume, max_failures, speaker_regex,
             trust_code, progress, crop_tolerance, batch_size, device, stdin, vad, jobs) -> RunReport:
    """:func:`predict_files` once its thread settings are in place."""
    from sertool.inference.export import load_scoring_model

    checkpoint = load_scoring_model(checkpoint_path)
    checkpoint.check_no_code(checkpoint_path, trust_code=trust_code)
    labels = list(checkpoint.labels)
    members = checkpoint.member_checkpoints() if checkpoint.is_fusion else [checkpoint]
    weights = checkpoint.model_config["weights"] if checkpoint.is_fusion else [1.0]
    if checkpoint.is_fusion and segments:
        raise SertoolError(f"{checkpoint_path}: a fused model scores whole files (its members' windows differ); "
                           "drop --segments, or score a member's checkpoint with --segments")
    rows = manifest_rows(inputs)
    header = _header(labels, segments, manifest=bool(rows))
    files = [stdin if str(f) == "-" and stdin is not None else f for f in expand_inputs(inputs)]
    if not files:
        raise SertoolError(f"no audio files found in {', '.join(map(str, inputs))}")
    scorers = [Scorer(m, window_s, hop_s, crop_tolerance, batch_size, device, vad) for m in members]
    needs_speakers = any(s.needs_speakers for s in scorers)
    if vad and needs_speakers:
        raise SertoolError(f"{checkpoint_path}: --vad scores speech regions one file at a time; it does not work "
                           "with a speaker-normalised model yet: drop --vad")
    speakers = file_speakers(inputs, files, speaker_regex) if needs_speakers else {}
    if needs_speakers and not speakers:
        raise SertoolError(f"{checkpoint_path}: this model normalises features per speaker (trained with --norm "
                           "speaker), so predict needs each file's speaker: pass a manifest CSV with a speaker "
                           "column, or --speaker-regex REGEX whose first group is the speaker in the path")
    to_stdout = str(output) == "-"
    lock = None
    if not to_stdout:
        from sertool.io.locks import OutputLock

        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(output, f"{output}: another sertool predict is writing this file; wait for it to finish "
                                  "or use another -o").acquire()
    try:
        return _predict_into(output, to_stdout, resume, header, files, scorers, weights, labels, segments,
                             speakers if needs_speakers else None, max_failures, progress, rows,
                             checkpoint_path=checkpoint_path, jobs=jobs)
    finally:
        if lock is not None:
            lock.release()


def _predict_into(output, to_stdout: bool, resume: bool, header, files, scorers, weights, labels, segments,
                  speakers, max_failures, progress, manifest: dict, *, checkpoint_path=None,
                  jobs: int = 1) -> RunReport:
    """Write the rows of ``files`` into ``output`` (resuming it) or stdout; the caller holds the lock.

    ``manifest``: str(path) -> Utterance of manifest inputs (their id, speaker, label join each row); empty for none.
    """
    def extra(path: Path) -> list[str]:
        if not manifest:
            return []
        utt = manifest.get(str(path))
        return [utt.id, utt.speaker, utt.label] if utt else ["", "", ""]

    from sertool.io.progress import progress_bar

    report = RunReport(max_failures=max_failures)
    prefetch = None
    done: set[str] = set()
    if not to_stdout:
        if resume and output.exists():
            done = _resume(output, header)
        else:
            with open(output, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(header)
    todo = [f for f in files if str(f) not in done]
    report.skip(len(files) - len(todo))
    sink = sys.stdout if to_stdout else open(output, "a", newline="", encoding="utf-8")
    try:
        writer = csv.writer(sink)
        if to_stdout:
            writer.writerow(header)
        if jobs > 1 and len(scorers) == 1 and not scorers[0].vad and speakers is None and len(todo) > 1:
            prefetch = _FeatureWorkers(checkpoint_path, scorers[0], todo, jobs, chunk=4)
        with progress_bar(len(todo), progress, desc="predict") as bar:
            for group, wanted in _work_units(files, todo, speakers, scorers[0].batch_size):
                if group is _BLOCK:  # files scored alone: their windows go through the model together
                    computed = prefetch.take(wanted) if prefetch is not None else {}
                    results = [_score_block(scorer, wanted, computed) for scorer in scorers]
                else:
                    results = [_score_group(scorer, group, wanted) for scorer in scorers]
                for path in wanted:
                    outcome = _fused([r[str(path)] for r in results], weights)
                    if isinstance(outcome, SertoolError):
                        message = str(outcome) if str(outcome).startswith(str(path)) else f"{path}: {outcome}"
                        writer.writerow(_error_row(path, message, labels, segments, extra(path)))
                        report.fail(path.stem, path, "predict", message)
                    else:
                        writer.writerows(_rows_for(path, *outcome, labels, segments, extra(path)))
                        report.done()
                    for message in {m for scorer in scorers for m in scorer.notes.pop(str(path), [])}:
                        report.warn(path.stem, path, "decode", message)
                    sink.flush()  # each file's rows are on disk before the next file's are written
                    bar.update()
    finally:
        if prefetch is not None:
            prefetch.close()
        if not to_stdout:
            sink.close()
            report.write_warnings(output.with_name(output.stem + ".warnings.csv"), keep=lambda row: row["path"] in done)
    return report


def _score_block(scorer: Scorer, block: list, computed: dict) -> dict:
    """str(path) -> (duration, windows) or SertoolError for the files of ``block``, their windows batched together.

    ``computed``: str(path) -> :meth:`Scorer.features` result (or a SertoolError)
    prepared by feature workers; files missing from it are decoded here. Long
    (streamed) files and ``vad`` scoring go through :meth:`Scorer.score`.
    """
    out, planned = {}, []
    for f in block:
        key = str(f)
        try:
            if scorer.vad or (not isinstance(f, Clip) and scorer._streams(f)):
                out[key] = scorer.score(f)
                continue
            result = computed.pop(key, None) or scorer.features(f)
            if isinstance(result, SertoolError):
                raise result
            duration, feats, spans = result
            planned.append((key, duration, scorer.plan_windows(feats, duration, spans)))
        except SertoolError as exc:
            out[key] = exc
    probs = scorer.score_windows([w for _, _, plan in planned for _, w in plan])
    start = 0
    for key, duration, plan in planned:
        out[key] = (duration, list(zip([span for span, _ in plan], probs[start:start + len(plan)])))
        start += len(plan)
    return out


class _FeatureWorkers:
    """Decode + features of upcoming files in ``jobs - 1`` worker processes; :meth:`take` returns them in order."""

    AHEAD = 4  # chunks queued per worker

    def __init__(self, checkpoint_path, scorer: Scorer, files: list, jobs: int, chunk: int):
        from sertool.runtime.process import single_thread_env, start_method
        from sertool.runtime.workers import Workers

        self.files, self.chunk = [f for f in files if not isinstance(f, Clip)], chunk
        self.next, self.ready, self.notes = 0, {}, scorer.notes
        options = (str(checkpoint_path), scorer.window_s, scorer.hop_s, scorer.crop_tolerance)
        self.workers = Workers(jobs - 1, _feature_chunk, initializer=_init_feature_worker, initargs=options,
                               start_method=start_method())
        with single_thread_env():
            self.workers.start()
        self._fill()

    def _fill(self) -> None:
        while self.next < len(self.files) and self.workers.outstanding < self.AHEAD * len(self.workers):
            self.workers.submit([str(f) for f in self.files[self.next:self.next + self.chunk]])
            self.next += self.chunk

    def take(self, block: list) -> dict:
        """str(path) -> features (or SertoolError) for the files of ``block`` the workers computed."""
        wanted = {str(f) for f in block} & {str(f) for f in self.files}
        while not wanted <= self.ready.keys() and self.workers.outstanding:
            for key, result, notes in self.workers.get():
                self.ready[key] = SertoolError(result) if isinstance(result, str) else result
                if notes:
                    self.notes.setdefault(key, []).extend(notes)
            self._fill()
        return {key: self.ready.pop(key) for key in wanted if key in self.ready}

    def close(self) -> None:
        self.workers.__exit__(None, None, None)


_WORKER_SCORER: list = []


def _init_feature_worker(checkpoint_path: str, window_s, hop_s, crop_tolerance) -> None:
    """Worker set-up: a Scorer for the checkpoint's features (one BLAS thread, tuned allocator)."""
    import signal

    from sertool.inference.export import load_scoring_model
    from sertool.runtime.process import tune_worker_process

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_worker_process()
    _WORKER_SCORER.append(Scorer(load_scoring_model(checkpoint_path), window_s, hop_s, crop_tolerance))


def _feature_chunk(paths: list[str]) -> list:
    """In a worker: ``[(path, (duration, feats, spans) or error text or None, warnings)]``; None = streamed file."""
    scorer = _WORKER_SCORER[0]
    out = []
    for key in paths:
        path = Path(key)
        try:
            result = None if scorer._streams(path) else scorer.features(path)
        except SertoolError as exc:
            result = str(exc)
        out.append((key, result, scorer.notes.pop(key, [])))
    return out


_NO_SPEAKER = SertoolError("no speaker for this file (the model normalises per speaker): list it in a manifest "
                           "with a speaker column, or match it with --speaker-regex")


_BLOCK = object()  # marks a unit of files scored one by one (no speaker statistics)
#: Files whose windows are batched together (at most this many files per unit; about a batch of windows).
BLOCK_FILES = 32


def _work_units(files: list, todo: list, speakers: dict[str, str] | None, batch_size: int):
    """``(group, wanted)`` units: speaker groups (see :func:`_groups`), or ``(_BLOCK, files)`` blocks."""
    if speakers is not None:
        yield from _groups(files, todo, speakers)
        return
    size = max(1, min(BLOCK_FILES, batch_size))
    for first in range(0, len(todo), size):
        yield _BLOCK, todo[first:first + size]


def _groups(files: list[Path], todo: list[Path], speakers: dict[str, str] | None):
    """``(group, wanted)`` pairs: each file alone, or (speaker mode) all of a speaker's files with its todo ones.

    Files without a speaker form one group whose scoring fails with a clear error.
    """
    if speakers is None:
        for f in todo:
            yield [f], [f]
        return
    wanted_set = {str(f) for f in todo}
    groups: dict[str | None, list[Path]] = {}
    for f in files:
        groups.setdefault(speakers.get(str(f)), []).append(f)
    for speaker, group in groups.items():
        wanted = [f for f in group if str(f) in wanted_set]
        if wanted:
            yield (group if speaker is not None else None), wanted


def _score_group(scorer: Scorer, group: list[Path] | None, wanted: list[Path]) -> dict:
    """str(path) -> (duration, windows) or the SertoolError of that file, for the ``wanted`` files.

    A speaker-normalising scorer computes the statistics over every scorable
    file of ``group`` (one speaker's files; None: files without a speaker).
    """
    from sertool.features.normalise import MIN_SPEAKER_UTTERANCES, moments

    out: dict = {}
    if not scorer.needs_speakers:
        for f in wanted:
            try:
                out[str(f)] = scorer.score(f)
            except SertoolError as exc:
                out[str(f)] = exc
        return out
    if group is None:
        return {str(f): _NO_SPEAKER for f in wanted}
    computed = {}
    for f in group:
        try:
            computed[str(f)] = scorer.features(f)
        except SertoolError as exc:
            out[str(f)] = exc
    if len(computed) < MIN_SPEAKER_UTTERANCES:
        error = SertoolError(f"its speaker has {len(computed)} scorable file(s); speaker normalisation needs at "
                             f"least {MIN_SPEAKER_UTTERANCES} per speaker (see README, --norm)")
        return {str(f): out.get(str(f), error) for f in wanted}
    mean, std = moments((feats for _, feats, _ in computed.values()), next(iter(computed.values()))[1].shape[1])
    for f in wanted:
        if str(f) in computed:
            duration, feats, spans = computed[str(f)]
            out[str(f)] = (duration, scorer.score_features(feats, duration, spans,
                                                           normalise=lambda x: (x - mean) / std))
    return out


def _fused(outcomes: list, weights: list[float]):
    """One file's (duration, windows) from its members' outcomes (the first error wins)."""
    for outcome in outcomes:
        if isinstance(outcome, SertoolError):
            return outcome
    if len(outcomes) == 1:
        return outcomes[0]
    duration = outcomes[0][0]
    probs = sum(w * np.mean([p for _, p in windows], axis=0) for w, (_, windows) in zip(weights, outcomes))
    return duration, [((0.0, duration), probs)]


# --------------------------------------------------------------------------- in memory
@dataclass(frozen=True)
class Predictions:
    """Scores of :func:`predict_audio`, one entry per input in input order.

    Attributes
    ----------
    names
        Each input's path, or ``"<array i>"`` for samples passed in memory.
    labels
        Predicted class of each input (length N).
    probabilities
        ``(N, C)`` float32 class probabilities (mean over the input's windows),
        columns in the order of ``classes``.
    classes
        The model's class names (C).
    durations
        ``(N,)`` float64 seconds of audio scored.
    windows
        Per input, ``[(start s, end s, probabilities (C,)), ...]``: one entry
        per window the model saw (fused models: one entry for the whole input).
    """

    names: list[str]
    labels: list[str]
    probabilities: np.ndarray
    classes: tuple[str, ...]
    durations: np.ndarray
    windows: list[list[tuple[float, float, np.ndarray]]]

    def __len__(self) -> int:
        return len(self.names)


def _is_pair(item) -> bool:
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray)
            and isinstance(item[1], (int, np.integer)))


def _as_sources(audio) -> list:
    """Paths (folders and manifests expanded) and :class:`Clip` objects from the forms :func:`predict_audio` takes."""
    if _is_pair(audio):
        return [Clip(audio[0], int(audio[1]), "<array 0>")]
    if isinstance(audio, (str, os.PathLike)):
        items = [audio]
    elif isinstance(audio, (list, tuple)):
        items = list(audio)
    else:
        raise ConfigError(f"audio must be a path, a list of paths or a (samples, sample_rate) pair, not "
                          f"{type(audio).__name__}")
    sources = []
    for i, item in enumerate(items):
        if _is_pair(item):
            sources.append(Clip(item[0], int(item[1]), f"<array {i}>"))
        elif isinstance(item, (str, os.PathLike)):
            sources.extend(expand_inputs([item]))
        else:
            raise ConfigError(f"audio item {i} is a {type(item).__name__}; give a path or a (samples, "
                              "sample_rate) pair with samples a numpy array")
    return sources


def predict_audio(checkpoint, audio, *, speakers: list[str] | None = None, speaker_regex: str | None = None,
                  window_s: float | None = None, hop_s: float | None = None,
                  trust_code: bool = False, crop_tolerance: float = CROP_TOLERANCE, batch_size: int = WINDOW_BATCH,
                  device: str = "cpu", vad: bool = False) -> Predictions:
    """Score audio in memory with a checkpoint; nothing is written.

    Parameters
    ----------
    checkpoint
        A checkpoint file, a bundled model name (``"default"``, ``"speaker"``)
        or a loaded :class:`~sertool.models.checkpoint.Checkpoint`.
    audio
        A path (file, folder, or manifest CSV), a list of paths, a
        ``(samples, sample_rate)`` pair (samples ``(N,)`` or ``(N, channels)``
        float in [-1, 1], sample_rate in Hz), or a list mixing paths and pairs.
    speakers
        For speaker-normalised checkpoints: one speaker per input (after
        folders are expanded); each speaker needs at least
        :data:`sertool.features.normalise.MIN_SPEAKER_UTTERANCES` inputs. Manifest inputs
        use their ``speaker`` column, ``speaker_regex`` searches the paths.
    window_s, hop_s
        Window length and hop in seconds (default: the model's input length, and half of it).
    crop_tolerance
        Without ``window_s``, inputs up to (1 + this) x the model's input length
        are one window the model centre-crops, as in training (:data:`CROP_TOLERANCE`).
    batch_size, device
        Windows per forward pass (:data:`WINDOW_BATCH`), and ``"cpu"``, ``"cuda"`` or ``"auto"``.
    trust_code
        Allow a checkpoint whose features import Python code or load a TorchScript/ONNX file.
    vad
        Score only the speech regions Silero VAD finds; ``windows`` are then the regions.

    Returns
    -------
    Predictions
        Labels, ``(N, C)`` probabilities and windows, in input order.

    Raises
    ------
    SertoolError
        An unusable input (its name is in the message), a damaged checkpoint,
        or a speaker-normalised checkpoint without speakers.
    """
    from sertool.models.checkpoint import Checkpoint

    if isinstance(checkpoint, Checkpoint):
        where = "the checkpoint"
    else:
        from sertool.inference.export import load_scoring_model

        where = checkpoint = checkpoint_path(checkpoint)
        checkpoint = load_scoring_model(checkpoint)
    checkpoint.check_no_code(where, trust_code=trust_code)
    sources = _as_sources(audio)
    if not sources:
        raise SertoolError(f"no audio found in {audio}")
    members = checkpoint.member_checkpoints() if checkpoint.is_fusion else [checkpoint]
    weights = checkpoint.model_config["weights"] if checkpoint.is_fusion else [1.0]
    with torch_threads(max(1, os.cpu_count() or 1)), blas_threads(1):
        scorers = [Scorer(m, window_s, hop_s, crop_tolerance, batch_size, device, vad) for m in members]
        groups = _speaker_map(sources, audio, speakers, speaker_regex) if any(s.needs_speakers for s in scorers) \
            else None
        outcomes: dict[str, object] = {}
        for group, wanted in _groups(sources, sources, groups):
            results = [_score_group(scorer, group, wanted) for scorer in scorers]
            for source in wanted:
                outcomes[str(source)] = _fused([r[str(source)] for r in results], weights)
    import warnings

    from sertool.io.audio import TruncatedAudioWarning

    for message in {m for scorer in scorers for notes in scorer.notes.values() for m in notes}:
        warnings.warn(message, TruncatedAudioWarning, stacklevel=3)
    for source in sources:
        outcome = outcomes[str(source)]
        if isinstance(outcome, SertoolError):
            raise type(outcome)(str(outcome) if str(outcome).startswith(str(source)) else f"{source}: {outcome}")
    scored = [outcomes[str(s)] for s in sources]
    probabilities = np.stack([np.mean([p for _, p in windows], axis=0) for _, windows in scored]).astype(np.float32)
    classes = tuple(checkpoint.labels)
    return Predictions(names=[str(s) for s in sources], labels=[classes[k] for k in probabilities.argmax(axis=1)],
                       probabilities=probabilities, classes=classes,
                       durations=np.array([d for d, _ in scored], dtype=np.float64),
                       windows=[[(a, b, p) for (a, b), p in windows] for _, windows in scored])


def _speaker_map(sources: list, audio, speakers, speaker_regex) -> dict[str, str]:
    """str(source) -> speaker for a speaker-normalised checkpoint (a ConfigError when none is given)."""
    if speakers is not None:
        if len(speakers) != len(sources):
            raise ConfigError(f"speakers has {len(speakers)} entries for {len(sources)} inputs; give one per input")
        return {str(s): str(spk) for s, spk in zip(sources, speakers)}
    paths = [s for s in sources if not isinstance(s, Clip)]
    items = [audio] if isinstance(audio, (str, os.PathLike)) else [a for a in audio if not _is_pair(a)] \
        if isinstance(audio, (list, tuple)) and not _is_pair(audio) else []
    found = file_speakers(items, paths, speaker_regex)
    if not found:
        raise ConfigError("this model normalises features per speaker (trained with --norm speaker): pass "
                          "speakers=[one per input], a manifest with a speaker column, or speaker_regex")
    return found
