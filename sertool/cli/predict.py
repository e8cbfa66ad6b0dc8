"""``sertool predict``: score audio files, folders or manifests into a CSV."""

from __future__ import annotations

import os
import time

import click

from sertool import api
from sertool.cli.app import log, log_warnings, sigterm_exits
from sertool.cli.options import (device_option, jobs_option, max_failures_option, progress_option, raw_pcm_options,
                                 trust_code_option)


def _model_and_inputs(checkpoint: str | None, inputs: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """``predict CKPT.pt FILES...`` takes the first INPUT as the model; no model at all: the bundled one."""
    if checkpoint is None and inputs[0].endswith((".pt", ".onnx")):
        checkpoint, inputs = inputs[0], inputs[1:]
        if not inputs:
            raise click.UsageError("no INPUT to score after the checkpoint")
    return checkpoint or "default", inputs


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-m", "--model", "checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint or exported model (.onnx, TorchScript .pt) to score with, or a bundled model: "
                   "'default' (multi-corpus; files scored together share statistics), 'ravdess' (LIGHT-SERNET on "
                   "RAVDESS) or 'ravdess-speaker' / 'speaker' (speaker-normalised). A first INPUT "
                   "ending in .pt or .onnx is taken as the model too.")
@click.option("-o", "--output", default="-", show_default=True, help="CSV file, or - for stdout.")
@click.option("--window", type=float, default=None,
              help="Window length in seconds for long files (default: the model's input length).")
@click.option("--hop", type=float, default=None, help="Hop between windows in seconds (default: window / 2).")
@click.option("--crop-tolerance", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Without --window: clips up to (1 + this) x the model's input length are one window the model "
                   "centre-crops, as in training; longer files are windowed.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Windows per forward pass (peak memory grows with it).")
@device_option()
@click.option("--segments", is_flag=True, help="One row per window, with start/end times, instead of one per file.")
@jobs_option("Processes: jobs - 1 workers decode and compute features while this one runs the model.")
@click.option("--vad", is_flag=True,
              help="Score only the speech regions Silero VAD finds (with --segments: one row per region); "
                   "pip install 'sertool[vad]'.")
@raw_pcm_options("INPUT - only: ", "WAV/FLAC/OGG stream")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Keep rows of files already scored in the output and score only the rest.")
@click.option("--speaker-regex", default=None,
              help="Speaker-normalised models: regex on each file's path whose first group is the speaker "
                   "(manifest inputs use their speaker column).")
@trust_code_option()
@max_failures_option()
@progress_option()
@click.pass_context
def predict(ctx, inputs, checkpoint, output, window, hop, crop_tolerance, batch_size, device, segments, jobs, vad,
            rate, pcm_format, channels, resume, speaker_regex, trust_code, max_failures, progress):
    """Score INPUTS (audio files, folders, or manifest CSVs) with a trained model.

    Columns: path, predicted, confidence, p_<class>..., duration, flags, error
    (flags: input checks such as quiet, clipped, narrowband; see the README).
    INPUT - reads one recording from stdin (WAV/FLAC/OGG, or raw PCM with
    --rate), e.g. `ffmpeg -i talk.mp4 -f wav - | sertool predict - -o -`.
    Features are rebuilt from the checkpoint's config. Unreadable files get
    a row with the error; the rest are scored. Both `sertool predict
    CHECKPOINT.pt FILES...` and `sertool predict FILES... --model CKPT` work;
    with neither, the bundled multi-corpus model is used (see its model card).
    """
    # numpy's OpenBLAS (small feature products) gets one thread: its spinning idle threads took the cores
    # from torch's and made predict 2.4x slower. torch's own thread pool is left alone.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    checkpoint, inputs = _model_and_inputs(checkpoint, inputs)
    if rate is not None and "-" not in inputs:
        raise click.UsageError("--rate describes raw PCM on stdin: use it with INPUT -")
    sigterm_exits()
    start = time.monotonic()
    report = api.predict_files(checkpoint, inputs, output=output, window=window, hop=hop, segments=segments,
                               resume=resume, speaker_regex=speaker_regex, trust_code=trust_code,
                               max_failures=max_failures, progress=progress, crop_tolerance=crop_tolerance,
                               batch_size=batch_size, device=device, vad=vad, jobs=jobs, rate=rate,
                               pcm_format=pcm_format, channels=channels)
    where = "stdout" if output == "-" else output
    log(report.line("predict", done="scored", skipped=f"already in {where}", target=where,
                    seconds=time.monotonic() - start))
    if report.flag_line("predict"):
        log(report.flag_line("predict"))
    log_warnings(report)
    ctx.exit(report.exit_code())
