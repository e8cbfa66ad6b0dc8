"""The up-to-date check of ``sertool extract``: stamps of finished runs, and the requests that led to them.

A finished run leaves a stamp (``.<store>.stamp``): a digest of the config,
every manifest row's path and audio identity, and the store file's own
identity; ``.sertool-extract-requests.json`` in the output folder remembers
which store and config hash a request (manifest, feature preset, settings)
led to. A rerun whose digest matches returns after one ``stat`` per file.

Light by design: no numpy, no feature classes, no HDF5 (``sertool.cli.entry``
answers an up-to-date ``extract`` with it before loading the full CLI).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sertool import __version__
from sertool.io.atomic import atomic_write
from sertool.io.manifest import read_sources
from sertool.io.report import RunReport
from sertool.store.identity import SourceIdentity

#: File in the output folder: request key -> {"store", "config_hash"} of finished runs.
REQUESTS = ".sertool-extract-requests.json"


def failures_path_for(store: Path) -> Path:
    """``feats/m.mfcc-1234abcd.h5`` -> ``feats/m.mfcc-1234abcd.failures.csv``."""
    return store.with_suffix(".failures.csv")


def summary(features: str, report: RunReport, store: Path, seconds: float) -> str:
    """The one-line account ``sertool extract`` prints on stderr.

    Parameters
    ----------
    features
        The feature preset name.
    report
        What the run did.
    store
        The store written (or found up to date).
    seconds
        Wall time of the run, in seconds.

    Returns
    -------
    str
        One line, without a newline.
    """
    return report.line(f"extract {features}", done="extracted", skipped="up to date", target=store,
                       seconds=seconds)


def current_store(manifest, features: str, output, settings: dict | None = None) -> tuple[Path, int] | None:
    """The store of an earlier finished run of this request, when it is still current.

    Reads only the manifest's ids and paths, one ``stat`` per file and two
    small JSON files: no numpy, no feature classes, no HDF5.

    Parameters
    ----------
    manifest
        The manifest CSV.
    features
        The feature preset name.
    output
        The output folder of the request.
    settings
        Config values replacing the preset's defaults, as passed to the run.

    Returns
    -------
    tuple or None
        ``(store path, number of rows)``, or None when the run must go ahead.

    Raises
    ------
    ManifestError
        The manifest cannot be read.
    """
    manifest = Path(manifest)
    known = known_requests(output).get(request_key(manifest, features, settings))
    if not known:
        return None
    store = Path(output) / known["store"]
    rows = _up_to_date(manifest, store, known["config_hash"])
    return None if rows is None else (store, rows)


def identities(sources: list[tuple[str, str]], report: RunReport) -> dict[str, tuple[str, SourceIdentity]]:
    """The identity of each source's audio as it is now.

    Parameters
    ----------
    sources
        ``(id, audio path)`` pairs.
    report
        Files that cannot be stat'ed are recorded here as failures.

    Returns
    -------
    dict
        ``id -> (path, identity)`` of every file that could be stat'ed, in the order of ``sources``.
    """
    found = {}
    for utt_id, path in sources:
        try:
            found[utt_id] = (path, SourceIdentity.of(path))
        except OSError as exc:
            report.fail(utt_id, path, "extract",
                        f"{path}: cannot read file ({exc.strerror}); fix the path in the manifest")
    return found


def digest(config_hash: str, sources: dict[str, tuple[str, SourceIdentity]]) -> str:
    """sha256 hex digest of a config hash and every ``id -> (path, identity)`` row, in order."""
    rows = "".join(f"{utt_id}\t{path}\t{ident.size}\t{ident.mtime_ns}\n"
                   for utt_id, (path, ident) in sources.items())
    return hashlib.sha256((config_hash + rows).encode()).hexdigest()


def write_stamp(store: Path, text: str | None) -> None:
    """Stamp ``store`` as finished with digest ``text`` (and its own size and mtime); None removes the stamp."""
    stamp = _stamp_path(store)
    if text is None:
        stamp.unlink(missing_ok=True)
        return
    ident = SourceIdentity.of(store)
    with atomic_write(stamp) as fh:
        fh.write(json.dumps({"digest": text, "store_size": ident.size, "store_mtime_ns": ident.mtime_ns}))


def request_key(manifest: Path, features: str, settings) -> str:
    """What was asked (manifest, feature preset, settings, sertool version), as a 16-digit hex hash."""
    text = json.dumps([__version__, str(manifest.resolve()), features, settings or {}], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def known_requests(output) -> dict:
    """request key -> {"store", "config_hash"} of finished runs in folder ``output`` (a cache, never trusted alone)."""
    try:
        return json.loads((Path(output) / REQUESTS).read_text())
    except (OSError, ValueError):
        return {}


def remember_request(output, request: str, store_name: str, config_hash: str) -> None:
    """Record that ``request`` (a :func:`request_key`) led to store ``store_name`` of ``config_hash`` in ``output``."""
    known = known_requests(output)
    known[request] = {"store": store_name, "config_hash": config_hash}
    path = Path(output) / REQUESTS
    with atomic_write(path) as fh:  # several extract runs may share the output folder: each its own temp file
        fh.write(json.dumps(known, indent=1, sort_keys=True))


def _stamp_path(store: Path) -> Path:
    return store.with_name(f".{store.name}.stamp")


def _up_to_date(manifest: Path, store: Path, config_hash: str) -> int | None:
    """Number of rows when ``store``'s stamp matches the manifest's rows and their audio as it is now, else None."""
    unreadable = RunReport()
    sources = identities(read_sources(manifest), unreadable)
    if unreadable.failed:
        return None  # the full run reports it
    return len(sources) if _stamp_matches(store, digest(config_hash, sources)) else None


def _stamp_matches(store: Path, text: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(store).read_text())
        current = SourceIdentity.of(store)
    except (OSError, ValueError):
        return False
    return stamp == {"digest": text, "store_size": current.size, "store_mtime_ns": current.mtime_ns}
