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
from sertool.io.pcm import PCM_FORMATS, pcm_to_float, raw_format  # noqa: F401 (PCM_FORMATS, pcm_to_float: re-exported)

#: File suffixes treated as audio when scanning folders (lower case).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


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


def find_audio(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Audio files (by suffix, any case) under ``folder``, sorted; hidden files and folders skipped.

    Symbolic links are followed (a folder reached twice, as through a link
    loop, is walked once). Links that resolve to no file (dangling, or a loop)
    are listed too, so that the caller reports them instead of skipping them.
    """
    folder = Path(folder)
    found: list[Path] = []
    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in names:
            path = Path(root) / name
            if path.suffix.lower() in AUDIO_SUFFIXES and not name.startswith(".") and (path.is_file()
                                                                                      or path.is_symlink()):
                found.append(path)
    return sorted(found)


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


def _decode_flac(path: Path, pad: int) -> tuple[np.ndarray, np.ndarray | None, int, int] | None:
    """``(mono samples, padded array or None, native rate, header frames)`` via dr_flac; None: use libsndfile.

    A mono file is decoded straight into the middle of the padded array.
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
        if channels == 1:
            samples, padded = _read_into_padded(frames, pad, lambda out: int(
                lib.ma_dr_flac_read_pcm_frames_f32(handle, frames, ffi.from_buffer("float[]", out))))
            return samples, padded, rate, frames
        data = np.empty((frames, channels), np.float32)
        got = int(lib.ma_dr_flac_read_pcm_frames_f32(handle, frames, ffi.from_buffer("float[]", data)))
        return data[:got].mean(axis=1, dtype=np.float32), None, rate, frames
    finally:
        lib.ma_dr_flac_close(handle)


def _decode(path: Path, sr: int, pad: int) -> tuple[np.ndarray, np.ndarray | None, int, bool, int]:
    """``(mono samples, padded array holding them or None, native rate, integer PCM?, header frames)``.

    Raises AudioError for files no decoder reads.
    """
    if path.suffix.lower() == ".flac":
        fast = _decode_flac(path, pad)
        if fast is not None:
            samples, padded, rate, frames = fast
            return samples, padded, rate, True, frames
    try:
        with sf.SoundFile(str(path)) as fh:
            native_sr, integer_pcm, frames = fh.samplerate, fh.subtype.startswith("PCM"), fh.frames
            if fh.channels == 1 and native_sr == sr:
                samples, padded = _read_into_padded(fh.frames, pad, lambda out: fh.read(out=out).shape[0])
                return samples, padded, native_sr, integer_pcm, frames
            data = fh.read(dtype="float32", always_2d=True)
    except Exception as exc:
        raise _decode_error(path, exc) from None
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
    samples, padded, native_sr, integer_pcm, announced = _decode(path, sr, pad)
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples in the file; remove it or re-export it")
    _report_truncation(truncation_message(path, samples.shape[0], announced, native_sr), on_warning)
    if not integer_pcm and not np.isfinite(samples).all():  # integer PCM is always finite
        raise AudioError(f"{path}: audio contains NaN or infinite samples; re-export it from the source")
    if native_sr != sr:
        import soxr  # soxr: heavy, loaded only when a file needs resampling

        samples = soxr.resample(samples, native_sr, sr, quality="HQ")
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
        try:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
        except Exception as exc:  # libsndfile's errors are not one type
            raise AudioError(f"{name}: not a WAV/FLAC/OGG stream ({str(exc).splitlines()[0][:80]}); for raw PCM "
                             "pass --rate (and --format, --channels)") from None
        return np.ascontiguousarray(samples), int(rate)
    pcm = raw_format(rate, fmt, channels, name)
    usable = len(data) - len(data) % pcm.frame_bytes  # a torn last frame (the writer stopped mid-sample) is dropped
    return pcm.samples(data[:usable]), pcm.rate
