"""Audio loading: any file libsndfile reads -> float32 mono at a chosen rate.

``load_audio`` is the only way sertool reads audio, so every command shares
one set of checks and one set of error messages.

FLAC files are decoded with dr_flac (the ``miniaudio`` package) when it is
installed: its samples are bit-identical to libsndfile's and it decodes in
about half the time (libsndfile converts FLAC's integers to float one sample
at a time); see bench/README.md. Anything dr_flac refuses goes to libsndfile,
which decodes it or says why it cannot.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from sertool.errors import AudioError
from sertool.io.pcm import MAX_RATE, MIN_RATE, PCM_FORMATS, check_rate, pcm_to_float, raw_format  # noqa: F401
from sertool.io.scan import audio_suffixes, find_audio  # noqa: F401 (re-exported: the folder scan)

#: A header's length is trusted for one allocation only up to this many samples per byte of the file (FLAC of
#: speech: about 1; a lossy file or a FLAC of silence can hold more, and is then decoded block by block).
MAX_SAMPLES_PER_BYTE = 64
#: Frames per read when a file is decoded block by block: memory then follows the samples actually decoded,
#: whatever length the header claims.
BLOCK_FRAMES = 1 << 20


@dataclass(frozen=True)
class AudioInfo:
    """Header facts about one file: duration in seconds, native rate in Hz, channels."""

    duration: float
    sample_rate: int
    channels: int


def _decode_error(path: Path, exc: BaseException) -> AudioError:
    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile prefixes its messages with the path; keep only the reason.
    reason = reason.replace(f"Error opening {str(path)!r}: ", "")
    return AudioError(
        f"{path}: cannot decode audio ({reason}); "
        "check that it is a real WAV/FLAC/OGG/MP3 file or remove it"
    )


def _check_exists(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if path.is_symlink():
            raise AudioError(f"{path}: broken symbolic link (to {os.readlink(path)}); fix or remove the link") from None
        raise AudioError(f"{path}: file not found; check the path or rerun `sertool prepare`") from None
    except OSError as exc:
        if path.is_symlink():
            raise AudioError(f"{path}: symbolic link that resolves to no file ({exc.strerror}); fix or remove "
                             "the link") from None
        raise AudioError(f"{path}: cannot read file ({exc.strerror}); check its permissions") from None
    if size == 0:
        raise AudioError(f"{path}: empty file (0 bytes); remove it or replace it with a recording")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of ``path`` without decoding the samples.

    Raises
    ------
    AudioError
        The file is missing, empty, not audio, or holds no samples.
    """
    path = Path(path)
    _check_exists(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types for bad files
        raise _decode_error(path, exc) from None
    if info.frames <= 0:
        raise AudioError(f"{path}: no audio samples in the file; remove it or re-export it")
    check_rate(info.samplerate, str(path))
    return AudioInfo(info.frames / info.samplerate, int(info.samplerate), int(info.channels))


def _read_into_padded(frames: int, pad: int, read) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, padded)``: mono audio decoded into the middle of a zeroed float32 array, ``pad`` zeros each side.

    ``read(out)`` decodes up to ``frames`` samples into ``out`` and returns
    how many it wrote: fewer than announced in a truncated file, and the
    array is trimmed to match. ``samples`` is a view of the middle.
    """
    padded = np.zeros(frames + 2 * pad, np.float32)
    got = read(padded[pad:pad + frames])
    padded = padded[:got + 2 * pad]
    return padded[pad:pad + got], padded


def _drflac():
    """miniaudio's compiled dr_flac as ``(ffi, lib)``, or None when not installed or too old."""
    try:
        from miniaudio import ffi, lib  # optional at run time: an old miniaudio lacks dr_flac's entry points
    except ImportError:
        return None
    return (ffi, lib) if hasattr(lib, "ma_dr_flac_open_file") else None


def _trusted(path: Path, frames: int, channels: int) -> bool:
    """Whether a header's ``frames`` may be allocated at once: plausible for the bytes the file holds.

    A damaged or hostile header (a FLAC claiming 2^36 samples in a few KB) is decoded block by block
    instead, and reported as truncated when it decodes short.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return 0 < frames * max(1, channels) <= size * MAX_SAMPLES_PER_BYTE


def _read_blocks(read, channels: int, *, mono: bool = False) -> np.ndarray:
    """float32 samples from ``read(count) -> (frames, channels)``, called until it returns a short block.

    Memory follows the samples decoded, never a header's claim. ``(frames, channels)``, or with ``mono``
    ``(frames,)``: each block mixed down as it arrives.
    """
    blocks = []
    while True:
        data = read(BLOCK_FRAMES)
        if data.shape[0] and mono:
            blocks.append(data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32))
        elif data.shape[0]:
            blocks.append(data.copy())  # not a view: a short last block must not keep a full block's memory
        if data.shape[0] < BLOCK_FRAMES:
            break
    if blocks:
        return np.concatenate(blocks)
    return np.zeros(0 if mono else (0, channels), np.float32)


def _decode_flac(path: Path, pad: int) -> tuple[np.ndarray, np.ndarray | None, int, int] | None:
    """``(mono samples, padded array or None, native rate, header frames)`` via dr_flac; None: use libsndfile.

    A mono file whose header's length is plausible (:func:`_trusted`) is decoded straight into the middle of
    the padded array; a file whose header claims more than its bytes can hold, block by block.
    """
    drflac = _drflac()
    if drflac is None:
        return None
    ffi, lib = drflac
    handle = lib.ma_dr_flac_open_file(os.fsencode(path), ffi.NULL)
    if handle == ffi.NULL:  # not FLAC, or damaged: libsndfile decodes it or says why not
        return None
    try:
        frames, channels, rate = int(handle.totalPCMFrameCount), int(handle.channels), int(handle.sampleRate)
        if frames == 0:  # length not in the header (allowed in FLAC): let libsndfile stream it
            return None
        check_rate(rate, str(path))

        def read(count: int) -> np.ndarray:
            data = np.empty((count, channels), np.float32)
            return data[:int(lib.ma_dr_flac_read_pcm_frames_f32(handle, count, ffi.from_buffer("float[]", data)))]

        if not _trusted(path, frames, channels):
            return _read_blocks(read, channels, mono=True), None, rate, frames
        if channels == 1:
            samples, padded = _read_into_padded(frames, pad, lambda out: int(
                lib.ma_dr_flac_read_pcm_frames_f32(handle, frames, ffi.from_buffer("float[]", out))))
            return samples, padded, rate, frames
        return read(frames).mean(axis=1, dtype=np.float32), None, rate, frames
    finally:
        lib.ma_dr_flac_close(handle)


def _decode(path: Path, sr: int, pad: int) -> tuple[np.ndarray, np.ndarray | None, int, bool, int]:
    """``(mono samples, padded array holding them or None, native rate, integer PCM?, header frames)``.

    Raises AudioError for files no decoder reads, and for a sample rate outside :data:`MIN_RATE` ...
    :data:`MAX_RATE` (:func:`sertool.io.pcm.check_rate`).
    """
    if path.suffix.lower() == ".flac":
        fast = _decode_flac(path, pad)
        if fast is not None:
            samples, padded, rate, frames = fast
            return samples, padded, rate, True, frames
    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile raises several types for bad files
        raise _decode_error(path, exc) from None
    with fh:
        check_rate(fh.samplerate, str(path))
        try:
            return _decode_soundfile(path, fh, sr, pad)
        except MemoryError:
            raise  # load_audio says so
        except Exception as exc:  # noqa: BLE001 - libsndfile's read errors are not one type
            raise _decode_error(path, exc) from None


def _decode_soundfile(path: Path, fh, sr: int, pad: int) -> tuple[np.ndarray, np.ndarray | None, int, bool, int]:
    """:func:`_decode` of an open :class:`soundfile.SoundFile` (its header's length trusted only when plausible)."""
    native_sr, integer_pcm, frames = fh.samplerate, fh.subtype.startswith("PCM"), fh.frames
    if not _trusted(path, frames, fh.channels):
        samples = _read_blocks(lambda count: fh.read(count, dtype="float32", always_2d=True), fh.channels, mono=True)
        return samples, None, native_sr, integer_pcm, frames
    if fh.channels == 1 and native_sr == sr:
        samples, padded = _read_into_padded(frames, pad, lambda out: fh.read(out=out).shape[0])
        return samples, padded, native_sr, integer_pcm, frames
    data = fh.read(dtype="float32", always_2d=True)
    samples = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    return samples, None, native_sr, integer_pcm, frames


#: A file whose decoded length falls short of its header's by more than this share and ``TRUNCATION_MIN_S``
#: is reported as truncated (a warning; the part that decodes is still used).
TRUNCATION_SHARE = 0.01
TRUNCATION_MIN_S = 0.05


class TruncatedAudioWarning(UserWarning):
    """A file decoded to fewer samples than its header announces (cut off while copying, or damaged)."""


def _report_truncation(message: str | None, on_warning) -> None:
    """Hand a truncation ``message`` to ``on_warning``, or issue it as a :class:`TruncatedAudioWarning`."""
    if not message:
        return
    if on_warning is not None:
        on_warning(message)
        return
    warnings.warn(message, TruncatedAudioWarning, stacklevel=3)


def truncation_message(path: Path, decoded: int, announced: int, rate: int) -> str | None:
    """The one-line warning for a file that decoded short, or None when the lengths agree."""
    missing = announced - decoded
    if announced <= 0 or missing <= max(TRUNCATION_SHARE * announced, TRUNCATION_MIN_S * rate):
        return None
    return (f"{path}: decoded {decoded / rate:.3f} s but the header says {announced / rate:.3f} s (truncated or "
            "damaged file); the part that decodes was used: re-copy or re-export the file")


def load_audio(path: str | os.PathLike, *, sr: int = 16000, min_duration: float = 0.0, pad: int = 0,
               on_warning=None) -> np.ndarray:
    """Decode ``path``, mix to mono and resample to ``sr``.

    Parameters
    ----------
    path
        Any file libsndfile can read: WAV (8/16/24/32-bit int or float), FLAC
        (dr_flac first, see the module docstring), OGG/Vorbis, MP3
        (libsndfile >= 1.1), AIFF, ...
    sr
        Target sample rate in Hz. Files at another rate are resampled with
        soxr's high-quality filter (librosa's default resampler).
    min_duration
        Shortest accepted duration in seconds, after resampling.
    pad
        Zeros added before and after the audio, in samples (what a centred
        STFT with constant padding needs). A mono file already at ``sr`` is
        decoded straight into the padded array, saving a copy.
    on_warning
        Called with a one-line message when the file decodes to less audio
        than its header announces (see :func:`truncation_message`); None
        issues a :class:`TruncatedAudioWarning` through :mod:`warnings`.

    Returns
    -------
    numpy.ndarray
        float32 samples, shape ``(pad + num_samples + pad,)``, nominally in [-1, 1].

    Raises
    ------
    AudioError
        Missing, empty, undecodable, non-finite or too-short audio. The
        message starts with the path and says what to do.
    """
    path = Path(path)
    _check_exists(path)
    try:
        samples, padded, native_sr, integer_pcm, announced = _decode(path, sr, pad)
    except MemoryError:
        raise _memory_error(path, sr) from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples in the file; remove it or re-export it")
    _report_truncation(truncation_message(path, samples.shape[0], announced, native_sr), on_warning)
    if not integer_pcm and not np.isfinite(samples).all():  # integer PCM is always finite
        raise AudioError(f"{path}: audio contains NaN or infinite samples; re-export it from the source")
    if native_sr != sr:
        samples = _resample(path, samples, native_sr, sr)
    if samples.shape[0] < min_duration * sr or samples.shape[0] == 0:
        raise AudioError(
            f"{path}: {samples.shape[0] / sr:.3f} s of audio is shorter than the "
            f"{min_duration:.3f} s needed; remove it or use a shorter analysis window"
        )
    if padded is not None and native_sr == sr:
        return padded
    if pad:
        return np.pad(np.asarray(samples, dtype=np.float32), pad)
    return np.ascontiguousarray(samples, dtype=np.float32)


def _memory_error(path: Path, sr: int) -> AudioError:
    return AudioError(f"{path}: not enough memory to decode this file at {sr} Hz; split it into shorter files (or "
                      "free memory) and rerun")


def _resample(path: Path, samples: np.ndarray, native_sr: int, sr: int) -> np.ndarray:
    """``samples`` at ``native_sr`` Hz resampled to ``sr`` with soxr's high-quality filter (AudioError: no memory)."""
    import soxr  # soxr: heavy, loaded only when a file needs resampling

    try:
        return soxr.resample(samples, native_sr, sr, quality="HQ")
    except MemoryError:
        raise _memory_error(path, sr) from None


#: Files longer than this are decoded and turned into features block by block by ``predict`` (memory then
#: grows with the feature matrix only, several times smaller than the audio), when the extractor allows it.
STREAM_SECONDS = 120.0


def stream_audio(path: str | os.PathLike, *, sr: int = 16000, block_seconds: float = 20.0,
                 on_warning=None) -> Iterator[np.ndarray]:
    """Decode ``path`` in consecutive mono float32 blocks at ``sr`` Hz (about ``block_seconds`` each).

    The blocks joined are the samples :func:`load_audio` returns (resampled
    with soxr's streaming resampler when the rates differ, which matches the
    one-shot resampler to within float rounding). Peak memory is one block,
    not the file.

    Raises
    ------
    AudioError
        As :func:`load_audio`: missing, undecodable, empty or non-finite audio.
    """
    path = Path(path)
    _check_exists(path)
    if path.suffix.lower() == ".flac":
        fast = _flac_reader(path)
        if fast is not None:  # dr_flac decodes a damaged tail as far as it goes, as load_audio does
            yield from _stream_blocks(path, *fast, sr=sr, block_seconds=block_seconds, on_warning=on_warning)
            return
    try:
        fh = sf.SoundFile(str(path))
    except Exception as exc:
        raise _decode_error(path, exc) from None
    with fh:
        def read(count: int) -> np.ndarray:
            try:
                return fh.read(count, dtype="float32", always_2d=True)
            except Exception as exc:
                raise _decode_error(path, exc) from None

        yield from _stream_blocks(path, read, fh.samplerate, fh.frames, fh.subtype.startswith("PCM"), sr=sr,
                                  block_seconds=block_seconds, on_warning=on_warning)


def _flac_reader(path: Path):
    """``(read, rate, frames, True)`` over dr_flac for :func:`stream_audio`, or None (use libsndfile).

    The handle is closed when ``read`` has returned a short block, or when the reader is garbage-collected.
    """
    drflac = _drflac()
    if drflac is None:
        return None
    ffi, lib = drflac
    handle = lib.ma_dr_flac_open_file(os.fsencode(path), ffi.NULL)
    if handle == ffi.NULL:
        return None
    frames, channels, rate = int(handle.totalPCMFrameCount), int(handle.channels), int(handle.sampleRate)
    if frames == 0:
        lib.ma_dr_flac_close(handle)
        return None
    handle = ffi.gc(handle, lib.ma_dr_flac_close)

    def read(count: int) -> np.ndarray:
        data = np.empty((count, channels), np.float32)
        got = int(lib.ma_dr_flac_read_pcm_frames_f32(handle, count, ffi.from_buffer("float[]", data)))
        return data[:got]

    return read, rate, frames, True


def _stream_blocks(path: Path, read, native_sr: int, announced: int, integer_pcm: bool, *, sr: int,
                   block_seconds: float, on_warning) -> Iterator[np.ndarray]:
    """The blocks of :func:`stream_audio` from ``read(frames) -> (frames, channels) float32``."""
    check_rate(native_sr, str(path))
    resampler = None
    if native_sr != sr:
        import soxr  # soxr: heavy, loaded only when a stream needs resampling

        resampler = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ")
    decoded, size = 0, max(1, int(block_seconds * native_sr))
    while True:
        data = read(size)
        last = data.shape[0] < size
        decoded += data.shape[0]
        block = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        if not integer_pcm and not np.isfinite(block).all():
            raise AudioError(f"{path}: audio contains NaN or infinite samples; re-export it from the source")
        if resampler is not None:
            block = resampler.resample_chunk(np.ascontiguousarray(block), last=last)
        if block.size:
            yield np.ascontiguousarray(block, dtype=np.float32)
        if last:
            break
    if decoded == 0:
        raise AudioError(f"{path}: no audio samples in the file; remove it or re-export it")
    _report_truncation(truncation_message(path, decoded, announced, native_sr), on_warning)


def decode_bytes(data: bytes, *, name: str = "-", rate: int | None = None, fmt: str = "s16le",
                 channels: int = 1) -> tuple[np.ndarray, int]:
    """Audio from bytes (e.g. all of stdin): ``(samples (N,) or (N, channels) float32 in [-1, 1], rate Hz)``.

    Without ``rate`` the bytes are a container soundfile reads (WAV, FLAC,
    OGG; a WAV whose header gives no length, as ``ffmpeg ... -f wav -``
    writes to a pipe, is read to its end). With ``rate`` they are raw PCM
    in ``fmt`` (:data:`PCM_FORMATS`) with ``channels`` interleaved channels.
    """
    if not data:
        raise AudioError(f"{name}: no audio bytes arrived on stdin; pipe a WAV file in, e.g. "
                         "`ffmpeg -i talk.mp4 -f wav - | sertool predict -`")
    if rate is None:
        return _decode_container(data, name)
    pcm = raw_format(rate, fmt, channels, name)
    usable = len(data) - len(data) % pcm.frame_bytes  # a torn last frame (the writer stopped mid-sample) is dropped
    return pcm.samples(data[:usable]), pcm.rate


def _decode_container(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """:func:`decode_bytes` of a WAV/FLAC/OGG stream: its rate checked, its header's length trusted only when
    the bytes can hold it (else read block by block)."""
    try:
        fh = sf.SoundFile(io.BytesIO(data))
    except Exception as exc:  # libsndfile's errors are not one type
        raise AudioError(f"{name}: not a WAV/FLAC/OGG stream ({str(exc).splitlines()[0][:80]}); for raw PCM "
                         "pass --rate (and --format, --channels)") from None
    with fh:
        check_rate(fh.samplerate, name, "the stream's header is damaged: re-encode it")
        try:
            if 0 < fh.frames * fh.channels <= len(data) * MAX_SAMPLES_PER_BYTE:
                samples = fh.read(dtype="float32", always_2d=True)
            else:
                samples = _read_blocks(lambda count: fh.read(count, dtype="float32", always_2d=True), fh.channels)
        except Exception as exc:  # noqa: BLE001 - libsndfile's read errors (MemoryError included) are not one type
            raise AudioError(f"{name}: cannot decode the stream ({str(exc).splitlines()[0][:80]}); re-encode it, "
                             "e.g. with ffmpeg -f wav -") from None
        rate = fh.samplerate
    return np.ascontiguousarray(samples[:, 0] if samples.shape[1] == 1 else samples), int(rate)
