"""``sertool store merge`` and ``sertool store describe``: look at and combine feature stores."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log


@click.group()
def store():
    """Look at and combine feature stores."""


@store.command("merge")
@click.argument("stores", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The store to write (or add to).")
def store_merge(stores, output):
    """Merge stores of one feature config (e.g. `extract --shard K/N` outputs) into one store."""
    start = time.monotonic()
    result = api.store_merge(stores, output=output)
    log(f"store merge: {result.entries} entries from {len(result.stores)} store(s) -> {result.output} "
        f"({time.monotonic() - start:.1f} s)")


@store.command("describe")
@click.argument("stores", nargs=-1, required=True, type=click.Path(dir_okay=False))
def store_describe(stores):
    """Config, entry count and the first entries' shapes of each store."""
    for description in api.store_describe(stores):
        click.echo(description.text)
