"""``sertool evaluate``: score every fold of a run on its test speakers (or on another corpus)."""

from __future__ import annotations

import click

from sertool import api
from sertool.cli.app import log
from sertool.cli.options import device_option, train_choice
from sertool.io.report import RunReport

SCORE_FILES = "metrics.csv, confusion.csv, predictions.csv, confusion.png, confusion_folds.png, reliability.png"
REGRESSION_FILES = "metrics.csv, predictions.csv, scatter_<target>.png"


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("manifest", required=False, type=click.Path(dir_okay=False))
@click.argument("store", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for the results (default RUN_DIR).")
@click.option("--selection", type=train_choice("selection"), default=None,
              help="Score fold-*/checkpoint-<SELECTION>.pt instead of checkpoint.pt (to compare selections).")
@click.option("--on", "cross", nargs=2, type=click.Path(dir_okay=False), default=None, metavar="MANIFEST STORE",
              help="Cross-corpus: score every fold's model on all utterances of another corpus (default output "
                   "RUN_DIR/cross-<manifest>).")
@click.option("--label-map", type=click.Path(dir_okay=False, exists=True), default=None,
              help="--on: CSV of 'from,to' rows mapping the other corpus's labels to the model's.")
@click.option("--allow-missing-folds", is_flag=True,
              help="Score the folds there are when some folds the run trained have lost their checkpoint (default: "
                   "an error naming them); the summary and metrics.csv (folds_scored, folds_total) say how many.")
@device_option()
def evaluate(run_dir, manifest, store, output, selection, cross, label_map, allow_missing_folds, device):
    """Score each fold of RUN_DIR on its test speakers: WA, UA, macro-F1, ECE, Brier, confusion.

    A regression run (train --target) gets CCC, Pearson, MAE and RMSE per target with bootstrap intervals,
    predictions.csv with true_/pred_ columns and a scatter_<target>.png per target; with --on, the other
    manifest needs columns named as its targets (rows without a number there are left out).

    MANIFEST and STORE default to those the run was trained on. Probabilities
    are calibrated (each fold's temperature, fitted on its validation
    speakers). Writes metrics.csv, confusion.csv, predictions.csv,
    confusion.png, reliability.png and training_curves.png. With --on, every
    fold's model scores another corpus.
    """
    if bool(manifest) != bool(store):
        raise click.UsageError("give both MANIFEST and STORE, or neither")
    if label_map and not cross:
        raise click.UsageError("--label-map goes with --on MANIFEST STORE")
    result = api.evaluate(run_dir, manifest=manifest, store=store, on=cross, label_map=label_map,
                          selection=selection, output=output, device=device, allow_missing_folds=allow_missing_folds,
                          log=log)
    from sertool.scoring import evaluate as classes, regression  # numpy: heavy (loaded by the run already)

    log((regression if result.task == "regression" else classes).summary_table(result))
    report = RunReport()
    report.done(len([k for k in result.folds if k not in ("pooled", "mean", "std")]))
    if result.partial:  # the run's folds without a checkpoint, scored by nobody
        report.skip(result.folds_total - result.folds_scored)
    files = REGRESSION_FILES if result.task == "regression" else SCORE_FILES
    log(report.line("evaluate", done="fold(s) scored",
                    skipped="not scored (no checkpoint)" if result.partial else "skipped", target=result.out_dir)
        + f" ({files})")
    if result.partial:
        log(f"PARTIAL: {result.folds_scored} of {result.folds_total} folds scored: these are not the run's "
            "cross-validated scores until its other folds are trained and scored")
