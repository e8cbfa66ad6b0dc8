"""``sertool evaluate``: score every fold of a run on its test speakers (or on another corpus)."""

from __future__ import annotations

import click

from sertool import api
from sertool.cli.app import log
from sertool.cli.options import device_option, train_choice
from sertool.io.report import RunReport

SCORE_FILES = "metrics.csv, confusion.csv, predictions.csv, confusion.png, confusion_folds.png, reliability.png"


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
@device_option()
def evaluate(run_dir, manifest, store, output, selection, cross, label_map, device):
    """Score each fold of RUN_DIR on its test speakers: WA, UA, macro-F1, ECE, Brier, confusion.

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
                          selection=selection, output=output, device=device, log=log)
    from sertool.scoring.evaluate import summary_table  # numpy: heavy (loaded by the run already)

    log(summary_table(result))
    report = RunReport()
    report.done(len([k for k in result.folds if k not in ("pooled", "mean", "std")]))
    log(report.line("evaluate", done="fold(s) scored", skipped="skipped", target=result.out_dir)
        + f" ({SCORE_FILES})")
