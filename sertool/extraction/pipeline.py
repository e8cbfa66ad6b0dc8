"""``extract``: compute features for every utterance of a manifest into a store.

One process writes (:class:`~sertool.store.core.StoreWriter`); it and, with
``jobs > 1``, ``jobs - 1`` worker processes decode audio and compute
features. Utterances whose audio is unchanged since they were stored (same
size and mtime) are skipped.

A finished run leaves a stamp (``.<store>.stamp``): a digest of the config,
every manifest row's path and audio identity, and the store file's own
identity; ``.sertool-extract-requests.json`` in the output folder remembers
which store and config hash a request (manifest, feature set, overrides)
led to. A rerun whose digest matches returns after one ``stat`` per file,
without importing numpy, the feature classes or HDF5, so ``make`` can call
``extract`` on every build for almost nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from sertool.errors import SertoolError
from sertool.extraction.local_backend import run_local
from sertool.io.atomic import atomic_write
from sertool.io.manifest import read_manifest, read_sources
from sertool.io.progress import progress_bar
from sertool.io.report import RunReport
from sertool.store.core import SourceIdentity, store_path

if TYPE_CHECKING:
    import numpy as np

@dataclass
class ExtractResult:
    """Where the store is, and what this run did (``report.ok`` = newly extracted)."""

    store_path: Path
    report: RunReport
    failures_path: Path | None
    #: entries copied from ``--shard`` partial stores instead of computed
    merged: int = 0


def failures_path_for(store: Path) -> Path:
    """``feats/m.mfcc-1234abcd.h5`` -> ``feats/m.mfcc-1234abcd.failures.csv``."""
    return store.with_suffix(".failures.csv")


def _stamp_path(store: Path) -> Path:
    return store.with_name(f".{store.name}.stamp")


def _digest(config_hash: str, identities: dict[str, tuple[str, SourceIdentity]]) -> str:
    rows = "".join(f"{utt_id}\t{path}\t{ident.size}\t{ident.mtime_ns}\n"
                   for utt_id, (path, ident) in identities.items())
    return hashlib.sha256((config_hash + rows).encode()).hexdigest()


def current_store(manifest, feature_set: str, out_dir, overrides: dict | None = None) -> tuple[Path, int] | None:
    """``(store, rows)`` when an earlier finished run of this request is still current, else None.

    Reads only the manifest's ids and paths, one ``stat`` per file and two
    small JSON files: no numpy, no feature classes, no HDF5.
    """
    manifest = Path(manifest)
    known = _known_requests(out_dir).get(_request_key(manifest, feature_set, overrides))
    if not known:
        return None
    store = Path(out_dir) / known["store"]
    rows = _up_to_date(manifest, store, known["config_hash"])
    return None if rows is None else (store, rows)


def summary(feature_set: str, report: RunReport, store: Path, seconds: float) -> str:
    """The one-line account ``sertool extract`` prints on stderr."""
    return report.line(f"extract {feature_set}", done="extracted", skipped="up to date", target=store,
                       seconds=seconds)


def _up_to_date(manifest: Path, store: Path, config_hash: str) -> int | None:
    """Number of rows when ``store``'s stamp matches the manifest's rows and their audio as it is now, else None."""
    unreadable = RunReport()
    identities = _identities(read_sources(manifest), unreadable)
    if unreadable.failed:
        return None  # the full run reports it
    return len(identities) if _stamp_matches(store, _digest(config_hash, identities)) else None


def _stamp_matches(store: Path, digest: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(store).read_text())
        current = SourceIdentity.of(store)
    except (OSError, ValueError):
        return False
    return stamp == {"digest": digest, "store_size": current.size, "store_mtime_ns": current.mtime_ns}


def _write_stamp(store: Path, digest: str | None) -> None:
    stamp = _stamp_path(store)
    if digest is None:
        stamp.unlink(missing_ok=True)
        return
    ident = SourceIdentity.of(store)
    with atomic_write(stamp) as fh:
        fh.write(json.dumps({"digest": digest, "store_size": ident.size, "store_mtime_ns": ident.mtime_ns}))


_REQUESTS = ".sertool-extract-requests.json"


def _request_key(manifest: Path, feature_set: str, overrides) -> str:
    """What was asked (manifest, feature set, overrides, sertool version), as a short hash."""
    from sertool import __version__

    text = json.dumps([__version__, manifest.name, feature_set, overrides or {}], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _known_requests(out_dir) -> dict:
    """request key -> {"store", "config_hash"} of finished runs in ``out_dir`` (a cache, never trusted alone)."""
    try:
        return json.loads((Path(out_dir) / _REQUESTS).read_text())
    except (OSError, ValueError):
        return {}


def _remember_request(out_dir, request: str, store_name: str, config_hash: str) -> None:
    known = _known_requests(out_dir)
    known[request] = {"store": store_name, "config_hash": config_hash}
    path = Path(out_dir) / _REQUESTS
    with atomic_write(path, unique=True) as fh:  # several extract runs may share out_dir
        fh.write(json.dumps(known, indent=1, sort_keys=True))



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
    import signal
    import threading

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


def _identities(sources: list[tuple[str, str]], report: RunReport) -> dict[str, tuple[str, SourceIdentity]]:
    """``id -> (path, identity)`` of every ``(id, path)`` whose file can be stat'ed; the others go to ``report``."""
    identities = {}
    for utt_id, path in sources:
        try:
            identities[utt_id] = (path, SourceIdentity.of(path))
        except OSError as exc:
            report.fail(utt_id, path, "extract",
                        f"{path}: cannot read file ({exc.strerror}); fix the path in the manifest")
    return identities


def export_csv(store_path, manifest, output) -> int:
    """Write an utterance-level store as CSV: id, label, speaker, then one named column per feature.

    Returns the number of rows. Utterances missing from the store (failed
    files) are left out. Raises SertoolError for a frame-level store.
    """
    import csv

    from sertool.store.core import FeatureStore

    with FeatureStore(store_path) as store:
        if store.attrs.get("level") != "utterance":
            raise SertoolError(f"{store_path}: --export-csv needs an utterance-level feature set "
                               "(e.g. egemaps_functionals or mfcc_stats), this one has one row per frame")
        names = store.feature_names
        rows = 0
        output = Path(output)
        with atomic_write(output) as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "label", "speaker", *names])
            for utt in read_manifest(manifest):
                if utt.id in store:
                    writer.writerow([utt.id, utt.label, utt.speaker, *(f"{v:.7g}" for v in store[utt.id][0])])
                    rows += 1
    return rows


def extract_manifest(manifest: str | os.PathLike, *, feature_set: str, out_dir: str | os.PathLike,
                     overrides: dict[str, Any] | None = None, jobs: int = 1, overwrite: bool = False,
                     max_failures: int = 0, progress: bool | None = None,
                     checkpoint_seconds: float = 30.0, shard: tuple[int, int] | None = None,
                     scheduler: str | None = None) -> ExtractResult:
    """Extract ``feature_set`` for every utterance of ``manifest`` into a store in ``out_dir``.

    Parameters
    ----------
    manifest
        Manifest CSV (see :mod:`sertool.io.manifest`).
    feature_set
        A preset name (``mfcc``, ``lightsernet_mfcc``, ...).
    out_dir
        Folder of the store ``<manifest stem>.<feature_set>-<hash8>.h5``.
    overrides
        Config values replacing the preset's defaults.
    jobs
        Processes computing features: this one and ``jobs - 1`` workers.
    overwrite
        Recompute everything into a fresh store.
    progress
        Progress bar on stderr; default: only when stderr is a terminal.
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
    current = None if overwrite or shard else current_store(manifest, feature_set, out_dir, overrides)
    if current is not None:
        report.skip(current[1])
        failures_path_for(current[0]).unlink(missing_ok=True)
        return ExtractResult(current[0], report, None)
    request = _request_key(manifest, feature_set, overrides)
    utterances = read_manifest(manifest)
    if shard is not None:
        utterances = utterances[shard[0]::shard[1]]
    identities = _identities([(u.id, str(u.path)) for u in utterances], report)
    from sertool.features import build_extractor
    from sertool.store.core import StoreWriter, merge_stores, shard_path, shard_paths

    extractor = build_extractor(feature_set, overrides)
    config = extractor.config
    path = store_path(out_dir, manifest, feature_set, config.config_hash())
    shards = [] if shard is not None or overwrite else shard_paths(path)
    if shard is not None:
        path = shard_path(path, *shard)
    digest = _digest(config.config_hash(), identities) if not report.failed and shard is None else None

    attrs = {"config": config.to_dict(), "config_hash": config.config_hash(), "feature_set": feature_set,
             "feature_type": config.type, "level": extractor.level, "dim": extractor.dim,
             "sample_rate": extractor.sample_rate, "manifest": str(manifest.resolve()),
             "feature_names": json.dumps(list(extractor.feature_names))}
    existed = path.exists() and not overwrite
    with StoreWriter(path, attrs, overwrite=overwrite, checkpoint_seconds=checkpoint_seconds) as writer, \
            _sigterm_as_exit() as check_terminated:
        _write_stamp(path, None)
        merged = 0
        if shards:  # partial stores of `--shard K/N` jobs: their entries for unchanged audio are copied
            merged = merge_stores(shards, writer, {utt_id: ident for utt_id, (_, ident) in identities.items()})
        tasks = [(utt_id, p) for utt_id, (p, ident) in identities.items() if writer.needs(utt_id, ident)]
        report.skip(len(identities) - len(tasks) - merged)
        with progress_bar(len(tasks), progress, desc="extract") as bar:
            paths = dict(tasks)
            if scheduler:
                from sertool.extraction.dask_backend import run_on_cluster

                results = run_on_cluster(extractor, tasks, scheduler) if tasks else iter(())
            else:
                results = run_local(extractor, tasks, jobs)
            for utt_id, feats, error, notes in results:
                check_terminated()  # an item interrupted by a signal is not recorded (its rerun redoes it)
                if error is None:
                    writer.add(utt_id, feats, identities[utt_id][1])
                    report.done()
                    for note in notes:
                        report.warn(utt_id, paths[utt_id], "decode", note)
                else:
                    report.fail(utt_id, paths[utt_id], "extract", error)
                    writer.remove(utt_id)  # features of the file's old content are stale now
                bar.update()
    check_terminated()
    if not existed and not writer.index and report.failed:  # every file failed: leave no empty store behind
        path.unlink(missing_ok=True)
        path.with_name(f".{path.name}.lock").unlink(missing_ok=True)
        failures = report.write_failures(failures_path_for(path))
        return ExtractResult(path, report, failures)
    if not report.failed and shard is None:
        _write_stamp(path, digest)
        _remember_request(out_dir, request, path.name, config.config_hash())
    failures = report.write_failures(failures_path_for(path))
    redone = {utt_id for utt_id, _ in tasks}
    report.write_warnings(path.with_name(path.stem + ".warnings.csv"), keep=lambda row: row["id"] not in redone)
    return ExtractResult(path, report, failures, merged)
