"""``sertool report``: evaluated runs as one self-contained HTML page (or a PDF of it)."""

from __future__ import annotations

import click

from sertool import api
from sertool.cli.app import log


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="report.html (one self-contained page), or report.pdf (printed by a headless Chromium).")
@click.option("--predictions", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A predictions CSV of `sertool predict` whose flags to summarise (repeatable).")
def report(runs, output, predictions):
    """One page for evaluated RUNS: data, protocol and how each choice was made, metrics with intervals and
    fold spread, per-class scores, confusion matrices, training curves, reliability diagram, cross-corpus
    scores, other figures the run folder holds, input-check flags; for several runs, the `sertool compare`
    table with its paired bootstrap. Pictures are inline: the page opens offline in any browser."""
    result = api.report(runs, output=output, predictions=predictions)
    for note in result.notes:
        log(f"  note: {note}")
    log(f"report: {len(result.runs)} run(s), {result.figures} figure(s) -> {result.output}")
    click.echo(result.output)
