"""PCM sample formats, raw PCM and streamed WAV headers: the one table of formats for files, stdin and streams.

:data:`SAMPLE_FORMATS` lists every PCM sample format sertool reads; raw PCM
on standard input (``predict -`` and ``stream`` with ``--rate``) takes the
names in :data:`RAW_FORMATS` (:data:`PCM_FORMATS`), a streamed WAV header
any format of the table (:data:`WAV_DTYPES`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import soxr

from sertool.errors import AudioError

#: name -> (numpy dtype of one sample, WAV format tag, bits per sample); ``"i3"``: 24-bit little-endian integers.
SAMPLE_FORMATS = {
    "u8": ("u1", 1, 8), "s16le": ("<i2", 1, 16), "s24le": ("i3", 1, 24), "s32le": ("<i4", 1, 32),
    "f32le": ("<f4", 3, 32), "f64le": ("<f8", 3, 64),
}
#: Raw PCM formats ``predict -`` and ``stream`` read with ``--rate`` (little-endian, interleaved channels).
RAW_FORMATS = ("s16le", "s32le", "f32le")
#: Raw format name -> numpy dtype of one sample.
PCM_FORMATS = {name: SAMPLE_FORMATS[name][0] for name in RAW_FORMATS}
#: WAV (format tag, bits per sample) -> numpy dtype of one sample.
WAV_DTYPES = {(tag, bits): dtype for dtype, tag, bits in SAMPLE_FORMATS.values()}

#: Bytes asked for per read; ``read1`` returns what has arrived, so this bounds memory, not latency.
READ_BYTES = 1 << 16
#: A WAV fmt chunk is 16, 18 or 40 bytes; a larger size means a damaged header.
MAX_FMT_BYTES = 1024
#: Sample rates read as audio, in Hz (files, streams, raw PCM). A header outside is damaged or hostile:
#: resampling "1 Hz" audio to 16 kHz would multiply its samples (and memory) by 16000.
MIN_RATE, MAX_RATE = 1000, 768000


def check_rate(rate: int, name: str, fix: str = "the header is damaged: re-export the file") -> int:
    """``rate`` when it is within :data:`MIN_RATE` ... :data:`MAX_RATE` Hz, else AudioError naming ``name``.

    Parameters
    ----------
    rate
        Sample rate in Hz, as a header (or an option) gives it.
    name
        The file or stream, for the message.
    fix
        What to do about it, for the message.

    Raises
    ------
    AudioError
        "<name>: sample rate 1 Hz is not audio (sertool reads 1000 ... 768000 Hz); <fix>".
    """
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name}: sample rate {rate} Hz is not audio (sertool reads {MIN_RATE} ... {MAX_RATE} Hz); "
                         f"{fix}")
    return int(rate)


def pcm_to_float(samples) -> np.ndarray:
    """float32 samples: integer PCM scaled to [-1, 1) (by 2 ** (bits - 1), centred when unsigned), floats as given."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        return (samples.astype(np.float32) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    return np.asarray(samples, dtype=np.float32)


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved PCM: sample ``rate`` in Hz, ``channels``, numpy ``dtype`` of one sample (``"i3"``: 24-bit)."""

    rate: int
    channels: int
    dtype: str

    @property
    def frame_bytes(self) -> int:
        """Bytes of one frame (one sample of every channel)."""
        return (3 if self.dtype == "i3" else np.dtype(self.dtype).itemsize) * self.channels

    def samples(self, data: bytes) -> np.ndarray:
        """float32 samples in [-1, 1] of whole frames ``data``: ``(N,)`` for one channel, else ``(N, channels)``."""
        if self.dtype == "i3":
            raw = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
            value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            samples = ((value << 8) >> 8).astype(np.float32) / np.float32(1 << 23)  # sign-extend 24 bits
        else:
            samples = pcm_to_float(np.frombuffer(data, self.dtype))
        return samples.reshape(-1, self.channels) if self.channels > 1 else samples

    def to_mono(self, data: bytes) -> np.ndarray:
        """float32 mono samples ``(N,)`` in [-1, 1] of whole frames ``data`` (a multiple of :attr:`frame_bytes`)."""
        samples = self.samples(data)
        if self.channels > 1:
            samples = samples.mean(axis=1, dtype=np.float32)
        return np.asarray(samples, np.float32)


def raw_format(rate: int, fmt: str = "s16le", channels: int = 1, name: str = "-") -> PcmFormat:
    """The :class:`PcmFormat` of raw PCM.

    Parameters
    ----------
    rate
        Sample rate in Hz.
    fmt
        One of :data:`RAW_FORMATS`.
    channels
        Interleaved channels.
    name
        The input's name in error messages.

    Raises
    ------
    AudioError
        An unknown format, a channel count below 1, or a rate outside :data:`MIN_RATE` ... :data:`MAX_RATE`.
    """
    if fmt not in PCM_FORMATS:
        raise AudioError(f"{name}: PCM format {fmt!r} must be one of {', '.join(PCM_FORMATS)}")
    if channels < 1:
        raise AudioError(f"{name}: --channels {channels} must be positive")
    check_rate(rate, name, "give the rate of the PCM with --rate")
    return PcmFormat(int(rate), int(channels), PCM_FORMATS[fmt])


def read_some(fh: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes, as soon as any have arrived (``b""`` at the end of the stream)."""
    read1 = getattr(fh, "read1", None)  # file objects without read1 (BytesIO has it; some wrappers do not)
    return read1(count) if read1 is not None else fh.read(count)


def _read_exact(fh: BinaryIO, count: int) -> bytes:
    """Exactly ``count`` bytes, or fewer only at the end of the stream."""
    parts, left = [], count
    while left:
        part = read_some(fh, left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_wav_header(fh: BinaryIO, name: str = "-") -> tuple[PcmFormat, int | None]:
    """Parse a WAV header from a stream up to its ``data`` chunk.

    A data size of 0 or 0xFFFFFFFF (or close to 2 GiB), as programs writing
    WAV to a pipe put there, means "read to the end of the stream".

    Returns
    -------
    tuple
        ``(format, data bytes or None = to the end of the stream)``.

    Raises
    ------
    AudioError
        Not a RIFF/WAVE stream, no ``fmt`` chunk before ``data``, or a sample format outside
        :data:`SAMPLE_FORMATS`.
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
        part = read_some(fh, min(count, READ_BYTES))
        if not part:
            break
        count -= len(part)


def _wav_format(body: bytes, name: str) -> PcmFormat:
    """The :class:`PcmFormat` of a WAV ``fmt`` chunk's body (AudioError when unsupported or truncated)."""
    if len(body) < 16:
        raise AudioError(f"{name}: the WAV fmt chunk is truncated; re-encode the stream with ffmpeg -f wav -")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID
        tag = struct.unpack("<H", body[24:26])[0]
    dtype = WAV_DTYPES.get((tag, bits))
    if dtype is None or channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise AudioError(f"{name}: WAV sample format {tag}/{bits}-bit with {channels} channel(s) at {rate} Hz "
                         f"({block_align} bytes per frame) is not supported; convert it with ffmpeg -f wav "
                         "-acodec pcm_s16le -")
    check_rate(rate, name, "the WAV header is damaged: re-encode the stream with ffmpeg -f wav -")
    return PcmFormat(rate, channels, dtype)


def sample_blocks(fh: BinaryIO, pcm: PcmFormat, sr: int, length: int | None = None) -> Iterator[np.ndarray]:
    """Mono float32 blocks ``(n,)`` at ``sr`` Hz of the PCM in ``fh``, as they arrive.

    Parameters
    ----------
    fh
        Binary stream positioned at the first sample.
    pcm
        Its sample format.
    sr
        Rate in Hz of the blocks; soxr's streaming resampler converts when it differs from ``pcm.rate``.
    length
        Bytes of PCM to read, or None for everything up to the end of the stream.

    Returns
    -------
    Iterator[numpy.ndarray]
        Blocks of float32 samples; a torn last frame (the writer stopped mid-sample) is dropped.
    """
    resampler = None
    if pcm.rate != sr:
        resampler = soxr.ResampleStream(pcm.rate, sr, 1, dtype="float32", quality="HQ")
    left, carry = length, b""
    while True:
        data = read_some(fh, READ_BYTES if left is None else min(READ_BYTES, left))
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
