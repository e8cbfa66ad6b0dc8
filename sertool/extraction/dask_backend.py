"""Feature extraction on a Dask distributed cluster: workers compute, this process writes the one store.

``sertool extract ... --scheduler tcp://HOST:8786`` sends chunks of
``(id, audio path)`` to the cluster's workers; each worker builds the
extractor from its config once (per config hash) and returns the features
of its chunk; the client adds them to the store as they arrive, so the
one-writer rule and the store's crash safety are those of a local run. At
most :data:`IN_FLIGHT_PER_WORKER` chunks per worker are outstanding, which
bounds the client's memory whatever the manifest's size.

Workers need sertool installed (the same version) and must read the audio
at the manifest's paths (a shared file system, or the same paths on every
machine). Needs the dask extra: ``pip install 'sertool[dask]'``.
"""

from __future__ import annotations

from typing import Iterator

from sertool.errors import SertoolError, optional_import
from sertool.extraction.compute import compute_one
from sertool.features import build_extractor, config_from_dict
from sertool.runtime.process import tune_worker_process

#: Chunks outstanding per worker thread: enough to keep workers busy while results travel back.
IN_FLIGHT_PER_WORKER = 3
#: Files per task sent to a worker (fewer for short manifests).
CHUNK = 16
#: How long to keep trying to reach the scheduler.
CONNECT_TIMEOUT = "20s"

_EXTRACTORS: dict = {}


def compute_chunk(config: dict, chunk: list[tuple[str, str]]) -> list:
    """Runs on a worker: ``[(id, features or None, error or None, warnings)]`` of ``chunk``."""
    key = config_from_dict(config).config_hash()
    if key not in _EXTRACTORS:
        tune_worker_process()
        _EXTRACTORS[key] = build_extractor(config)
    return [compute_one(_EXTRACTORS[key], *task) for task in chunk]


def connect(address: str):
    """A ``distributed.Client`` for the scheduler at ``address``; ConfigError naming the fix when it fails."""
    Client = optional_import("distributed", "--scheduler", "dask").Client
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SertoolError(f"--scheduler {address}: no Dask scheduler answered ({type(exc).__name__}); start one "
                           "with `dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler") \
            from None


def run_on_cluster(extractor, tasks: list[tuple[str, str]], address: str) -> Iterator[tuple]:
    """Yield ``(id, features or None, error or None, warnings)`` for every task, computed by the cluster."""
    client = connect(address)
    try:
        with client.as_current():  # as_completed finds the client through it (never the process default)
            yield from _stream(client, extractor, tasks)
    finally:
        client.close()


def _stream(client, extractor, tasks):
    from distributed import as_completed  # dask extra, heavy (~1 s): loaded only with --scheduler

    threads = max(1, sum(client.nthreads().values()))
    size = max(1, min(CHUNK, len(tasks) // (threads * 4) or 1))
    chunks = iter([tasks[i:i + size] for i in range(0, len(tasks), size)])
    config = extractor.config.to_dict()
    first = [client.submit(compute_chunk, config, c, pure=False) for c in _take(chunks, threads * IN_FLIGHT_PER_WORKER)]
    pending = as_completed(first)
    for future in pending:
        results = future.result()
        future.release()
        for chunk in _take(chunks, 1):
            pending.add(client.submit(compute_chunk, config, chunk, pure=False))
        yield from results


def _take(iterator, count: int) -> list:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) == count:
            break
    return out
