"""``sertool crosscorpus``: a training-corpus x test-corpus matrix of UA, from runs it trains and resumes."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log, sigterm_exits
from sertool.cli.options import (config_file_options, label_options, manifests_and_store, overrides, registry_choice,
                                 valid_speakers_option)
from sertool.cli.train import setting_options
from sertool.io.report import RunReport


@click.command()
@click.argument("inputs", nargs=-1, metavar="MANIFEST... STORE", type=click.Path(dir_okay=False))
@click.option("-m", "--model", default="light_sernet", show_default=True, type=registry_choice("model"),
              help="Model of every run (svm / logreg on egemaps_functionals are fast).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder of the matrix and its runs.")
@click.option("--folds", default=4, show_default=True, help="Diagonal: speaker folds within each corpus.")
@valid_speakers_option("Training speakers held out (per training corpus) to choose the epoch (or C): a count, "
                       "or a share of each corpus's training files below 1.")
@label_options
@click.option("--target", "targets", multiple=True, metavar="COLUMN",
              help="Regression: every run learns this numeric column (each manifest has it, same scale); "
                   "repeatable or comma-separated. Cells hold the mean CCC over the targets.")
@config_file_options("TOML with [model] and [train] tables (see sertool train --print-config).",
                     "Model config value; repeatable.")
@click.option("--recipe", default="default", show_default=True, type=registry_choice("recipe"),
              help="Training recipe of the model.")
@setting_options
def crosscorpus(inputs, model, output, folds, valid_speakers, label_set, label_map, targets, config_file, sets,
                recipe, betas, **settings):
    """Train and score a cross-corpus matrix over the corpora of the MANIFESTs (rows: training corpus,
    columns: test corpus), STORE holding every row (`sertool store merge`). With --target, a matrix of
    regression runs whose cells hold CCC.

    Off the diagonal: a model trained on all of the row's corpus, scored on
    all of the column's. Diagonal: --folds speaker cross-validation within
    the corpus. Row "all others": leave one corpus out. Each cell: UA over
    the classes both sets share (probabilities renormalised over them) with a
    95 % bootstrap interval, N, classes, ECE. Writes OUT/matrix.csv,
    matrix.md (also on stdout), matrix.png and OUT/runs/ (a rerun resumes:
    finished folds are not retrained). Train options apply to every run.
    """
    manifests, store = manifests_and_store(inputs, output)
    sigterm_exits()
    start = time.monotonic()
    result = api.crosscorpus(manifests, store, output=output, model=model, folds=folds,
                             valid_speakers=valid_speakers, recipe=recipe,
                             settings={**overrides((), settings), **(betas or {})}, model_settings=overrides(sets),
                             config=config_file, labels=label_set, label_map=list(label_map) or None,
                             targets=list(targets) or None, log=log)
    click.echo((result.out_dir / "matrix.md").read_text(), nl=False)
    report = RunReport()
    report.done(result.trained)
    report.skip(result.skipped)
    log(report.line(f"crosscorpus {model}", done="fold(s) trained", skipped="finished before", target=output,
                    seconds=time.monotonic() - start) + " (matrix.csv, matrix.md, matrix.png)")
