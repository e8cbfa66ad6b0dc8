"""``sertool fuse``: late fusion of runs trained on the same folds."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log
from sertool.cli.options import floats


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder for the fused run.")
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="One weight per run (normalised to sum 1); default: fitted per fold on its validation speakers.")
@click.option("--grid-step", default=0.1, show_default=True, type=float,
              help="Step of the weight grid searched on the validation speakers.")
@click.option("--allow-missing-folds", is_flag=True,
              help="Fuse the folds every run has finished when some have no checkpoint (default: an error naming "
                   "them); evaluating the fused run then says how many of the runs' folds it scores.")
def fuse(runs, output, weights, grid_step, allow_missing_folds):
    """Late fusion of RUNS trained on the same folds: weighted mean of their class probabilities.

    Regression runs (train --target, same targets) fuse their predicted values, the weights chosen by the mean
    validation CCC over the targets; regression and classification runs do not mix.

    Writes OUT/run.json and OUT/fold-<i>/{checkpoint.pt, split.csv}; then
    `sertool evaluate OUT` and `sertool predict OUT/fold-<i>/checkpoint.pt`
    work as for any run (each member computes its own features).
    """
    start = time.monotonic()
    result = api.fuse(runs, output=output, weights=floats(weights, "--weights") if weights else None,
                      grid_step=grid_step, allow_missing_folds=allow_missing_folds, log=log)
    log(f"fuse: {len(runs)} runs, {len(result.weights)} fold(s) -> {output} ({time.monotonic() - start:.0f} s); "
        f"next: sertool evaluate {output}")
