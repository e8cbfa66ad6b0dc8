"""Scoring audio with a trained model: :func:`predict`, :func:`predict_files`, :func:`stream`, :func:`export`."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import BinaryIO, Sequence

from sertool.api.results import ExportResult
from sertool.errors import AudioError, ConfigError
from sertool.runtime.process import blas_threads

PathLike = str | os.PathLike


def predict(checkpoint, audio, *, speakers: Sequence[str] | None = None, speaker_regex: str | None = None,
            window: float | None = None, hop: float | None = None, trust_code: bool = False,
            crop_tolerance: float | None = None, batch_size: int = 32, device: str = "cpu", vad: bool = False):
    """Score audio in memory: labels and class probabilities, no files written.

    Parameters
    ----------
    checkpoint
        A ``checkpoint.pt`` path, ``"default"`` / ``"speaker"`` (the bundled
        models), or a :class:`~sertool.models.checkpoint.Checkpoint`.
    audio
        A path (file, folder or manifest CSV), a list of paths, a
        ``(samples, sample_rate)`` pair (samples ``(N,)`` or ``(N, channels)``
        float, sample_rate in Hz), or a list of such pairs.
    speakers, speaker_regex
        Speaker-normalised checkpoints only: one speaker per input, or a regex
        on the paths (manifests bring their own speaker column).
    window, hop
        Window length and hop in seconds for long inputs (default: the model's input length, half of it).
    trust_code
        Allow a checkpoint whose features run code, or a TorchScript export.
    crop_tolerance
        Without ``window``: inputs up to (1 + this) x the model's input length are
        one centre-cropped window, as in training (default ``sertool.inference.predict.CROP_TOLERANCE``, 0.5).
    batch_size, device
        Windows per forward pass, and ``"cpu"``, ``"cuda"`` or ``"auto"``.
    vad
        Score only the speech regions Silero VAD finds (``windows`` are the regions).

    Returns
    -------
    sertool.inference.predict.Predictions
        ``labels`` (N), ``probabilities`` (N, C) float32, ``classes`` (C),
        ``names``, ``durations`` (N,) s, ``windows`` per input.

    Raises
    ------
    ConfigError
        ``audio`` of an unknown kind, or speakers missing for a speaker-normalised model.
    AudioError
        An input that cannot be read or scored.
    CheckpointError
        A missing, unreadable or untrusted checkpoint.
    SertoolError
        A speaker with too few inputs for speaker normalisation.
    """
    from sertool.inference.predict import CROP_TOLERANCE, predict_audio  # numpy, torch: kept off `sertool --help`

    return predict_audio(checkpoint, audio, speakers=list(speakers) if speakers is not None else None,
                         speaker_regex=speaker_regex, window=window, hop=hop, trust_code=trust_code,
                         crop_tolerance=CROP_TOLERANCE if crop_tolerance is None else crop_tolerance,
                         batch_size=batch_size, device=device, vad=vad)


def _stdin_clip(inputs: list, stdin: BinaryIO | None, rate: int | None, pcm_format: str, channels: int):
    """The audio of input ``"-"`` (read from ``stdin``, default standard input) as a Clip, or None."""
    if "-" not in [str(i) for i in inputs]:
        if rate is not None:
            raise ConfigError("rate describes raw PCM on stdin: use it with the input '-'")
        return None
    from sertool.inference.predict import Clip  # numpy (torch when a model runs): kept off `sertool --help`
    from sertool.io.audio import decode_bytes  # numpy, soxr: kept off `sertool --help`

    data = (stdin or sys.stdin.buffer).read()
    samples, sample_rate = decode_bytes(data, rate=rate, fmt=pcm_format, channels=channels)
    return Clip(samples, sample_rate, "-")


def predict_files(checkpoint, inputs: PathLike | Sequence[PathLike], *, output: PathLike,
                  window: float | None = None, hop: float | None = None, segments: bool = False,
                  resume: bool = True, speaker_regex: str | None = None, trust_code: bool = False,
                  max_failures: int = 0, progress: bool | None = False, crop_tolerance: float | None = None,
                  batch_size: int = 32, device: str = "cpu", vad: bool = False, jobs: int = 1,
                  stdin: BinaryIO | None = None, rate: int | None = None, pcm_format: str = "s16le",
                  channels: int = 1):
    """Score files, folders or manifests into a CSV, resumably (``sertool predict``).

    Parameters
    ----------
    checkpoint
        A checkpoint or exported model path, or a bundled model name (``"default"``, ``"speaker"``).
    inputs
        Audio files, folders, manifest CSVs; ``"-"`` is audio read from ``stdin``.
    output
        CSV path, or ``"-"`` for standard output.
    window, hop, segments
        Window length and hop in seconds; one row per window instead of one per file.
    resume
        Keep rows of files already in ``output`` and score only the rest (not for stdin into stdout).
    speaker_regex, trust_code, crop_tolerance, batch_size, device, vad
        As for :func:`predict`.
    max_failures, progress
        Failed files tolerated before ``report.exit_code()`` is 3; a progress bar (None: on a terminal).
    jobs
        Processes: ``jobs - 1`` workers decode and compute features while this one runs the model.
    stdin, rate, pcm_format, channels
        Input ``"-"``: a binary file object (default standard input) holding WAV/FLAC/OGG, or raw PCM at
        ``rate`` Hz in ``pcm_format`` (``s16le``, ``s32le``, ``f32le``) with ``channels`` interleaved.

    Returns
    -------
    sertool.io.report.RunReport
        ``ok`` scored, ``skipped`` kept from an earlier run, ``failures`` (also the CSV's ``error`` column).

    Raises
    ------
    ConfigError
        ``rate`` without the input ``"-"``, or speakers missing for a speaker-normalised model.
    AudioError
        Undecodable audio on stdin.
    CheckpointError
        A missing, unreadable or untrusted checkpoint.
    """
    # inference: numpy (torch when a model runs), kept off `sertool --help`
    from sertool.inference.predict import CROP_TOLERANCE, checkpoint_path, predict_files as score_files

    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    clip = _stdin_clip(inputs, stdin, rate, pcm_format, channels)
    if clip is not None:
        resume = resume and str(output) != "-"
    return score_files(checkpoint_path(checkpoint), inputs, output, window=window, hop=hop, segments=segments,
                       resume=resume, max_failures=max_failures, speaker_regex=speaker_regex,
                       trust_code=trust_code, progress=progress,
                       crop_tolerance=CROP_TOLERANCE if crop_tolerance is None else crop_tolerance,
                       batch_size=batch_size, device=device, stdin=clip, vad=vad, jobs=jobs)


def stream(source, *, output, checkpoint="default", window: float | None = None, hop: float | None = None,
           rate: int | None = None, pcm_format: str = "s16le", channels: int = 1, device: str = "cpu",
           trust_code: bool = False):
    """Score a live audio stream, one flushed CSV row per window as soon as its audio is in (``sertool stream``).

    Parameters
    ----------
    source
        A binary file object (a pipe, a socket's ``makefile("rb")``, ``sys.stdin.buffer``) or a path: a WAV
        stream, or raw PCM when ``rate`` (Hz) is given (``pcm_format`` s16le/s32le/f32le, ``channels``
        interleaved).
    output
        A text file object, or a path of a CSV that does not exist yet.
    checkpoint
        A checkpoint or exported model path, or a bundled model name; not speaker-normalised, not fused.
    window, hop
        Window length and hop in seconds (default: the model's input length, half of it).
    device, trust_code
        As for :func:`predict`.

    Returns
    -------
    sertool.inference.stream.StreamResult
        ``windows`` rows written, ``seconds`` of audio read, ``incremental`` (features computed as the
        audio arrived, rows equal to ``predict --segments``; else each window scored as a clip).

    Raises
    ------
    ConfigError
        ``output`` exists, or a speaker-normalised or fused model.
    AudioError
        A missing source file, a bad PCM format, or a stream that is not WAV.
    CheckpointError
        A missing, unreadable or untrusted checkpoint.
    """
    from sertool.inference.predict import checkpoint_path  # numpy (torch when a model runs): kept off `sertool --help`
    from sertool.inference.stream import NewFile, raw_format, stream_scores  # numpy, soxr: kept off `sertool --help`

    name = str(source) if isinstance(source, (str, os.PathLike)) else "-"
    pcm = raw_format(rate, pcm_format, channels, name) if rate is not None else None
    with contextlib.ExitStack() as stack:
        if isinstance(output, (str, os.PathLike)):
            output = NewFile(output)
            stack.callback(output.close)
        if name != "-":
            if not os.path.isfile(name):
                raise AudioError(f"{name}: file not found; check the path")
            source = stack.enter_context(open(name, "rb"))
        with blas_threads(1):
            return stream_scores(checkpoint_path(checkpoint), source, output, window=window, hop=hop, pcm=pcm,
                                 device=device, trust_code=trust_code, name=name)


def export(checkpoint, *, output: PathLike) -> ExportResult:
    """Write a checkpoint (or a bundled model name) as ONNX (.onnx) or TorchScript (.pt) (``sertool export``).

    Parameters
    ----------
    checkpoint
        A ``checkpoint.pt`` path or a bundled model name (``"default"``, ``"speaker"``).
    output
        ``model.onnx`` or ``model.pt``; written only once the export matches the checkpoint.

    Returns
    -------
    ExportResult
        ``format``, ``path``, ``max_difference`` (probability), ``checked_inputs`` (shapes).

    Raises
    ------
    ConfigError
        An output suffix other than .onnx or .pt.
    ExportError
        A fused model, a model ONNX cannot express, a missing export extra, or an export that differs.
    CheckpointError
        A missing or unreadable checkpoint.
    """
    from sertool.inference.export import export_checkpoint  # numpy (torch when traced): kept off `sertool --help`
    from sertool.inference.predict import checkpoint_path  # numpy: kept off `sertool --help`

    summary = export_checkpoint(checkpoint_path(checkpoint), output)
    return ExportResult(summary["format"], Path(summary["path"]), summary["max_difference"],
                        summary["checked_inputs"])
