"""The ``sertool`` command line: a Click group whose commands call the library.

Kept import-light: heavy modules are imported inside command bodies, so
``sertool --help`` returns at once. Every :class:`SertoolError` becomes
``Error: <message>`` on stderr with exit code 1 (``--debug`` shows the
traceback); usage errors exit 2; a run with more failed files than
``--max-failures`` exits 3; Ctrl-C exits 130 after saving finished work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from sertool import __version__
from sertool.errors import SertoolError

MAX_FAILURES_HELP = "Failed files tolerated before the exit code becomes 3."


class SertoolGroup(click.Group):
    """Turns library errors into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SertoolError as exc:
            if ctx.params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # `| head` closed stdout early: normal in a pipeline, exit quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as exc:  # outputs: read-only folder, full disk, a directory where a file goes
            if ctx.params.get("debug"):
                raise
            where = exc.filename or "an output file"
            click.echo(f"Error: {where}: {exc.strerror or exc}; check the path, its permissions and the free disk "
                       "space (finished work is kept)", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            click.echo("Interrupted: finished work is saved; rerun the same command to continue.", err=True)
            ctx.exit(130)
        except SystemExit as exc:
            if exc.code == 143:  # SIGTERM, turned into SystemExit by the long-running commands
                click.echo("Terminated: finished work is saved; rerun the same command to continue.", err=True)
            raise


@click.group(cls=SertoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sertool")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Speech emotion recognition: prepare corpora, extract features, train, evaluate, predict."""


def _log(message: str) -> None:
    click.echo(message, err=True)


def _log_warnings(report, shown: int = 5) -> None:
    """The first ``shown`` warnings of ``report`` on stderr, and where the rest are."""
    for warning in report.warnings[:shown]:
        _log(f"  warning: {warning.error}")
    if report.warnings:
        more = f"{len(report.warnings) - shown} more not shown" if len(report.warnings) > shown else "all shown"
        where = f", listed in {report.warnings_path}" if report.warnings_path else ""
        _log(f"  {len(report.warnings)} warning(s) ({more}{where})")


def _sigterm_exits() -> None:
    """SIGTERM raises SystemExit(143), so a long command ends with the group's clean "Terminated" line.

    Everything these commands finish is already durable (atomic state files, flushed CSV rows).
    """
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class _LazyChoice(click.Choice):
    """A Choice whose values come from a registry, read only when the option is parsed or shown."""

    def __init__(self, values):
        self._values = values
        super().__init__([])

    @property
    def choices(self):
        return tuple(self._values())

    @choices.setter
    def choices(self, value):
        pass


def _model_names():
    from sertool.models import model_names

    return model_names()


def _protocols():
    from sertool.training.splits import PROTOCOLS

    return PROTOCOLS


def _corpora():
    from sertool.corpora import PREPARERS

    return sorted(PREPARERS)


# --------------------------------------------------------------------------- prepare
@cli.command()
@click.argument("corpus", type=_LazyChoice(_corpora))
@click.argument("corpus_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Manifest CSV to write.")
@click.option("--label-set", default=None, help="iemocap: 4 (default; happy+excited), 4-noexc, 6 or all.")
@click.option("--subset", default=None, help="iemocap: all (default), improvised or scripted.")
@click.option("--no-labels", is_flag=True, help="folder: list every audio file, unlabelled (for predict).")
@click.option("--speaker-regex", default=None,
              help="folder: regex on the relative path whose first group is the speaker.")
@click.option("--speakers", default=None, help="Keep only these speakers (comma-separated).")
@click.option("--per-speaker", type=click.IntRange(1), default=None,
              help="Keep N evenly spaced utterances per speaker (a quick subset for smoke tests).")
@click.option("--vad-split", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Cut each recording into its speech regions (Silero VAD): one FLAC per region in DIR, one row "
                   "each, with parent_id, start and end columns (pip install 'sertool[vad]').")
@click.option("--max-failures", default=0, show_default=True, help=MAX_FAILURES_HELP)
@click.pass_context
def prepare(ctx, corpus, corpus_dir, output, label_set, subset, no_labels, speaker_regex, speakers, per_speaker,
            vad_split, max_failures):
    """Scan a corpus folder and write a manifest CSV (one row per utterance).

    \b
    CORPUS layouts:
      ravdess  DIR/Actor_XX/MM-VV-EE-II-SS-RR-AA.wav|flac (speech only)
      emodb    DIR/wav/SSTTTEV.wav|flac
      iemocap  DIR/SessionN/dialog/EmoEvaluation/*.txt + sentences/wav/
      folder   DIR/<label>/**/*.wav|flac|ogg|mp3 (or --no-labels)
    Paths in the CSV are relative to the CSV's folder. Unreadable audio files
    are listed in <output stem>.failures.csv and left out.
    """
    from sertool.corpora import prepare_manifest
    from sertool.errors import ConfigError

    start = time.monotonic()
    try:
        result = prepare_manifest(corpus, corpus_dir, output=output, label_set=label_set, subset=subset,
                                  labels=False if no_labels else None, speaker_regex=speaker_regex,
                                  speakers=speakers.split(",") if speakers else None, per_speaker=per_speaker,
                                  max_failures=max_failures, vad_split=vad_split)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    report, out, labels = result.report, result.manifest, result.label_counts()
    _log(f"prepare {corpus}: {len(result.rows)} utterances, {len(result.speakers)} speakers, {len(labels)} labels "
         f"-> {out} ({time.monotonic() - start:.1f} s)")
    _log("  " + ", ".join(f"{label or '(none)'} {n}" for label, n in labels.items()))
    if report.skipped:
        _log(f"  {report.skipped} utterances outside the label set/subset left out")
    if report.failed:
        _log(f"  {report.failed} unreadable files left out, see {result.failures_path}")
    ctx.exit(report.exit_code())


# --------------------------------------------------------------------------- extract
_CONFIG_OPTIONS = {  # CLI option -> config field
    "sample_rate": int, "win_ms": float, "hop_ms": float, "n_fft": int, "window": str, "n_mels": int,
    "fmin": float, "fmax": float, "n_mfcc": int, "delta_order": int, "log": str, "log_offset": float,
}


def _config_options(func):
    helps = {
        "sample_rate": "Resample audio to this rate (Hz).", "win_ms": "Window length (ms).",
        "hop_ms": "Hop between frames (ms).", "n_fft": "FFT size (samples).",
        "window": "Window type: hann, hamming, blackman, boxcar, bartlett.", "n_mels": "Mel bands.",
        "fmin": "Lowest mel frequency (Hz).", "fmax": "Highest mel frequency (Hz; 0 = Nyquist).",
        "n_mfcc": "Cepstral coefficients.", "delta_order": "0, 1 (+deltas) or 2 (+delta-deltas).",
        "log": "db (10 log10, librosa) or ln (natural log + offset).", "log_offset": "Offset inside ln().",
    }
    for name in reversed(list(_CONFIG_OPTIONS)):
        func = click.option(f"--{name.replace('_', '-')}", name, type=_CONFIG_OPTIONS[name], default=None,
                            help=helps[name])(func)
    return func


def _overrides(config_file, sets, options) -> dict:
    from sertool.configs import load_toml, parse_assignments

    overrides = load_toml(config_file) if config_file else {}
    overrides.update(parse_assignments(sets))
    overrides.update({k: v for k, v in options.items() if v is not None})
    return overrides


@cli.command()
@click.argument("manifest", required=False, type=click.Path(dir_okay=False))
@click.option("-f", "--features", "feature_set", default=None, help="Feature set (see --list-features).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Folder for the store.")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file of config values (see --print-config).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config value; repeatable.")
@_config_options
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786): its workers compute, this process writes the store "
                   "(pip install 'sertool[dask]').")
@click.option("--shard", default=None, metavar="K/N",
              help="Extract only rows K, K+N, K+2N, ... (K from 0) into <store>.shard-K-of-N.h5, one batch job per "
                   "shard; a later run without --shard (or `sertool store merge`) copies the shards in.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1),
              help="Processes computing features: the main one (which also writes) and N-1 workers.")
@click.option("--overwrite", is_flag=True, help="Recompute everything into a fresh store.")
@click.option("--max-failures", default=0, show_default=True, help=MAX_FAILURES_HELP)
@click.option("--print-config", "print_config", metavar="NAME", default=None,
              help="Print the config of feature set NAME as TOML and exit.")
@click.option("--list-features", is_flag=True, help="List the feature sets and exit.")
@click.option("--export-csv", type=click.Path(dir_okay=False), default=None,
              help="Also write utterance-level features as CSV (id, label, speaker, named columns).")
@click.option("--checkpoint-every", "checkpoint_seconds", default=30.0, show_default=True, metavar="SECONDS",
              help="Make finished work durable this often (a kill -9 loses at most this much).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.pass_context
def extract(ctx, manifest, feature_set, out_dir, config_file, sets, scheduler, shard, jobs, overwrite, max_failures,
            print_config, list_features, export_csv, checkpoint_seconds, progress, **options):
    """Compute features for every row of MANIFEST into an HDF5 store in --output.

    The store is named <manifest>.<features>-<config hash>.h5; its path is
    printed on stdout. Files unchanged since the last run are skipped; a
    changed config writes a new store. Config values come from the feature
    set's defaults, then --config, then --set and the options below.
    """
    if list_features:
        from sertool.features import PRESETS

        for name, preset in sorted(PRESETS.items()):
            click.echo(f"{name:24s} {preset.description}")
        return
    if print_config:
        from sertool.features import build_config

        click.echo(build_config(print_config, _overrides(config_file, sets, options)).to_toml(), nl=False)
        return
    missing = [n for n, v in (("MANIFEST", manifest), ("--features", feature_set), ("--output", out_dir)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    import os

    from sertool.extraction.pipeline import extract_manifest, summary
    from sertool.runtime.process import SINGLE_THREAD_ENV, tune_allocator

    for key, value in SINGLE_THREAD_ENV.items():  # before numpy loads BLAS; --jobs sets the cores
        os.environ.setdefault(key, value)
    tune_allocator()
    from sertool.store.core import parse_shard

    start = time.monotonic()
    result = extract_manifest(manifest, feature_set=feature_set, out_dir=out_dir, jobs=jobs,
                              overrides=_overrides(config_file, sets, options), overwrite=overwrite,
                              max_failures=max_failures, progress=progress,
                              checkpoint_seconds=checkpoint_seconds, shard=parse_shard(shard) if shard else None,
                              scheduler=scheduler)
    report = result.report
    _log(summary(feature_set, report, result.store_path, time.monotonic() - start))
    if result.merged:
        _log(f"  {result.merged} entries copied from the --shard stores beside it (they can be deleted now)")
    if result.failures_path:
        _log(f"  failures listed in {result.failures_path}")
    _log_warnings(report)
    if not result.store_path.exists():
        _log("  no store written: every file failed")
        ctx.exit(report.exit_code())
    if export_csv:
        from sertool.extraction.pipeline import export_csv as write_csv

        rows = write_csv(result.store_path, manifest, export_csv)
        _log(f"  {rows} rows -> {export_csv}")
    click.echo(str(result.store_path))
    ctx.exit(report.exit_code())


# --------------------------------------------------------------------------- store
@cli.group()
def store():
    """Look at and combine feature stores."""


@store.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The store to write (or add to).")
def store_merge(shards, output):
    """Merge stores of one feature config (e.g. `extract --shard K/N` outputs) into one store."""
    from sertool.store.core import merge_files

    start = time.monotonic()
    copied = merge_files(list(shards), output)
    _log(f"store merge: {copied} entries from {len(shards)} store(s) -> {output} ({time.monotonic() - start:.1f} s)")


@store.command("describe")
@click.argument("stores", nargs=-1, required=True, type=click.Path(dir_okay=False))
def store_describe(stores):
    """Config, entry count and the first entries' shapes of each store."""
    from sertool.store.core import describe

    for path in stores:
        click.echo(describe(path))


# --------------------------------------------------------------------------- train
def _split_floats(ctx, param, value):
    if value is None:
        return None
    values = _floats(value, "--betas", 2)
    return {"beta1": values[0], "beta2": values[1]}


@cli.command()
@click.argument("manifest", required=False, type=click.Path(dir_okay=False))
@click.argument("store", required=False, type=click.Path(dir_okay=False))
@click.option("-m", "--model", "model_name", default="light_sernet", show_default=True,
              type=_LazyChoice(_model_names), help="Model (frame-level networks, or svm / logreg / mlp on "
              "utterance-level stores).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Run folder.")
@click.option("-p", "--protocol", default="speaker-kfold", show_default=True,
              type=_LazyChoice(_protocols))
@click.option("--folds", default=5, show_default=True, help="speaker-kfold: number of folds.")
@click.option("--fold", type=int, default=None, help="Train only this fold (0-based).")
@click.option("--valid-speakers", default=2, show_default=True,
              help="Training speakers held out per fold to choose the epoch (or C).")
@click.option("--test-speakers", default=None, help="holdout: comma-separated test speakers.")
@click.option("--split-column", default="split", show_default=True, help="column: manifest column to split by.")
@click.option("--utterance-store", type=click.Path(dir_okay=False), default=None,
              help="Utterance-level store (e.g. a speaker embedding) appended after MSCNN-SPU's pooling.")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML with [model] and [train] tables (see --print-config).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Model config value; repeatable.")
@click.option("--recipe", default="default", show_default=True, type=click.Choice(["default", "paper"]),
              help="Training recipe of the model: sertool's measured default, or the paper's own setting.")
@click.option("--norm", type=click.Choice(["global", "speaker", "utterance"]), default=None,
              help="Feature normalisation: training-set statistics, each speaker's own, or each utterance's own "
                   "(default: the recipe's; see README).")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["adamw", "adam", "sgd"]), default=None)
@click.option("--betas", callback=_split_floats, default=None, metavar="B1,B2", help="Adam/AdamW betas.")
@click.option("--weight-decay", type=float, default=None)
@click.option("--schedule", type=click.Choice(["onecycle", "cosine", "step", "constant"]), default=None,
              help="Learning-rate schedule.")
@click.option("--warmup-epochs", type=int, default=None, help="cosine: linear warm-up epochs.")
@click.option("--patience", type=int, default=None, help="Epochs without a better valid UA before stopping (0: never).")
@click.option("--loss", type=click.Choice(["ce", "focal"]), default=None)
@click.option("--label-smoothing", type=float, default=None)
@click.option("--mixup", type=float, default=None, metavar="ALPHA", help="Mixup with Beta(ALPHA, ALPHA); 0 = off.")
@click.option("--balance", type=click.Choice(["none", "loss", "sampler"]), default=None,
              help="Class balance: none, class-weighted loss, or class-balanced sampling.")
@click.option("--selection", type=click.Choice(["best", "average", "last"]), default=None,
              help="checkpoint.pt: best-validation epoch, mean weights of the last --average-last epochs, or last.")
@click.option("--average-last", type=int, default=None, help="Epochs averaged for --selection average.")
@click.option("--seed", type=int, default=None)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None)
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: all cores).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="Training steps in float32 or under bfloat16 autocast; auto (default): bf16 where the device "
                   "has native bf16 (CUDA, CPUs with AVX512-BF16/AMX), else fp32.")
@click.option("--augment/--no-augment", "specaugment", default=None,
              help="SpecAugment on the fly (time and feature masks; no files written). On in the default recipes "
                   "of frame-level models.")
@click.option("--random-crop/--no-random-crop", "random_crop", default=None,
              help="Random input-length crops of longer training clips (fixed-length models).")
@click.option("--print-config", "print_config", is_flag=True,
              help="Print --model's config and its --recipe's train config as TOML and exit.")
@click.pass_context
def train(ctx, manifest, store, model_name, out_dir, protocol, folds, fold, valid_speakers, test_speakers,
          split_column, utterance_store, config_file, sets, recipe, print_config, betas, **train_options):
    """Train a model on MANIFEST with features from STORE, one model per fold.

    The epoch (or C) is chosen on validation speakers drawn from each fold's
    training speakers; global normalisation is fit on training data only.
    Writes RUN_DIR/fold-<i>/{checkpoint.pt, train_log.csv, split.csv,
    config.json}; a rerun resumes from the last finished epoch. Settings
    come from TrainConfig's defaults, the model's --recipe, --config, then
    the options.
    """
    from sertool.configs import parse_assignments, to_toml_table

    from sertool.training.trainer import load_train_toml

    model_overrides, train_overrides = load_train_toml(config_file) if config_file else ({}, {})
    model_overrides.update(parse_assignments(sets))
    train_overrides.update({k: v for k, v in train_options.items() if v is not None})
    train_overrides.update(betas or {})
    from sertool.models import build_model_config, model_spec
    from sertool.training.trainer import build_train_config, train_run

    train_config = build_train_config(train_overrides, model_name=model_name, recipe=recipe)
    _sigterm_exits()
    if print_config:
        spec = model_spec(model_name)
        click.echo(f"# {model_name}: {spec.level}-level features, expects --features {spec.features}; "
                   f"recipe {recipe}")
        for title, config in (("model", build_model_config(model_name, model_overrides)), ("train", train_config)):
            click.echo(f"[{title}]\n{to_toml_table(config)}")
        return
    missing = [n for n, v in (("MANIFEST", manifest), ("STORE", store), ("--output", out_dir)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    start = time.monotonic()
    from sertool.training import distributed

    try:
        results = train_run(manifest, store, model_name=model_name, out_dir=out_dir, protocol=protocol,
                            folds=folds, fold=fold, valid_speakers=valid_speakers,
                            test_speakers=test_speakers.split(",") if test_speakers else None,
                            split_column=split_column, model_overrides=model_overrides,
                            utterance_store=utterance_store, train_config=train_config, log=_log)
    finally:
        distributed.stop()
    if not distributed.world().is_main:  # under torchrun, rank 0 reports
        return
    for r in results:
        _log(f"  fold {r.fold.index}: valid UA {r.valid_ua:.3f} (best epoch {r.best_epoch} "
             f"of {r.epochs_run}){' (already done)' if r.skipped else f', {r.seconds:.0f} s'}")
    from sertool.io.report import RunReport

    report = RunReport()
    report.done(sum(not r.skipped for r in results))
    report.skip(sum(r.skipped for r in results))
    _log(report.line(f"train {model_name}", done="fold(s) trained", skipped="finished before", target=out_dir,
                     seconds=time.monotonic() - start) + f"; next: sertool evaluate {out_dir}")


# --------------------------------------------------------------------------- evaluate
@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("manifest", required=False, type=click.Path(dir_okay=False))
@click.argument("store", required=False, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Folder for the results (default RUN_DIR).")
@click.option("--selection", type=click.Choice(["best", "average", "last"]), default=None,
              help="Score fold-*/checkpoint-<SELECTION>.pt instead of checkpoint.pt (to compare selections).")
@click.option("--on", "cross", nargs=2, type=click.Path(dir_okay=False), default=None, metavar="MANIFEST STORE",
              help="Cross-corpus: score every fold's model on all utterances of another corpus (default output "
                   "RUN_DIR/cross-<manifest>).")
@click.option("--label-map", type=click.Path(dir_okay=False, exists=True), default=None,
              help="--on: CSV of 'from,to' rows mapping the other corpus's labels to the model's.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.pass_context
def evaluate(ctx, run_dir, manifest, store, out_dir, selection, cross, label_map, device):
    """Score each fold of RUN_DIR on its test speakers: WA, UA, macro-F1, confusion.

    MANIFEST and STORE default to those the run was trained on. Writes
    metrics.csv, confusion.csv, predictions.csv, confusion.png and
    training_curves.png. With --on, every fold's model scores another corpus.
    """
    from sertool.scoring.evaluate import evaluate_cross_corpus, evaluate_run, read_label_map, summary_table

    if bool(manifest) != bool(store):
        raise click.UsageError("give both MANIFEST and STORE, or neither")
    if label_map and not cross:
        raise click.UsageError("--label-map goes with --on MANIFEST STORE")
    if cross:
        result = evaluate_cross_corpus(run_dir, cross[0], cross[1], out_dir=out_dir, selection=selection, log=_log,
                                       label_map=read_label_map(label_map) if label_map else None)
    else:
        result = evaluate_run(run_dir, manifest, store, out_dir=out_dir, selection=selection, log=_log, device=device)
    _log(summary_table(result))
    from sertool.io.report import RunReport

    report = RunReport()
    report.done(len([k for k in result.folds if k not in ("pooled", "mean", "std")]))
    _log(report.line("evaluate", done="fold(s) scored", skipped="skipped", target=result.out_dir)
         + " (metrics.csv, confusion.csv, predictions.csv, confusion.png, confusion_folds.png)")


# --------------------------------------------------------------------------- compare
@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Also write the table: .md for Markdown, anything else CSV.")
def compare(runs, output):
    """One table of evaluated RUNS: pooled scores with 95 % intervals, fold mean and std, and each run's
    paired-bootstrap UA difference to the first run (when they scored the same test utterances)."""
    from sertool.scoring.compare import compare_runs, markdown, write_csv

    rows = compare_runs(list(runs))
    table = markdown(rows)
    click.echo(table)
    if output:
        if str(output).endswith(".md"):
            Path(output).write_text(table + "\n")
        else:
            write_csv(rows, output)
        _log(f"compare: {len(rows)} runs -> {output}")


# --------------------------------------------------------------------------- fuse
@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the fused run.")
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="One weight per run (normalised to sum 1); default: fitted per fold on its validation speakers.")
@click.option("--grid-step", default=0.1, show_default=True, type=float,
              help="Step of the weight grid searched on the validation speakers.")
def fuse(runs, out_dir, weights, grid_step):
    """Late fusion of RUNS trained on the same folds: weighted mean of their class probabilities.

    Writes OUT/run.json and OUT/fold-<i>/{checkpoint.pt, split.csv}; then
    `sertool evaluate OUT` and `sertool predict OUT/fold-<i>/checkpoint.pt`
    work as for any run (each member computes its own features).
    """
    from sertool.scoring.fuse import fuse_runs

    start = time.monotonic()
    result = fuse_runs(list(runs), out_dir, weights=_floats(weights, "--weights") if weights else None,
                       grid_step=grid_step, log=_log)
    _log(f"fuse: {len(runs)} runs, {len(result.weights)} fold(s) -> {out_dir} ({time.monotonic() - start:.0f} s); "
         f"next: sertool evaluate {out_dir}")


# --------------------------------------------------------------------------- predict
#: The keys of :data:`sertool.io.audio.PCM_FORMATS`, without importing numpy for --help (tests/test_stream.py).
RAW_PCM_FORMATS = ("s16le", "s32le", "f32le")


def _raw_pcm_options(prefix: str, default: str):
    """``--rate``, ``--format``, ``--channels``: stdin as raw PCM (``prefix`` opens each help text)."""
    options = [
        click.option("--rate", type=click.IntRange(1), default=None,
                     help=f"{prefix}stdin is raw PCM at this rate in Hz (default: a {default})."),
        click.option("--format", "pcm_format", type=click.Choice(RAW_PCM_FORMATS), default="s16le",
                     show_default=True, help=f"{prefix}with --rate: the raw PCM sample format."),
        click.option("--channels", type=click.IntRange(1), default=1, show_default=True,
                     help=f"{prefix}with --rate: interleaved channels (mixed to mono)."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-m", "--model", "checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint or exported model (.onnx, TorchScript .pt) to score with, or a bundled model: "
                   "'default' (the default; scores any file) or 'speaker' (speaker-normalised). A first INPUT "
                   "ending in .pt or .onnx is taken as the model too.")
@click.option("-o", "--output", default="-", show_default=True, help="CSV file, or - for stdout.")
@click.option("--window", "window_s", type=float, default=None,
              help="Window length in seconds for long files (default: the model's input length).")
@click.option("--hop", "hop_s", type=float, default=None, help="Hop between windows in seconds (default: window / 2).")
@click.option("--crop-tolerance", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Without --window: clips up to (1 + this) x the model's input length are one window the model "
                   "centre-crops, as in training; longer files are windowed.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Windows per forward pass (peak memory grows with it).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--segments", is_flag=True, help="One row per window, with start/end times, instead of one per file.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1),
              help="Processes: jobs - 1 workers decode and compute features while this one runs the model.")
@click.option("--vad", is_flag=True,
              help="Score only the speech regions Silero VAD finds (with --segments: one row per region); "
                   "pip install 'sertool[vad]'.")
@_raw_pcm_options("INPUT - only: ", "WAV/FLAC/OGG stream")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Keep rows of files already scored in the output and score only the rest.")
@click.option("--speaker-regex", default=None,
              help="Speaker-normalised models: regex on each file's path whose first group is the speaker "
                   "(manifest inputs use their speaker column).")
@click.option("--trust-code", is_flag=True,
              help="Allow a checkpoint whose features import a Python function or load a TorchScript/ONNX file, "
                   "or a TorchScript export (a TorchScript program).")
@click.option("--max-failures", default=0, show_default=True, help=MAX_FAILURES_HELP)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.pass_context
def predict(ctx, inputs, checkpoint, output, window_s, hop_s, crop_tolerance, batch_size, device, segments, jobs, vad,
            rate, pcm_format, channels, resume, speaker_regex, trust_code, max_failures, progress):
    """Score INPUTS (audio files, folders, or manifest CSVs) with a trained model.

    Columns: path, predicted, confidence, p_<class>..., duration, error.
    INPUT - reads one recording from stdin (WAV/FLAC/OGG, or raw PCM with
    --rate), e.g. `ffmpeg -i talk.mp4 -f wav - | sertool predict - -o -`.
    Features are rebuilt from the checkpoint's config. Unreadable files get
    a row with the error; the rest are scored. Both `sertool predict
    CHECKPOINT.pt FILES...` and `sertool predict FILES... --model CKPT` work;
    with neither, the bundled RAVDESS model is used (see its model card).
    """
    import os

    # numpy's OpenBLAS (small feature products) gets one thread: its spinning idle threads took the cores
    # from torch's and made predict 2.4x slower. torch's own thread pool is left alone.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if checkpoint is None and inputs[0].endswith((".pt", ".onnx")):
        checkpoint, inputs = inputs[0], inputs[1:]
        if not inputs:
            raise click.UsageError("no INPUT to score after the checkpoint")
    from sertool.inference.predict import checkpoint_path, predict_files

    checkpoint = checkpoint_path(checkpoint or "default")
    stdin = None
    if "-" in inputs:  # audio on standard input: read it all, score it like a file named "-"
        from sertool.io.audio import decode_bytes
        from sertool.inference.predict import Clip

        samples, sample_rate = decode_bytes(sys.stdin.buffer.read(), rate=rate, fmt=pcm_format, channels=channels)
        stdin = Clip(samples, sample_rate, "-")
        resume = resume and output != "-"
    elif rate is not None:
        raise click.UsageError("--rate describes raw PCM on stdin: use it with INPUT -")

    _sigterm_exits()
    start = time.monotonic()
    report = predict_files(checkpoint, inputs, output, window_s=window_s, hop_s=hop_s, segments=segments,
                           resume=resume, max_failures=max_failures, speaker_regex=speaker_regex,
                           trust_code=trust_code, progress=progress, crop_tolerance=crop_tolerance,
                           batch_size=batch_size, device=device, stdin=stdin, vad=vad, jobs=jobs)
    where = "stdout" if output == "-" else output
    _log(report.line("predict", done="scored", skipped=f"already in {where}", target=where,
                     seconds=time.monotonic() - start))
    _log_warnings(report)
    ctx.exit(report.exit_code())


# --------------------------------------------------------------------------- stream
@cli.command()
@click.option("-m", "--model", "checkpoint", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint or exported model, or a bundled one ('default'); not speaker-normalised or fused.")
@click.option("-o", "--output", default="-", show_default=True,
              help="CSV file (must not exist yet), or - for stdout.")
@click.option("--window", "window_s", type=click.FloatRange(0, min_open=True), default=None,
              help="Window in seconds (default: the model's input length; 3 s for utterance-level models).")
@click.option("--hop", "hop_s", type=click.FloatRange(0, min_open=True), default=None,
              help="Hop between windows in seconds (default: window / 2).")
@_raw_pcm_options("", "WAV stream, e.g. from arecord or ffmpeg")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--trust-code", is_flag=True, help="Allow a checkpoint whose features run code, or a TorchScript export.")
def stream(checkpoint, output, window_s, hop_s, rate, pcm_format, channels, device, trust_code):
    """Score a live stream on stdin: one CSV row per window, written as soon as the window's audio is in.

    `arecord -f S16_LE -r 16000 -c 1 | sertool stream` scores a microphone;
    `ffmpeg -i talk.mp4 -f wav - | sertool stream -o talk.csv` a file as it
    decodes. Columns are those of `predict --segments`, with duration the
    audio received so far. For the bundled model (features that need only
    past audio) the rows equal `predict --segments --crop-tolerance 0` of
    the same recording (and plain --segments beyond 1.5 windows).
    """
    import os

    from sertool.inference.predict import checkpoint_path
    from sertool.runtime.process import blas_threads
    from sertool.inference.stream import NewFile, raw_format, stream_scores

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pcm = raw_format(rate, pcm_format, channels) if rate is not None else None
    if sys.stdin.isatty():
        raise click.UsageError("stream reads audio from stdin: pipe it in, e.g. "
                               "`arecord -f S16_LE -r 16000 -c 1 | sertool stream`")
    if output != "-" and Path(output).exists():
        raise click.UsageError(f"{output} exists; choose another -o or remove it (stream never overwrites rows)")
    _sigterm_exits()
    start = time.monotonic()
    out = sys.stdout if output == "-" else NewFile(output)  # created with the header, after the checks
    try:
        with blas_threads(1):
            result = stream_scores(checkpoint_path(checkpoint or "default"), sys.stdin.buffer, out,
                                   window_s=window_s, hop_s=hop_s, pcm=pcm, device=device, trust_code=trust_code)
    except KeyboardInterrupt:
        _log(f"stream: stopped; the rows written so far are in {'stdout' if output == '-' else output}")
        raise SystemExit(130) from None
    finally:
        if out is not sys.stdout:
            out.close()
    how = "as the audio arrived" if result.incremental else "window by window"
    _log(f"stream: {result.windows} windows from {result.seconds:.1f} s of audio, scored {how} "
         f"({time.monotonic() - start:.1f} s)")


# --------------------------------------------------------------------------- export
@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="model.onnx (ONNX, scored by onnxruntime) or model.pt (TorchScript).")
def export(checkpoint, output):
    """Write CHECKPOINT (or a bundled model: 'default', 'speaker') as an ONNX or TorchScript model.

    The file holds the network and, inside it, sertool.json: feature config,
    labels and normalisation. The export is checked against the checkpoint
    on random inputs before it is kept; `sertool predict model.onnx FILES`
    scores with it. Needs the export extra: pip install 'sertool[export]'.
    """
    from sertool.inference.export import export_checkpoint
    from sertool.inference.predict import checkpoint_path

    start = time.monotonic()
    summary = export_checkpoint(checkpoint_path(checkpoint), output)
    _log(f"export: {summary['format']} model written to {output}; probabilities within "
         f"{summary['max_difference']:.1g} of the checkpoint on {len(summary['checked_inputs'])} random batches "
         f"({time.monotonic() - start:.1f} s)")


# --------------------------------------------------------------------------- augment
def _floats(text: str, option: str, count: int | None = None) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=option) from None
    if count and len(values) != count:
        raise click.BadParameter(f"{text!r}: expected {count} numbers", param_hint=option)
    return values


@cli.command()
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
@click.option("--rir-dir", type=click.Path(file_okay=False), help="Reverberate with random impulse responses from this folder.")
@click.option("--copies", default=1, show_default=True, type=click.IntRange(1),
              help="Files per utterance for --white-noise values, --noise-dir, --time-shift and --rir-dir.")
@click.option("--speakers", default=None, help="Only these speakers (comma-separated), e.g. the training speakers.")
@click.option("--split-column", default=None, help="Only rows whose COLUMN equals --split-value.")
@click.option("--split-value", default="train", show_default=True)
@click.option("--seed", default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--max-failures", default=0, show_default=True, help=MAX_FAILURES_HELP)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.pass_context
def augment(ctx, manifest, output, audio_dir, white_noise, noise_dir, snr_range, speed, pitch, gain, time_shift,
            rir_dir, copies, speakers, split_column, split_value, seed, max_failures, progress):
    """Write augmented copies of MANIFEST's utterances and a manifest that lists them.

    New rows get id <id>+<tag>, the source's speaker and label, and
    source_id = <id>, so training splits keep every copy with its source and
    evaluation never tests on a copy. Only originals are augmented.
    """
    from sertool.corpora.augment import augment_manifest, plan_augmentations

    chosen = plan_augmentations(white_noise=white_noise, noise_dir=noise_dir, snr_range=_floats(snr_range, "--snr-range", 2),
                                speed=speed, pitch=pitch, gain=gain, time_shift=time_shift, rir_dir=rir_dir,
                                copies=copies)
    start = time.monotonic()
    report = augment_manifest(manifest, output, audio_dir, chosen, seed=seed,
                              speakers=speakers.split(",") if speakers else None, split_column=split_column,
                              split_value=split_value, max_failures=max_failures, progress=progress)
    failures = report.failures_path
    _log(report.line("augment", done="files written", skipped="already there", target=output,
                     seconds=time.monotonic() - start) + (f"; see {failures}" if failures else ""))
    ctx.exit(report.exit_code())


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="sertool")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
