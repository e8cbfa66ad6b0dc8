"""``sertool compare``: one table of evaluated runs."""

from __future__ import annotations

import click

from sertool import api
from sertool.cli.app import log


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Also write the table: .md for Markdown, anything else CSV.")
def compare(runs, output):
    """One table of evaluated RUNS: pooled scores with 95 % intervals, fold mean and std, and each run's
    paired-bootstrap UA difference to the first run (when they scored the same test utterances)."""
    result = api.compare(runs, output=output)
    click.echo(result.table)
    if result.output:
        log(f"compare: {len(result)} runs -> {result.output}")
