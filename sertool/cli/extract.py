"""``sertool extract``: features of every manifest row into an HDF5 store."""

from __future__ import annotations

import os
import time

import click

from sertool import api
from sertool.cli.app import log, log_warnings
from sertool.cli.options import (LazyChoice, config_file_options, jobs_option, max_failures_option, overrides,
                                 progress_option, trust_code_option)
from sertool.runtime.process import SINGLE_THREAD_ENV, tune_allocator

#: Feature config values with an option of their own: field -> (type, help).
CONFIG_OPTIONS = {
    "sample_rate": (int, "Resample audio to this rate (Hz)."), "win_ms": (float, "Window length (ms)."),
    "hop_ms": (float, "Hop between frames (ms)."), "n_fft": (int, "FFT size (samples)."),
    "window": (str, "Window type: hann, hamming, blackman, boxcar, bartlett."), "n_mels": (int, "Mel bands."),
    "fmin": (float, "Lowest mel frequency (Hz)."), "fmax": (float, "Highest mel frequency (Hz; 0 = Nyquist)."),
    "n_mfcc": (int, "Cepstral coefficients."), "delta_order": (int, "0, 1 (+deltas) or 2 (+delta-deltas)."),
    "log": (str, "db (10 log10, librosa) or ln (natural log + offset)."), "log_offset": (float, "Offset inside ln()."),
}


def config_value_options(command):
    """One ``--<field>`` option per :data:`CONFIG_OPTIONS` entry (None when not given)."""
    for name in reversed(list(CONFIG_OPTIONS)):
        kind, help_text = CONFIG_OPTIONS[name]
        command = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None, help=help_text)(command)
    return command


def _print_listing(list_features: bool, print_config: str | None, settings: dict, config_file) -> bool:
    """``--list-features`` / ``--print-config``: print and return True; else False."""
    if list_features:
        for name, description in api.feature_presets().items():
            click.echo(f"{name:24s} {description}")
    elif print_config:
        click.echo(api.feature_config(print_config, settings=settings, config=config_file).to_toml(), nl=False)
    return bool(list_features or print_config)


def _single_threaded_numpy() -> None:
    """One BLAS thread per process before numpy loads (``--jobs`` sets the cores); a leaner allocator."""
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    tune_allocator()


def _feature_choices() -> list[str]:
    """The feature presets, after the thread settings: listing them loads numpy (and its BLAS pool)."""
    _single_threaded_numpy()
    return api.feature_names()


@click.command()
@click.argument("manifest", required=False, type=click.Path(dir_okay=False))
@click.option("-f", "--features", type=LazyChoice(_feature_choices), default=None,
              help="Feature set (see --list-features).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for the store.")
@config_file_options("TOML file of config values (see --print-config).", "Any config value; repeatable.")
@config_value_options
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler (tcp://host:8786): its workers compute, this process writes the store "
                   "(pip install 'sertool[dask]').")
@click.option("--shard", default=None, metavar="K/N",
              help="Extract only rows K, K+N, K+2N, ... (K from 0) into <store>.shard-K-of-N.h5, one batch job per "
                   "shard; a later run without --shard (or `sertool store merge`) copies the shards in.")
@jobs_option("Processes computing features: the main one (which also writes) and N-1 workers.")
@click.option("--overwrite", is_flag=True, help="Recompute everything into a fresh store.")
@max_failures_option()
@click.option("--print-config", "print_config", metavar="NAME", type=LazyChoice(_feature_choices), default=None,
              help="Print the config of feature set NAME as TOML and exit.")
@click.option("--list-features", is_flag=True, help="List the feature sets and exit.")
@click.option("--export-csv", type=click.Path(dir_okay=False), default=None,
              help="Also write utterance-level features as CSV (id, label, speaker, named columns).")
@click.option("--checkpoint-every", "checkpoint_seconds", default=30.0, show_default=True, metavar="SECONDS",
              help="Make finished work durable this often (a kill -9 loses at most this much).")
@progress_option()
@trust_code_option()
@click.pass_context
def extract(ctx, manifest, features, output, config_file, sets, scheduler, shard, jobs, overwrite, max_failures,
            print_config, list_features, export_csv, checkpoint_seconds, progress, trust_code, **options):
    """Compute features for every row of MANIFEST into an HDF5 store in --output.

    The store is named <manifest>.<features>-<config hash>.h5 (with a tag of
    the manifest's path, <manifest>-<tag>.<features>-<config hash>.h5, when
    another manifest of that name already has a store in --output); its path
    is printed on stdout. Files unchanged since the last run are skipped; a
    changed config writes a new store. Config values come from the feature
    set's defaults, then --config, then --set and the options below.
    """
    settings = overrides(sets, options)
    if _print_listing(list_features, print_config, settings, config_file):
        return
    missing = [n for n, v in (("MANIFEST", manifest), ("--features", features), ("--output", output)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    _single_threaded_numpy()  # before the run loads numpy (checking --features did it already; harmless twice)
    start = time.monotonic()
    result = api.extract(manifest, features=features, output=output, settings=settings, config=config_file,
                         jobs=jobs, overwrite=overwrite, max_failures=max_failures, progress=progress,
                         checkpoint_seconds=checkpoint_seconds, shard=shard, scheduler=scheduler,
                         export_csv=export_csv, trust_code=trust_code)
    _report(result, features, export_csv, time.monotonic() - start)
    if result.store_path.exists():
        click.echo(str(result.store_path))
    ctx.exit(result.report.exit_code())


def _report(result, features: str, export_csv: str | None, seconds: float) -> None:
    """The summary lines of an extract run on stderr."""
    from sertool.extraction.pipeline import summary  # loaded by the run already; kept off `sertool --help`

    log(summary(features, result.report, result.store_path, seconds))
    if result.note:
        log(f"  {result.note}")
    if result.merged:
        log(f"  {result.merged} entries copied from the --shard stores beside it (they can be deleted now)")
    if result.failures_path:
        log(f"  failures listed in {result.failures_path}")
    log_warnings(result.report)
    if not result.store_path.exists():
        log("  no store written: every file failed")
    elif export_csv:
        log(f"  {result.csv_rows} rows -> {export_csv}")
