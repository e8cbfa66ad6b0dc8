"""``sertool stream``: score a live stream on stdin, one CSV row per window as soon as its audio is in."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from sertool import api
from sertool.cli.app import log, sigterm_exits
from sertool.cli.options import device_option, raw_pcm_options, trust_code_option


@click.command()
@click.option("-m", "--model", "checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint or exported model, or a bundled one ('default'); not speaker-normalised or fused.")
@click.option("-o", "--output", default="-", show_default=True,
              help="CSV file (must not exist yet), or - for stdout.")
@click.option("--window", type=click.FloatRange(0, min_open=True), default=None,
              help="Window in seconds (default: the model's input length; 3 s for utterance-level models).")
@click.option("--hop", type=click.FloatRange(0, min_open=True), default=None,
              help="Hop between windows in seconds (default: window / 2).")
@raw_pcm_options("", "WAV stream, e.g. from arecord or ffmpeg")
@device_option()
@trust_code_option()
def stream(checkpoint, output, window, hop, rate, pcm_format, channels, device, trust_code):
    """Score a live stream on stdin: one CSV row per window, written as soon as the window's audio is in.

    `arecord -f S16_LE -r 16000 -c 1 | sertool stream` scores a microphone;
    `ffmpeg -i talk.mp4 -f wav - | sertool stream -o talk.csv` a file as it
    decodes. Columns are those of `predict --segments`, with duration the
    audio received so far. For the bundled model (features that need only
    past audio) the rows equal `predict --segments --crop-tolerance 0` of
    the same recording (and plain --segments beyond 1.5 windows).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if sys.stdin.isatty():
        raise click.UsageError("stream reads audio from stdin: pipe it in, e.g. "
                               "`arecord -f S16_LE -r 16000 -c 1 | sertool stream`")
    if output != "-" and Path(output).exists():
        raise click.UsageError(f"{output} exists; choose another -o or remove it (stream never overwrites rows)")
    sigterm_exits()
    start = time.monotonic()
    try:
        result = api.stream(sys.stdin.buffer, output=sys.stdout if output == "-" else output,
                            checkpoint=checkpoint or "default", window=window, hop=hop, rate=rate,
                            pcm_format=pcm_format, channels=channels, device=device, trust_code=trust_code)
    except KeyboardInterrupt:
        log(f"stream: stopped; the rows written so far are in {'stdout' if output == '-' else output}")
        raise SystemExit(130) from None
    how = "as the audio arrived" if result.incremental else "window by window"
    log(f"stream: {result.windows} windows from {result.seconds:.1f} s of audio, scored {how} "
        f"({time.monotonic() - start:.1f} s)")
    if result.flagged:
        log(f"stream: {result.flagged} of {result.windows} windows flagged; see the flags column")
