"""``sertool train``: one model per fold of a speaker-independent protocol."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log, sigterm_exits
from sertool.cli.options import (comma_list, config_file_options, device_option, floats, label_options,
                                 manifests_and_store, overrides, registry_choice, train_choice,
                                 valid_speakers_option)
from sertool.io.report import RunReport
from sertool.training import distributed


def _betas(ctx, param, value):
    """``--betas B1,B2`` -> ``{"beta1": B1, "beta2": B2}``."""
    if value is None:
        return None
    beta1, beta2 = floats(value, "--betas", 2)
    return {"beta1": beta1, "beta2": beta2}


#: TrainConfig settings with an option of their own, in --help order: (option declaration, keyword arguments).
SETTING_OPTIONS = [
    (("--norm",), dict(type=train_choice("norm"), help="Feature normalisation: global (training statistics), "
                       "speaker (each speaker's own), utterance (each utterance's own) or set (each corpus's own; "
                       "at predict, the scored files' own) (default: the recipe's; see the README's normalisation "
                       "guide).")),
    (("--epochs",), dict(type=int)),
    (("--batch-size",), dict(type=int)),
    (("--lr",), dict(type=float, help="Peak learning rate.")),
    (("--optimizer",), dict(type=train_choice("optimizer"))),
    (("--weight-decay",), dict(type=float)),
    (("--schedule",), dict(type=train_choice("schedule"), help="Learning-rate schedule.")),
    (("--warmup-epochs",), dict(type=int, help="cosine: linear warm-up epochs.")),
    (("--patience",), dict(type=int, help="Epochs without a better valid UA before stopping (0: never).")),
    (("--loss",), dict(type=train_choice("loss"))),
    (("--label-smoothing",), dict(type=float)),
    (("--mixup",), dict(type=float, metavar="ALPHA", help="Mixup with Beta(ALPHA, ALPHA); 0 = off.")),
    (("--balance",), dict(type=train_choice("balance"),
                          help="Class balance: none, class-weighted loss, class-balanced sampling, or sampling "
                               "balanced per corpus and class (networks; default: the recipe's, none).")),
    (("--selection",), dict(type=train_choice("selection"), help="checkpoint.pt: best-validation epoch, mean "
                            "weights of the last --average-last epochs, or last.")),
    (("--average-last",), dict(type=int, help="Epochs averaged for --selection average.")),
    (("--seed",), dict(type=int)),
    (("--workers",), dict(type=int, help="DataLoader worker processes.")),
    (("--threads",), dict(type=int, help="torch CPU threads (default: all cores).")),
    (("--precision",), dict(type=train_choice("precision"), help="Training steps in float32 or under bfloat16 "
                            "autocast; auto (default): bf16 where the device has native bf16 (CUDA, CPUs with "
                            "AVX512-BF16/AMX), else fp32.")),
    (("--augment/--no-augment", "specaugment"), dict(help="SpecAugment on the fly (time and feature masks; no files "
                                                     "written). On in the default recipes of frame-level models.")),
    (("--random-crop/--no-random-crop", "random_crop"),
     dict(help="Random input-length crops of longer training clips (fixed-length models).")),
]


def setting_options(command):
    """The :data:`SETTING_OPTIONS` (each None when not given), then ``--betas`` and ``--device``."""
    command = device_option(default=None)(command)
    command = click.option("--betas", callback=_betas, default=None, metavar="B1,B2",
                           help="Adam/AdamW betas.")(command)
    for declaration, extra in reversed(SETTING_OPTIONS):
        command = click.option(*declaration, default=None, **extra)(command)
    return command


@click.command()
@click.argument("inputs", nargs=-1, metavar="MANIFEST... STORE", type=click.Path(dir_okay=False))
@click.option("-m", "--model", default="light_sernet", show_default=True, type=registry_choice("model"),
              help="Model (frame-level networks, or svm / logreg / mlp on utterance-level stores).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Run folder.")
@click.option("-p", "--protocol", default="speaker-kfold", show_default=True, type=registry_choice("protocol"))
@click.option("--folds", default=5, show_default=True, help="speaker-kfold: number of folds.")
@click.option("--fold", type=int, default=None, help="Train only this fold (0-based).")
@valid_speakers_option("Training speakers held out per fold to choose the epoch (or C): a count, or a share "
                       "of the training files below 1 (0.2: speakers holding about a fifth of them).")
@click.option("--test-speakers", default=None, help="holdout: comma-separated test speakers.")
@click.option("--split-column", default="split", show_default=True, help="column: manifest column to split by.")
@label_options
@click.option("--target", "targets", multiple=True, metavar="COLUMN",
              help="Regression: learn this numeric manifest column instead of the labels (e.g. arousal); repeatable "
                   "or comma-separated (--target arousal,valence,dominance). Models: networks, mlp, svr, ridge; "
                   "--loss ccc (default) or mse.")
@click.option("--utterance-store", type=click.Path(dir_okay=False), default=None,
              help="Utterance-level store (e.g. a speaker embedding) appended after MSCNN-SPU's pooling.")
@config_file_options("TOML with [model] and [train] tables (see --print-config).",
                     "Model config value; repeatable.")
@click.option("--recipe", default="default", show_default=True, type=registry_choice("recipe"),
              help="Training recipe of the model: sertool's measured default, or the paper's own setting.")
@setting_options
@click.option("--print-config", "print_config", is_flag=True,
              help="Print --model's config and its --recipe's train config as TOML and exit.")
def train(inputs, model, output, protocol, folds, fold, valid_speakers, test_speakers, split_column,
          label_set, label_map, targets, utterance_store, config_file, sets, recipe, print_config, betas,
          **settings):
    """Train a model on MANIFEST with features from STORE, one model per fold.

    Several manifests train together (multi-corpus): speakers become
    <corpus>:<speaker>, and STORE must hold every row (`sertool store merge`).

    The epoch (or C) is chosen on validation speakers drawn from each fold's
    training speakers; global normalisation is fit on training data only.
    Writes RUN_DIR/fold-<i>/{checkpoint.pt, train_log.csv, split.csv,
    config.json}; a rerun resumes from the last finished epoch. Settings
    come from TrainConfig's defaults, the model's --recipe, --config, then
    the options.
    """
    settings = {**overrides((), settings), **(betas or {})}
    model_settings = overrides(sets)
    if print_config:
        click.echo(api.train_setup(model, recipe=recipe, settings=settings, model_settings=model_settings,
                                   config=config_file, regression=bool(targets)).to_toml(), nl=False)
        return
    manifests, store = manifests_and_store(inputs, output)
    sigterm_exits()
    start = time.monotonic()
    results = api.train(manifests[0] if len(manifests) == 1 else manifests, store, output=output, model=model,
                        protocol=protocol, folds=folds, fold=fold,
                        valid_speakers=valid_speakers, test_speakers=comma_list(test_speakers),
                        split_column=split_column, recipe=recipe, settings=settings, model_settings=model_settings,
                        config=config_file, utterance_store=utterance_store, labels=label_set,
                        label_map=list(label_map) or None, targets=list(targets) or None, log=log)
    _report(results, model, output, time.monotonic() - start)


def _report(results: list, model: str, output: str, seconds: float) -> None:
    """Per-fold lines and the summary on stderr (under torchrun only rank 0 reports)."""
    if not distributed.world().is_main:
        return
    for r in results:
        log(f"  fold {r.fold.index}: valid {r.score_name} {r.valid_ua:.3f} (best epoch {r.best_epoch} "
            f"of {r.epochs_run}){' (already done)' if r.skipped else f', {r.seconds:.0f} s'}")
    report = RunReport()
    report.done(sum(not r.skipped for r in results))
    report.skip(sum(r.skipped for r in results))
    log(report.line(f"train {model}", done="fold(s) trained", skipped="finished before", target=output,
                    seconds=seconds) + f"; next: sertool evaluate {output}")
