"""``sertool stream``: score a live audio stream, one CSV row per window as soon as the window's audio is in.

The stream is read from a binary file object (standard input for the CLI):
a WAV stream (its header is parsed as it arrives, so a header without a
length, as ``arecord`` and ``ffmpeg -f wav -`` write to a pipe, is read to
the end) or raw PCM described by ``rate`` / ``fmt`` / ``channels``
(:mod:`sertool.io.pcm`). Bytes are taken as they arrive (``read1``), never
waiting for a full block.

Two scoring paths, chosen from the checkpoint:

- *incremental* (frame-level features that need only past audio: spectral
  features without deltas and without a whole-file ``top_db`` floor, e.g.
  the bundled model's ``lightsernet_mfcc``, with global normalisation):
  feature frames are computed as samples arrive and each window is scored
  the moment its last frame exists. Windows, spans and probabilities equal
  ``sertool predict --segments --crop-tolerance 0`` on the same recording,
  and plain ``--segments`` for recordings over 1.5 windows (shorter ones
  ``predict`` scores as one centre-cropped window; a live stream cannot wait).
- *window by window* (everything else: openSMILE, SSL encoders, features
  with deltas or ``top_db``, utterance normalisation): each window's audio
  is scored as a clip of its own, as ``predict`` scores a window-length file.

Both use the one window planner (:mod:`sertool.inference.windows`) and the
row layout of ``predict --segments`` (:mod:`sertool.inference.rows`). Each
row's ``flags`` are the input checks of the audio its window covers
(:mod:`sertool.inference.flags`; the stream's rate is its original rate,
and its channels are mixed before they are seen, so ``cancelling`` is not checked).
Memory is bounded by one window of audio or features plus one read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, TextIO

import numpy as np

from sertool.errors import AudioError, ConfigError, SertoolError
from sertool.inference.engine import Scorer
from sertool.inference.export import load_scoring_model
from sertool.inference.flags import InputChecks
from sertool.inference.rows import header, score_row
from sertool.inference.sources import naming
from sertool.inference.windows import CROP_TOLERANCE, SlidingWindows
from sertool.io.pcm import PcmFormat, raw_format, read_wav_header, sample_blocks  # noqa: F401 (re-exported)

#: Window in seconds for models without an input length of their own (utterance-level features such as
#: functionals and embeddings, networks that take any length); LIGHT-SERNET's input is 3 s too.
DEFAULT_WINDOW_S = 3.0


class NewFile:
    """A text output created at its first write, so a stream that fails before its header leaves no file.

    The file must not exist (mode ``"x"``): finished rows are never overwritten.

    Raises
    ------
    ConfigError
        The file exists.
    """

    def __init__(self, path):
        self.path, self._fh = Path(path), None
        if self.path.exists():
            raise ConfigError(f"{self.path} exists; choose another output or remove it (stream never overwrites "
                              "rows)")

    def write(self, text: str) -> int:
        if self._fh is None:
            self._fh = open(self.path, "x", newline="")
        return self._fh.write(text)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


@dataclass
class StreamResult:
    """What :func:`stream_scores` did: ``windows`` rows written from ``seconds`` of audio; ``incremental`` path.

    ``flagged``: rows with input-check flags.
    """

    windows: int
    seconds: float
    incremental: bool
    flagged: int = 0


def incremental(scorer: Scorer) -> bool:
    """Whether ``scorer`` can compute a stream's features as the audio arrives (see the module docstring)."""
    return scorer.normaliser.mode == "global" and scorer.source.streams_live


def _stream_scorer(checkpoint_path, window_s, hop_s, device: str, trust_code: bool) -> Scorer:
    """The scorer of a stream (one recording: neither fused nor speaker-normalised)."""
    checkpoint = load_scoring_model(checkpoint_path, device=device)
    checkpoint.check_no_code(checkpoint_path, trust_code=trust_code)
    if checkpoint.is_fusion:
        raise SertoolError(f"{checkpoint_path}: a fused model scores whole files; stream with one member's "
                           "checkpoint (RUN/fold-<i>/checkpoint.pt of a member run)")
    scorer = Scorer(checkpoint, window_s, hop_s, crop_tolerance=0.0, batch_size=1, device=device)
    if window_s is None and (scorer.plan is None or scorer.plan.window is None):  # no input length of its own
        scorer = Scorer(checkpoint, DEFAULT_WINDOW_S, hop_s, crop_tolerance=0.0, batch_size=1, device=device)
    if scorer.needs_speakers:
        raise SertoolError(f"{checkpoint_path}: this model normalises per speaker, which needs several recordings "
                           "of each speaker; stream with a globally normalised model (the bundled 'default')")
    return scorer


def stream_scores(checkpoint, fh: BinaryIO, out: TextIO, *, window: float | None = None,
                  hop: float | None = None, pcm: PcmFormat | None = None, device: str = "cpu",
                  trust_code: bool = False, name: str = "-") -> StreamResult:
    """Score the audio stream ``fh`` with a checkpoint, writing one flushed CSV row to ``out`` per window.

    Parameters
    ----------
    checkpoint
        Checkpoint or exported model file (not fused, not speaker-normalised: a stream is one recording).
    fh
        Binary stream: WAV, or raw PCM when ``pcm`` is given (:func:`raw_format`).
    out
        Text output for the rows.
    window, hop
        Window and hop in seconds (default: the model's input length and half of it; utterance-level
        models and models without an input length :data:`DEFAULT_WINDOW_S`).
    pcm
        The raw PCM format, or None for a WAV stream.
    device, trust_code, name
        Device for the model, permission to run code inside the model file, the stream's name in errors.

    Returns
    -------
    StreamResult
        Rows have the columns of ``predict --segments`` (path ``-``); ``duration`` is the audio received
        when the row was written, in seconds.

    Raises
    ------
    SertoolError
        A fused or speaker-normalised model, a damaged or unsupported stream, or audio too short to score.
    """
    scorer = _stream_scorer(checkpoint, window, hop, device, trust_code)
    length = None
    if pcm is None:
        pcm, length = read_wav_header(fh, name)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header(scorer.checkpoint.outputs, True))
    out.flush()
    checks = InputChecks(scorer.source.sample_rate, pcm.rate, None, scorer.source.train_range)
    blocks = _Counted(sample_blocks(fh, pcm, scorer.source.sample_rate, length), checks)
    with naming(name):  # name the stream in feature errors (e.g. a stream shorter than one frame)
        return _LiveRows(scorer, writer, out).run(blocks, incremental(scorer))


class _Counted:
    """An iterator of sample blocks that counts the samples it has passed on, and measures them (``checks``)."""

    def __init__(self, blocks: Iterator[np.ndarray], checks: InputChecks):
        self.blocks, self.samples, self.checks = blocks, 0, checks

    def __iter__(self):
        for block in self.blocks:
            self.samples += block.shape[0]
            self.checks.push(block)
            yield block


class _LiveRows:
    """Scores windows of a stream and writes each row the moment it is scored."""

    def __init__(self, scorer: Scorer, writer, out: TextIO):
        self.scorer, self.writer, self.out = scorer, writer, out
        self.labels = scorer.checkpoint.outputs
        self.sr = scorer.source.sample_rate
        self.rows = self.flagged = 0
        self.checks: InputChecks | None = None

    def run(self, blocks: _Counted, use_frames: bool) -> StreamResult:
        self.checks = blocks.checks
        if use_frames:
            self._frames(blocks)
        else:
            self._clips(blocks)
        return StreamResult(self.rows, blocks.samples / self.sr, use_frames, self.flagged)

    def _write(self, span, probs, received_s: float) -> None:
        flags = self.checks.flags(span)
        self.checks.forget_before(span[0])  # later rows start later: the frames before this one are done
        self.writer.writerow(score_row("-", probs, received_s, self.labels, span, flags=flags))
        self.out.flush()
        self.rows += 1
        self.flagged += bool(flags)

    def _frames(self, blocks: _Counted) -> None:
        """Incremental path: feature frames as samples arrive, each window scored when its last frame exists."""
        scorer = self.scorer
        for span, window in scorer.stream_windows(scorer.source.live_blocks(blocks)):
            self._write(span, scorer.probabilities([window])[0], blocks.samples / self.sr)

    def _clip_size(self) -> tuple[int, int]:
        """Window and hop of the window-by-window path, in samples."""
        scorer, sr = self.scorer, self.sr
        if scorer.plan is None:
            size, hop = round(scorer.window_s * sr), round((scorer.hop_s or scorer.window_s / 2) * sr)
        else:
            shift = scorer.plan.frame_s * sr
            size, hop = round(scorer.plan.window * shift), round(scorer.plan.hop * shift)
        if size < 1 or hop < 1:
            raise SertoolError(f"window {size} and hop {hop} samples must be at least 1; pass a longer --window/--hop")
        return size, hop

    def _clips(self, blocks: _Counted) -> None:
        """Window-by-window path: each window of audio scored as a clip (mean of its model windows)."""
        # a window-length clip is one centre-cropped window, as predict scores a window-length file
        self.scorer = self.scorer.with_crop_tolerance(CROP_TOLERANCE)
        size, hop = self._clip_size()
        sliding = SlidingWindows(size, hop, whole_up_to=size - 1)  # shorter than one window: the whole stream
        for block in blocks:
            for first, samples in sliding.push(block):
                self._clip(samples, first, blocks.samples)
        if blocks.samples == 0:
            raise AudioError("no audio samples arrived on stdin; check the program writing the stream")
        last = sliding.finish()
        if last is not None:
            self._clip(last[1], last[0], blocks.samples)

    def _clip(self, samples: np.ndarray, first: int, received: int) -> None:
        extractor, sr = self.scorer.source.extractor, self.sr
        if samples.shape[0] < extractor.min_duration * sr:  # only a whole stream shorter than one window
            raise AudioError(f"{samples.shape[0] / sr:.3f} s of audio is shorter than the "
                             f"{extractor.min_duration:.3f} s the features need")
        duration, probs = self.scorer.score_samples(samples)
        self._write((first / sr, first / sr + duration), probs, received / sr)
