"""``extract``: compute features for every utterance of a manifest into a store.

One process writes (:class:`~sertool.store.writer.StoreWriter`); it and, with
``jobs > 1``, ``jobs - 1`` worker processes decode audio and compute
features (:mod:`~sertool.extraction.local_backend`, or a Dask cluster:
:mod:`~sertool.extraction.dask_backend`). Utterances whose audio is
unchanged since they were stored (same size and mtime) are skipped.

A finished run leaves a stamp (:mod:`sertool.extraction.stamps`): a rerun
whose stamp matches returns after one ``stat`` per file, without importing
numpy, the feature classes or HDF5, so ``make`` can call ``extract`` on every
build for almost nothing. This module therefore imports the backends, the
store writer and the extractors only once files must be computed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sertool.errors import SertoolError
from sertool.extraction.stamps import (current_store, digest, failures_path_for, identities, remember_request,
                                       request_key, summary, write_stamp)
from sertool.io.atomic import atomic_write
from sertool.io.manifest import read_manifest
from sertool.io.progress import progress_bar
from sertool.io.report import RunReport
from sertool.store.identity import SourceIdentity

#: ``current_store``, ``failures_path_for`` and ``summary`` are re-exported for callers of this module.
__all__ = ["ExtractResult", "current_store", "export_csv", "extract_manifest", "failures_path_for", "summary"]


@dataclass
class ExtractResult:
    """Where the store is, and what this run did (``report.ok`` = newly extracted)."""

    store_path: Path
    report: RunReport
    failures_path: Path | None
    #: entries copied from ``--shard`` partial stores instead of computed
    merged: int = 0
    #: rows written by ``sertool.extract(..., export_csv=PATH)`` (None: no CSV asked for)
    csv_rows: int | None = None
    #: set when another manifest of the same file name holds the plain store name in the folder (see
    #: :mod:`sertool.store.naming`): says which store this manifest's features went to instead
    note: str | None = None


@dataclass
class _Plan:
    """Where one run writes, what it may copy instead of computing, and how it stamps the result."""

    path: Path
    #: ``--shard`` partial stores beside the store, whose entries for unchanged audio are copied
    shards: list[Path]
    #: the store existed before this run (so it is never deleted, even when every file fails)
    existed: bool
    #: the stamp's digest; None: this run leaves no stamp (a shard, or unreadable files)
    digest: str | None
    request: str
    config_hash: str
    #: why the store is not at its plain name (:func:`sertool.store.naming.owned_store_path`), or None
    note: str | None = None


@contextlib.contextmanager
def _sigterm_as_exit():
    """Record SIGTERM and SIGINT (in the main thread) and stop between work items, so finished work is committed.

    Yields a function to call between work items: it raises ``SystemExit(143)``
    after SIGTERM and ``KeyboardInterrupt`` after SIGINT. The handlers only
    record the signal: an exception raised inside a C callback (openSMILE
    delivers its results through ctypes callbacks), a weakref callback or
    ``__del__`` is ignored by Python, so Ctrl-C raised there was lost and
    extraction ran on to the end.
    """
    received: list[int] = []

    def check() -> None:
        if received:
            if received[0] == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + received[0])

    if threading.current_thread() is not threading.main_thread():
        yield check
        return

    def handler(signum, frame):
        received.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield check
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def export_csv(store, manifest, output) -> int:
    """Write an utterance-level store as CSV: id, label, speaker, then one named column per feature.

    Parameters
    ----------
    store
        The store (utterance level: one ``(1, dim)`` row per file).
    manifest
        The manifest whose rows to write, in order; utterances missing from
        the store (failed files) are left out.
    output
        The CSV file to write (atomically).

    Returns
    -------
    int
        The number of rows written.

    Raises
    ------
    SertoolError
        A frame-level store, or a store or manifest that cannot be read.
    """
    from sertool.store.reader import FeatureStore  # numpy, h5py: loaded only when a store is read

    with FeatureStore(store) as opened:
        if opened.attrs.get("level") != "utterance":
            raise SertoolError(f"{store}: --export-csv needs an utterance-level feature set "
                               "(e.g. egemaps_functionals or mfcc_stats), this one has one row per frame")
        names = opened.feature_names
        rows = 0
        output = Path(output)
        with atomic_write(output) as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "label", "speaker", *names])
            for utt in read_manifest(manifest):
                if utt.id in opened:
                    writer.writerow([utt.id, utt.label, utt.speaker, *(f"{v:.7g}" for v in opened[utt.id][0])])
                    rows += 1
    return rows


def extract_manifest(manifest: str | os.PathLike, *, features: str, output: str | os.PathLike,
                     settings: dict[str, Any] | None = None, jobs: int = 1, overwrite: bool = False,
                     max_failures: int = 0, progress: bool | None = None,
                     checkpoint_seconds: float = 30.0, shard: tuple[int, int] | None = None,
                     scheduler: str | None = None, trust_code: bool = False) -> ExtractResult:
    """Extract the feature preset ``features`` for every utterance of ``manifest`` into a store in ``output``.

    Parameters
    ----------
    manifest
        Manifest CSV (see :mod:`sertool.io.manifest`).
    features
        A preset name (``mfcc``, ``lightsernet_mfcc``, ...).
    output
        Folder of the store ``<manifest stem>.<features>-<hash8>.h5`` (``<manifest stem>-<tag>.<features>-
        <hash8>.h5`` when another manifest of the same file name holds that name: see
        :mod:`sertool.store.naming` and ``ExtractResult.note``).
    settings, trust_code
        Config values replacing the preset's defaults (``{"n_mfcc": 20}``); values that name code to run
        (:mod:`sertool.features.trust`) are refused (UntrustedCodeError) unless ``trust_code``.
    jobs
        Processes computing features: this one and ``jobs - 1`` workers.
    overwrite
        Recompute everything into a fresh store.
    max_failures, progress
        Failed files tolerated before ``report.exit_code()`` is 3; a progress bar on stderr (None: on a terminal).
    checkpoint_seconds
        How often finished features are made durable (a kill -9 loses at
        most this much work; Ctrl-C and SIGTERM lose nothing).
    shard
        ``(K, N)``: extract only manifest rows ``K, K + N, K + 2N, ...``
        into the partial store ``<store stem>.shard-K-of-N.h5`` (one batch
        job per shard). A later run without ``shard`` copies the entries of
        every shard it finds beside the store (those whose audio is
        unchanged) instead of computing them.
    scheduler
        Address of a Dask distributed scheduler (``tcp://host:8786``): its
        workers compute the features, this process writes the store
        (:mod:`sertool.extraction.dask_backend`); ``jobs`` is then unused.

    Returns
    -------
    ExtractResult
        The store path and a report: ``ok`` newly extracted, ``skipped``
        already up to date, ``failures`` per file (also written to
        ``<store stem>.failures.csv``).

    Raises
    ------
    SertoolError
        Bad manifest or config, or a store that cannot be written.
    """
    manifest = Path(manifest)
    report = RunReport(max_failures=max_failures)
    current = None if overwrite or shard else current_store(manifest, features, output, settings)
    if current is not None:
        report.skip(current[1])
        failures_path_for(current[0]).unlink(missing_ok=True)
        return ExtractResult(current[0], report, None)
    utterances = read_manifest(manifest)
    if shard is not None:
        utterances = utterances[shard[0]::shard[1]]
    sources = identities([(u.id, str(u.path)) for u in utterances], report)
    from sertool.store.shards import merge_stores  # numpy, h5py: not needed by an up-to-date rerun
    from sertool.store.writer import StoreWriter  # numpy, h5py: not needed by an up-to-date rerun

    extractor = _extractor(features, settings, trust_code)
    plan = _plan(manifest, features, output, settings, extractor.config.config_hash(), sources, report,
                 shard=shard, overwrite=overwrite)
    with StoreWriter(plan.path, _store_attrs(extractor, features, manifest), overwrite=overwrite,
                     checkpoint_seconds=checkpoint_seconds) as writer, _sigterm_as_exit() as check_terminated:
        write_stamp(plan.path, None)
        # partial stores of `--shard K/N` jobs: their entries for unchanged audio are copied
        merged = merge_stores(plan.shards, writer, {i: s[1] for i, s in sources.items()}) if plan.shards else 0
        tasks = [(utt_id, p) for utt_id, (p, ident) in sources.items() if writer.needs(utt_id, ident)]
        report.skip(len(sources) - len(tasks) - merged)
        _compute(writer, extractor, tasks, sources, report, check_terminated, jobs=jobs, scheduler=scheduler,
                 progress=progress)
    check_terminated()
    return _finish(plan, writer, report, output, {utt_id for utt_id, _ in tasks}, merged)


def _extractor(features: str, settings: dict[str, Any] | None, trust_code: bool):
    """The extractor of preset ``features`` with ``settings``; UntrustedCodeError if they name code, untrusted."""
    from sertool.features import build_extractor  # numpy (librosa, opensmile): not needed by an up-to-date rerun
    from sertool.features.trust import named_code, require_trust  # (with sertool.features, as above)

    extractor = build_extractor(features, settings)  # builds the config only: nothing named is imported yet
    require_trust(named_code(extractor.config), f"--features {features} (its --config / --set values)",
                  trust_code=trust_code)
    return extractor


def _plan(manifest: Path, features: str, output, settings, config_hash: str,
          sources: dict[str, tuple[str, SourceIdentity]], report: RunReport, *, shard: tuple[int, int] | None,
          overwrite: bool) -> _Plan:
    """The store (or shard store) this run writes, the shard stores it may copy from, and its stamp's digest."""
    from sertool.store.naming import owned_store_path  # h5py: not needed by an up-to-date rerun
    from sertool.store.shards import shard_path, shard_paths  # numpy, h5py: not needed by an up-to-date rerun

    path, note = owned_store_path(output, manifest, features, config_hash)
    shards = [] if shard is not None or overwrite else shard_paths(path)
    if shard is not None:
        path = shard_path(path, *shard)
    text = digest(config_hash, sources) if not report.failed and shard is None else None
    return _Plan(path, shards, path.exists() and not overwrite, text, request_key(manifest, features, settings),
                 config_hash, note)


def _store_attrs(extractor, features: str, manifest: Path) -> dict:
    """The root attributes of a store of ``extractor``'s features of ``manifest``."""
    config = extractor.config
    return {"config": config.to_dict(), "config_hash": config.config_hash(), "feature_set": features,
            "feature_type": config.type, "level": extractor.level, "dim": extractor.dim,
            "sample_rate": extractor.sample_rate, "manifest": str(manifest.resolve()),
            "feature_names": json.dumps(list(extractor.feature_names))}


def _compute(writer, extractor, tasks: list[tuple[str, str]], sources: dict, report: RunReport, check_terminated,
             *, jobs: int, scheduler: str | None, progress: bool | None) -> None:
    """Compute the features of ``tasks`` (``(id, path)``) and add them to ``writer``; failures go to ``report``."""
    paths = dict(tasks)
    with progress_bar(len(tasks), progress, desc="extract") as bar:
        for utt_id, feats, error, notes in _results(extractor, tasks, jobs, scheduler):
            check_terminated()  # an item interrupted by a signal is not recorded (its rerun redoes it)
            if error is None:
                error = _store_entry(writer, utt_id, feats, sources[utt_id][1])
            if error is None:
                report.done()
                for note in notes:
                    report.warn(utt_id, paths[utt_id], "decode", note)
            else:
                report.fail(utt_id, paths[utt_id], "extract", error)
                writer.remove(utt_id)  # features of the file's old content are stale now
            bar.update()


def _store_entry(writer, utt_id: str, feats, identity: SourceIdentity) -> str | None:
    """Add one entry to ``writer``: None when stored, else why this entry alone could not be (a failure row).

    Errors of the store itself (a full disk, a failed write) still stop the run, keeping the finished entries.
    """
    from sertool.store.writer import EntryError  # h5py: loaded by the run already

    try:
        writer.add(utt_id, feats, identity)
    except EntryError as exc:
        return str(exc)
    return None


def _results(extractor, tasks: list[tuple[str, str]], jobs: int, scheduler: str | None) -> Iterator[tuple]:
    """``(id, features or None, error or None, warnings)`` of every task, from the cluster or this machine."""
    if scheduler:
        from sertool.extraction.dask_backend import run_on_cluster  # dask.distributed: heavy, only with --scheduler

        return run_on_cluster(extractor, tasks, scheduler) if tasks else iter(())
    from sertool.extraction.local_backend import run_local  # numpy, soxr: not needed by an up-to-date rerun

    return run_local(extractor, tasks, jobs)


def _finish(plan: _Plan, writer, report: RunReport, output, redone: set[str], merged: int) -> ExtractResult:
    """Stamp a complete store, write the failures and warnings files; drop a store where every file failed."""
    path = plan.path
    if not plan.existed and not writer.index and report.failed:  # every file failed: leave no empty store behind
        path.unlink(missing_ok=True)
        path.with_name(f".{path.name}.lock").unlink(missing_ok=True)
        return ExtractResult(path, report, report.write_failures(failures_path_for(path)), note=plan.note)
    if plan.digest is not None and not report.failed:
        write_stamp(path, plan.digest)
        remember_request(output, plan.request, path.name, plan.config_hash)
    failures = report.write_failures(failures_path_for(path))
    report.write_warnings(path.with_name(path.stem + ".warnings.csv"), keep=lambda row: row["id"] not in redone)
    return ExtractResult(path, report, failures, merged, note=plan.note)
