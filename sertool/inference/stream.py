"""``sertool stream``: score a live audio stream, one CSV row per window as soon as the window's audio is in.

The stream is read from a binary file object (standard input for the CLI):
a WAV stream (its header is parsed as it arrives, so a header without a
length, as ``arecord`` and ``ffmpeg -f wav -`` write to a pipe, is read to
the end) or raw PCM described by ``rate`` / ``fmt`` / ``channels``. Bytes are
taken as they arrive (``read1``), never waiting for a full block.

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

Memory is bounded by one window of audio or features plus one read.
"""

from __future__ import annotations

import csv
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, TextIO

import numpy as np

from sertool.io.audio import PCM_FORMATS
from sertool.errors import AudioError, ConfigError, SertoolError
from sertool.inference.predict import CROP_TOLERANCE

#: Window in seconds for models without an input length of their own (utterance-level features such as
#: functionals and embeddings, networks that take any length); LIGHT-SERNET's input is 3 s too.
DEFAULT_WINDOW_S = 3.0

#: Bytes asked for per read; ``read1`` returns what has arrived, so this bounds memory, not latency.
READ_BYTES = 1 << 16

#: A WAV fmt chunk is 16, 18 or 40 bytes; a larger size means a damaged header.
MAX_FMT_BYTES = 1024

#: WAV (format tag, bits per sample) -> numpy dtype of one sample ("i3": 24-bit little-endian integers).
WAV_DTYPES = {(1, 8): "u1", (1, 16): "<i2", (1, 24): "i3", (1, 32): "<i4", (3, 32): "<f4", (3, 64): "<f8"}


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved PCM: sample ``rate`` in Hz, ``channels``, numpy ``dtype`` of one sample (``"i3"``: 24-bit)."""

    rate: int
    channels: int
    dtype: str

    @property
    def frame_bytes(self) -> int:
        return (3 if self.dtype == "i3" else np.dtype(self.dtype).itemsize) * self.channels

    def to_mono(self, data: bytes) -> np.ndarray:
        """float32 mono samples in [-1, 1] of whole frames ``data`` (len a multiple of :attr:`frame_bytes`)."""
        from sertool.io.audio import pcm_to_float

        if self.dtype == "i3":
            raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
            value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            samples = ((value << 8) >> 8).astype(np.float32) / np.float32(1 << 23)  # sign-extend 24 bits
        else:
            samples = pcm_to_float(np.frombuffer(data, self.dtype))
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        return np.asarray(samples, np.float32)


def _read(fh: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes, as soon as any have arrived (``b""`` at the end of the stream)."""
    read1 = getattr(fh, "read1", None)
    return read1(count) if read1 is not None else fh.read(count)


def _read_exact(fh: BinaryIO, count: int) -> bytes:
    """Exactly ``count`` bytes, or fewer only at the end of the stream."""
    parts, left = [], count
    while left:
        part = _read(fh, left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_wav_header(fh: BinaryIO, name: str = "-") -> tuple[PcmFormat, int | None]:
    """Parse a WAV header from a stream up to its ``data`` chunk: ``(format, data bytes or None = to the end)``.

    A data size of 0 or 0xFFFFFFFF (or close to 2 GiB), as programs writing
    WAV to a pipe put there, means "read to the end of the stream".

    Raises
    ------
    AudioError
        Not a RIFF/WAVE stream, no ``fmt`` chunk before ``data``, or a sample format other than
        8/16/24/32-bit integer or 32/64-bit float PCM.
    """
    head = _read_exact(fh, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        hint = "no audio bytes arrived" if not head else "not a WAV stream (no RIFF/WAVE header)"
        raise AudioError(f"{name}: {hint}; pipe WAV in (e.g. `arecord -f S16_LE -r 16000 -c 1 | sertool stream`) "
                         "or raw PCM with --rate (and --format, --channels)")
    pcm = None
    while True:
        chunk = _read_exact(fh, 8)
        if len(chunk) < 8:
            raise AudioError(f"{name}: the WAV stream ended before its data chunk; check the program writing it")
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"data":
            if pcm is None:
                raise AudioError(f"{name}: the WAV stream has no fmt chunk before its data; re-encode it with "
                                 "ffmpeg -f wav -")
            return pcm, None if size == 0 or size >= 0x7FFFF000 else size
        if kind == b"fmt " and size > MAX_FMT_BYTES:
            raise AudioError(f"{name}: the WAV fmt chunk claims {size} bytes; the header is damaged: re-encode the "
                             "stream with ffmpeg -f wav -")
        if kind == b"fmt ":
            pcm = _wav_format(_read_exact(fh, size + size % 2), name)
        else:
            _skip(fh, size + size % 2)


def _skip(fh: BinaryIO, count: int) -> None:
    """Read past ``count`` bytes (an unused chunk) in bounded reads."""
    while count > 0:
        part = _read(fh, min(count, READ_BYTES))
        if not part:
            break
        count -= len(part)


def _wav_format(body: bytes, name: str) -> PcmFormat:
    if len(body) < 16:
        raise AudioError(f"{name}: the WAV fmt chunk is truncated; re-encode the stream with ffmpeg -f wav -")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID
        tag = struct.unpack("<H", body[24:26])[0]
    dtype = WAV_DTYPES.get((tag, bits))
    if dtype is None or channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise AudioError(f"{name}: WAV sample format {tag}/{bits}-bit with {channels} channel(s) at {rate} Hz "
                         f"({block_align} bytes per frame) is not supported; convert it with ffmpeg -f wav -acodec pcm_s16le -")
    return PcmFormat(rate, channels, dtype)


def raw_format(rate: int, fmt: str = "s16le", channels: int = 1, name: str = "-") -> PcmFormat:
    """The :class:`PcmFormat` of raw PCM (``fmt`` one of :data:`sertool.io.audio.PCM_FORMATS`)."""
    if fmt not in PCM_FORMATS:
        raise AudioError(f"{name}: PCM format {fmt!r} must be one of {', '.join(PCM_FORMATS)}")
    if rate < 1 or channels < 1:
        raise AudioError(f"{name}: --rate {rate} and --channels {channels} must be positive")
    return PcmFormat(int(rate), int(channels), PCM_FORMATS[fmt])


def sample_blocks(fh: BinaryIO, pcm: PcmFormat, sr: int, length: int | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sr`` Hz of the PCM in ``fh`` (``length`` bytes, or to the end), as they arrive.

    Resampled with soxr's streaming resampler when the rates differ; a torn
    last frame (the writer stopped mid-sample) is dropped.
    """
    resampler = None
    if pcm.rate != sr:
        import soxr

        resampler = soxr.ResampleStream(pcm.rate, sr, 1, dtype="float32", quality="HQ")
    left, carry = length, b""
    while True:
        data = _read(fh, READ_BYTES if left is None else min(READ_BYTES, left))
        last = not data or left == len(data)
        if left is not None:
            left -= len(data)
        data = carry + data
        whole = len(data) - len(data) % pcm.frame_bytes
        carry = data[whole:]
        block = pcm.to_mono(data[:whole])
        if resampler is not None:
            block = resampler.resample_chunk(block, last=last)
        if block.size:
            yield np.ascontiguousarray(block, np.float32)
        if last:
            return


class NewFile:
    """A text output created at its first write, so a stream that fails before its header leaves no file.

    The file must not exist (mode ``"x"``): finished rows are never overwritten.
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
    """What :func:`stream_scores` did: ``windows`` rows written from ``seconds`` of audio; ``incremental`` path."""

    windows: int
    seconds: float
    incremental: bool


def incremental(scorer) -> bool:
    """Whether ``scorer`` can compute a stream's features as the audio arrives (see the module docstring)."""
    return (not scorer.utterance_level and scorer.utterance_extractor is None
            and scorer.normaliser.mode == "global" and getattr(scorer.extractor, "streams_live", False))


def stream_scores(checkpoint_path, fh: BinaryIO, out: TextIO, *, window_s: float | None = None,
                  hop_s: float | None = None, pcm: PcmFormat | None = None, device: str = "cpu",
                  trust_code: bool = False, name: str = "-") -> StreamResult:
    """Score the audio stream ``fh`` with a checkpoint, writing one flushed CSV row to ``out`` per window.

    Parameters
    ----------
    checkpoint_path
        Checkpoint or exported model (not fused, not speaker-normalised: a stream is one recording).
    fh
        Binary stream: WAV, or raw PCM when ``pcm`` is given (:func:`raw_format`).
    window_s, hop_s
        Window and hop in seconds (default: the model's input length and half of it; utterance-level
        models and models without an input length :data:`DEFAULT_WINDOW_S`).

    Returns
    -------
    StreamResult
        Rows have the columns of ``predict --segments`` (path ``-``); ``duration`` is the audio received
        when the row was written, in seconds.
    """
    from sertool.inference.export import load_scoring_model
    from sertool.inference.predict import Scorer, _header

    checkpoint = load_scoring_model(checkpoint_path)
    checkpoint.check_no_code(checkpoint_path, trust_code=trust_code)
    if checkpoint.is_fusion:
        raise SertoolError(f"{checkpoint_path}: a fused model scores whole files; stream with one member's "
                           "checkpoint (RUN/fold-<i>/checkpoint.pt of a member run)")
    scorer = Scorer(checkpoint, window_s, hop_s, crop_tolerance=0.0, batch_size=1, device=device)
    if window_s is None and (scorer.utterance_level or scorer.window is None):  # no input length of its own
        scorer = Scorer(checkpoint, DEFAULT_WINDOW_S, hop_s, crop_tolerance=0.0, batch_size=1, device=device)
    if scorer.needs_speakers:
        raise SertoolError(f"{checkpoint_path}: this model normalises per speaker, which needs several recordings "
                           "of each speaker; stream with a globally normalised model (the bundled 'default')")
    length = None
    if pcm is None:
        pcm, length = read_wav_header(fh, name)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_header(list(checkpoint.labels), True))
    out.flush()
    blocks = _Counted(sample_blocks(fh, pcm, scorer.extractor.sample_rate, length))
    try:
        return _LiveRows(scorer, writer, out).run(blocks, incremental(scorer))
    except SertoolError as exc:  # name the stream in feature errors (e.g. a stream shorter than one frame)
        message = str(exc)
        raise type(exc)(message if message.startswith(f"{name}:") else f"{name}: {message}") from None


class _Counted:
    """An iterator of sample blocks that counts the samples it has passed on."""

    def __init__(self, blocks: Iterator[np.ndarray]):
        self.blocks, self.samples = blocks, 0

    def __iter__(self):
        for block in self.blocks:
            self.samples += block.shape[0]
            yield block


class _LiveRows:
    """Scores windows of a stream and writes each row the moment it is scored."""

    def __init__(self, scorer, writer, out: TextIO):
        self.scorer, self.writer, self.out = scorer, writer, out
        self.labels = list(scorer.checkpoint.labels)
        self.rows = 0

    def run(self, blocks: _Counted, use_frames: bool) -> StreamResult:
        sr = self.scorer.extractor.sample_rate
        if use_frames:
            self._frames(blocks)
        else:
            self._clips(blocks)
        return StreamResult(self.rows, blocks.samples / sr, use_frames)

    def _write(self, span, probs, received_s: float) -> None:
        from sertool.inference.predict import _rows_for

        self.writer.writerows(_rows_for(Path("-"), received_s, [(span, probs)], self.labels, True))
        self.out.flush()
        self.rows += 1

    def _frames(self, blocks: _Counted) -> None:
        """Incremental path: feature frames as samples arrive, each window scored when its last frame exists."""
        scorer = self.scorer
        sr = scorer.extractor.sample_rate
        for span, window in scorer.stream_windows(scorer.extractor.feature_blocks(lambda: iter(blocks))):
            self._write(span, scorer.score_windows([window])[0], blocks.samples / sr)

    def _clips(self, blocks: _Counted) -> None:
        """Window-by-window path: each window of audio scored as a clip (mean of its model windows)."""
        scorer = self.scorer
        sr = scorer.extractor.sample_rate
        scorer.crop_tolerance = CROP_TOLERANCE  # a window-length clip is one centre-cropped window, as in predict
        if scorer.utterance_level:
            size, hop = round(scorer.window_s * sr), round((scorer.hop_s or scorer.window_s / 2) * sr)
        else:
            size, hop = round(scorer.window * scorer.frame_s * sr), round(scorer.hop * scorer.frame_s * sr)
        if size < 1 or hop < 1:
            raise SertoolError(f"window {size} and hop {hop} samples must be at least 1; pass a longer --window/--hop")
        buffer, offset, next_start = np.zeros(0, np.float32), 0, 0  # buffer holds samples offset, offset + 1, ...
        for block in blocks:
            buffer = np.concatenate([buffer, block])
            while next_start + size <= offset + buffer.shape[0]:
                self._clip(buffer[next_start - offset:next_start - offset + size], next_start, blocks.samples)
                next_start += hop
            keep = max(0, min(next_start, offset + buffer.shape[0] - size) - offset)  # and the last window's
            buffer, offset = buffer[keep:], offset + keep
        total = blocks.samples
        if total == 0:
            raise AudioError("no audio samples arrived on stdin; check the program writing the stream")
        if next_start == 0:  # shorter than one window: the whole stream is one clip
            self._clip(buffer, 0, total)
        elif next_start - hop + size < total:  # the end is always covered
            first = total - size
            self._clip(buffer[first - offset:], first, total)

    def _clip(self, samples: np.ndarray, first: int, received: int) -> None:
        scorer = self.scorer
        sr = scorer.extractor.sample_rate
        if samples.shape[0] < scorer.extractor.min_duration * sr:  # only a whole stream shorter than one window
            raise AudioError(f"{samples.shape[0] / sr:.3f} s of audio is shorter than the "
                             f"{scorer.extractor.min_duration:.3f} s the features need")
        duration = samples.shape[0] / sr
        feats, spans = scorer.sample_features(samples)
        if scorer.utterance_level:
            spans = [(0.0, duration)] * feats.shape[0]
        probs = np.mean([p for _, p in scorer.score_features(feats, duration, spans)], axis=0)
        self._write((first / sr, first / sr + duration), probs, received / sr)
