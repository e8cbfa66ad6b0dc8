"""The scoring engine: feature source + normaliser + window planner + model runner, composed.

:class:`Scorer` is the one path from audio (or stored features) to class
probabilities: ``predict``, ``stream``, ``evaluate`` and the in-memory API
all score through it, so the same clip gets the same windows and the same
probabilities whichever command scores it.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from sertool.errors import CheckpointError, ConfigError, SertoolError
from sertool.features.normalise import Normaliser, from_checkpoint
from sertool.inference.runner import WINDOW_BATCH, build_runner
from sertool.inference.sources import FeatureSource, naming
from sertool.inference.windows import CROP_TOLERANCE, FramePlan, frame_windows, stream_frame_windows

Span = tuple[float, float]
Scored = list[tuple[Span, np.ndarray]]  # [((start s, end s), probabilities (C,))]


class Scorer:
    """A checkpoint ready to score: ``score(path) -> (duration s, [((start s, end s), probabilities (C,))])``.

    Parameters
    ----------
    checkpoint
        A :class:`~sertool.models.checkpoint.Checkpoint` (not fused) or an exported model.
    window_s, hop_s
        Window and hop in seconds (default: the model's input length and half of it). Utterance-level
        checkpoints score one vector per input, or per ``window_s`` slice of the audio when given.
    crop_tolerance
        Clips up to (1 + this) x the model's input length are one window the model centre-crops (>= 0).
    batch_size
        Windows per forward pass (at least 1); peak memory is bounded by it.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    vad
        Score the speech regions Silero VAD finds, one ``(span, probabilities)`` per region.

    Raises
    ------
    ConfigError
        A batch size below 1, a negative crop tolerance, or a missing device.
    """

    def __init__(self, checkpoint, window_s: float | None = None, hop_s: float | None = None,
                 crop_tolerance: float = CROP_TOLERANCE, batch_size: int = WINDOW_BATCH, device: str = "cpu",
                 vad: bool = False):
        if batch_size < 1:
            raise ConfigError(f"batch size {batch_size} must be at least 1")
        if crop_tolerance < 0:
            raise ConfigError(f"crop_tolerance {crop_tolerance} must be >= 0")
        self.checkpoint, self.window_s, self.hop_s = checkpoint, window_s, hop_s
        self.batch_size, self.vad = batch_size, vad
        self.source = FeatureSource(checkpoint, window_s, hop_s)
        self.runner = build_runner(checkpoint, device)
        self.normaliser = from_checkpoint(checkpoint)
        self.plan: FramePlan | None = None
        if not self.source.utterance_level:
            self.plan = FramePlan.for_model(self.source.extractor.frame_timing,
                                            checkpoint.model_config.get("input_frames"), window_s, hop_s,
                                            crop_tolerance)

    # ------------------------------------------------------------------ what it is
    @property
    def utterance_level(self) -> bool:
        """Whether the model scores one vector per input (or audio slice) instead of frame windows."""
        return self.source.utterance_level

    @property
    def needs_speakers(self) -> bool:
        """Whether scoring needs each file's speaker (speaker-normalised checkpoints)."""
        return self.normaliser.mode == "speaker"

    @property
    def needs_set(self) -> bool:
        """Whether files scored together share statistics (``set``-normalised checkpoints)."""
        return self.normaliser.mode == "set"

    @property
    def notes(self) -> dict[str, list[str]]:
        """str(source) -> decode warnings, taken (popped) by the caller."""
        return self.source.notes

    @property
    def checks(self) -> dict:
        """str(source) -> :class:`~sertool.inference.flags.InputChecks` of its audio, taken (popped) by the caller."""
        return self.source.checks

    @property
    def one_window_s(self) -> float:
        """Clips up to this many seconds are one window (0 for utterance-level models and models of any length)."""
        if self.plan is None or self.plan.window is None:
            return 0.0
        return self.plan.window * self.plan.frame_s * (1 + self.plan.crop_tolerance)

    def with_crop_tolerance(self, crop_tolerance: float) -> "Scorer":
        """This scorer (same model, features and normaliser) with another crop tolerance."""
        other = copy.copy(self)
        if self.plan is not None:
            other.plan = dataclasses.replace(self.plan, crop_tolerance=crop_tolerance)
        return other

    def is_long(self, source) -> bool:
        """Whether ``source`` is a long file that is decoded block by block."""
        return self.source.is_long(source, self.one_window_s)

    # ------------------------------------------------------------------ features -> windows -> probabilities
    def features(self, source):
        """``(duration s, raw feats, spans)`` of a file or Clip (see :meth:`FeatureSource.features`)."""
        return self.source.features(source, self.one_window_s)

    def _check_columns(self, feats: np.ndarray) -> None:
        expected = len(self.checkpoint.norm_mean)
        if feats.shape[1] != expected:
            raise CheckpointError(f"the checkpoint's normalisation has {expected} values but its features have "
                                  f"{feats.shape[1]} columns; the checkpoint is damaged: retrain it")

    def windows(self, feats: np.ndarray, duration: float, spans: list[Span] | None = None, key: str = "",
                normaliser: Normaliser | None = None) -> list[tuple[Span, np.ndarray]]:
        """The normalised windows the model scores of one input's raw features.

        Parameters
        ----------
        feats
            Raw features: frame level ``(T, D)``; utterance level ``(W, D)``, one vector per audio slice.
        duration
            The input's length in seconds.
        spans
            Utterance level: the ``(start s, end s)`` of each vector.
        key
            The input's id for the normaliser (its path, or a manifest id).
        normaliser
            Default: the checkpoint's own (global or utterance); speaker statistics come from the caller.

        Returns
        -------
        list
            ``[((start s, end s), window (t, D) float32)]`` (:func:`sertool.inference.windows.frame_windows`).

        Raises
        ------
        CheckpointError
            Features with another number of columns than the checkpoint's normalisation.
        """
        self._check_columns(feats)
        feats = (normaliser or self.normaliser)(key, feats)
        if self.plan is None:
            return [(span, feats[k:k + 1]) for k, span in enumerate(spans or [(0.0, duration)] * len(feats))]
        return frame_windows(feats, duration, self.plan)

    def probabilities(self, windows: list[np.ndarray]) -> np.ndarray:
        """``(N, C)`` float32 probabilities of normalised ``windows`` (each ``(t_i, D)``), in bounded batches.

        CheckpointError naming the model file when any is NaN or infinite (the model overflows on this input).
        """
        return self.checkpoint.check_scores(self.runner.probabilities(windows, self.batch_size))

    def score_features(self, feats: np.ndarray, duration: float, spans: list[Span] | None = None, key: str = "",
                       normaliser: Normaliser | None = None) -> Scored:
        """``[((start s, end s), probabilities (C,))]`` of one input's raw features (see :meth:`windows`)."""
        planned = self.windows(feats, duration, spans, key, normaliser)
        return list(zip([span for span, _ in planned], self.probabilities([w for _, w in planned])))

    def score_many(self, items: Iterable[tuple[str, np.ndarray, float]],
                   normaliser: Normaliser | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """Mean probabilities of many inputs' raw features, their windows sharing forward passes.

        Parameters
        ----------
        items
            ``(key, raw feats, duration s)`` per input (e.g. stored features of manifest ids); utterance-level
            feats are ``(W, D)`` vectors.
        normaliser
            As in :meth:`windows`, called with each item's key.

        Returns
        -------
        Iterator
            ``(key, probabilities (C,))`` in input order: the mean over the input's windows, equal to
            :meth:`score_features` of each input alone. About ``batch_size`` windows are held at a time.
        """
        pending: list[tuple[str, int]] = []
        windows: list[np.ndarray] = []
        for key, feats, duration in items:
            planned = [w for _, w in self.windows(feats, duration, None, key, normaliser)]
            pending.append((key, len(planned)))
            windows.extend(planned)
            if len(windows) >= self.batch_size:
                yield from _means(pending, self.probabilities(windows))
                pending, windows = [], []
        if pending:
            yield from _means(pending, self.probabilities(windows))

    def score_samples(self, samples: np.ndarray) -> tuple[float, np.ndarray]:
        """``(duration s, mean probabilities (C,))`` of decoded samples ``(N,)`` at the extractor's rate, as a clip."""
        duration = samples.shape[0] / self.source.sample_rate
        feats, spans = self.source.sample_features(samples)
        return duration, np.mean([p for _, p in self.score_features(feats, duration, spans)], axis=0)

    # ------------------------------------------------------------------ whole files
    def score(self, source) -> tuple[float, Scored]:
        """``(duration s, [((start s, end s), probabilities (C,))])`` of one file or Clip.

        Raises
        ------
        SertoolError
            A speaker-normalised checkpoint (score speaker groups instead), unusable audio, or no speech (vad).
        """
        if self.needs_speakers:
            raise SertoolError(f"{source}: the checkpoint normalises per speaker; score files in speaker groups "
                               "(predict with a manifest's speaker column or --speaker-regex)")
        if self.vad:
            return self.score_regions(source)
        if self.plan is not None and self.plan.window is not None and self.normaliser.mode == "global" \
                and self.source.streams_blocks and self.is_long(source):
            return self.score_blocks(source)
        duration, feats, spans = self.features(source)
        return duration, self.score_features(feats, duration, spans, str(source))

    def stream_windows(self, blocks: Iterable[tuple[np.ndarray, int]]) -> Iterator[tuple[Span, np.ndarray]]:
        """``((start s, end s), normalised window (t, D))`` of raw feature blocks, each once its frames exist.

        ``blocks`` yields ``(raw features (frames, D), samples seen so far)`` in
        order; the windows equal :meth:`windows` of the joined features
        (:func:`sertool.inference.windows.stream_frame_windows`). Global normalisation only.
        """
        def normalised():
            for feats, samples in blocks:
                self._check_columns(feats)
                yield self.normaliser("", feats), samples

        return stream_frame_windows(normalised(), self.plan, self.source.sample_rate)

    def score_blocks(self, source: Path) -> tuple[float, Scored]:
        """:meth:`score` of a long file in bounded memory: audio, features and windows stream through together.

        Only about one audio block and one window of features are held; the
        windows and probabilities equal those of the whole-file path.
        """
        seen = [0]  # samples decoded so far

        def blocks():
            for feats, total in self.source.feature_blocks(source):
                seen[0] = total
                yield feats, total

        spans, probs, pending = [], [], []
        with naming(source):
            for span, window in self.stream_windows(blocks()):
                spans.append(span)
                pending.append(window)
                if len(pending) == self.batch_size:
                    probs.append(self.probabilities(pending))
                    pending.clear()
        if pending:
            probs.append(self.probabilities(pending))
        return seen[0] / self.source.sample_rate, list(zip(spans, np.concatenate(probs)))

    def score_regions(self, source) -> tuple[float, Scored]:
        """``(duration s, [((start s, end s), mean probabilities (C,))])``, one per speech region (Silero VAD).

        A region is scored as a clip of its own (:meth:`score_samples`).

        Raises
        ------
        SertoolError
            No speech long enough to score.
        """
        samples, regions = self.source.speech(source)
        scored = [((start, end), self.score_samples(piece)[1]) for piece, start, end in regions]
        if not scored:
            raise SertoolError(f"{source}: the VAD found no speech long enough to score; score it without --vad")
        return samples.shape[0] / self.source.sample_rate, scored


def _means(counts: list[tuple[str, int]], probs: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, mean of its rows)`` for consecutive groups of ``probs`` rows, ``counts`` giving each key's rows."""
    first = 0
    for key, count in counts:
        yield key, probs[first:first + count].mean(axis=0)
        first += count
