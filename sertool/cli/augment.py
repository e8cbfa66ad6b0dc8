"""``sertool augment``: augmented copies of a manifest's utterances, and a manifest listing them."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log
from sertool.cli.options import comma_list, floats, max_failures_option, progress_option


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Manifest to write: the original rows plus the new copies.")
@click.option("--audio-dir", required=True, type=click.Path(file_okay=False), help="Folder for the new audio files.")
@click.option("--white-noise", "white_noise", multiple=True, type=float, metavar="SNR_DB",
              help="White Gaussian noise at this SNR; repeatable; --copies files per value.")
@click.option("--noise-dir", type=click.Path(file_okay=False), help="Mix in random files from this folder.")
@click.option("--snr-range", default="5,20", show_default=True, help="--noise-dir: SNR range in dB, LO,HI.")
@click.option("--speed", multiple=True, type=float, metavar="FACTOR", help="Speed perturbation; repeatable.")
@click.option("--pitch", multiple=True, type=float, metavar="SEMITONES", help="Pitch shift; repeatable.")
@click.option("--gain", multiple=True, type=float, metavar="DB", help="Gain change; repeatable.")
@click.option("--time-shift", type=float, default=None, metavar="SECONDS", help="Random circular shift up to this.")
@click.option("--rir-dir", type=click.Path(file_okay=False),
              help="Reverberate with random impulse responses from this folder.")
@click.option("--copies", default=1, show_default=True, type=click.IntRange(1),
              help="Files per utterance for --white-noise values, --noise-dir, --time-shift and --rir-dir.")
@click.option("--speakers", default=None, help="Only these speakers (comma-separated), e.g. the training speakers.")
@click.option("--split-column", default=None, help="Only rows whose COLUMN equals --split-value.")
@click.option("--split-value", default="train", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Same seed, same bytes.")
@max_failures_option()
@progress_option()
@click.pass_context
def augment(ctx, manifest, output, audio_dir, white_noise, noise_dir, snr_range, speed, pitch, gain, time_shift,
            rir_dir, copies, speakers, split_column, split_value, seed, max_failures, progress):
    """Write augmented copies of MANIFEST's utterances and a manifest that lists them.

    New rows get id <id>+<tag>, the source's speaker and label, and
    source_id = <id>, so training splits keep every copy with its source and
    evaluation never tests on a copy. Only originals are augmented.
    """
    start = time.monotonic()
    report = api.augment(manifest, output=output, audio_dir=audio_dir, white_noise=white_noise, noise_dir=noise_dir,
                         snr_range=tuple(floats(snr_range, "--snr-range", 2)), speed=speed, pitch=pitch, gain=gain,
                         time_shift=time_shift, rir_dir=rir_dir, copies=copies, speakers=comma_list(speakers),
                         split_column=split_column, split_value=split_value, seed=seed, max_failures=max_failures,
                         progress=progress)
    failures = report.failures_path
    log(report.line("augment", done="files written", skipped="already there", target=output,
                    seconds=time.monotonic() - start) + (f"; see {failures}" if failures else ""))
    ctx.exit(report.exit_code())
