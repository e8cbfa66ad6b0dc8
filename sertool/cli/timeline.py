"""``sertool timeline``: a ``predict --segments`` CSV as a picture of class probabilities over time."""

from __future__ import annotations

import click

from sertool import api
from sertool.cli.app import log


@click.command()
@click.argument("segments", type=click.Path(dir_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picture: .png, .svg or .pdf.")
@click.option("--file", "file", default=None, metavar="PATH",
              help="Draw only this file of the CSV (its path as written, its file name, or a path ending).")
def timeline(segments, output, file):
    """Draw SEGMENTS (written by `sertool predict --segments`): per file, the class probabilities stacked over
    time, windows with input-check flags hatched and named, numeric predictions (e.g. pred_arousal) as lines
    below. At most 12 files, one panel each; --file picks one."""
    result = api.timeline(segments, output=output, file=file)
    if result.left_out:
        log(f"timeline: {result.total} files in {segments}; drew the first {len(result.files)} "
            "(pick another with --file PATH)")
    log(f"timeline: {len(result.files)} file(s) -> {result.output}")
    click.echo(result.output)
