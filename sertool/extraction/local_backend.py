"""Local extraction backend: this process and ``jobs - 1`` worker processes compute features of a task list."""

from __future__ import annotations

import collections
import signal
from typing import TYPE_CHECKING, Iterator

from sertool.extraction.compute import compute_one
from sertool.features import build_extractor
from sertool.runtime.process import blas_threads, single_thread_env, start_method, tune_worker_process
from sertool.runtime.workers import Workers

if TYPE_CHECKING:
    import numpy as np

_WORKER_EXTRACTOR = None


def _init_worker(config: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    tune_worker_process()
    global _WORKER_EXTRACTOR
    _WORKER_EXTRACTOR = build_extractor(config)


def _worker_chunk(chunk: list[tuple[str, str]]):
    return [compute_one(_WORKER_EXTRACTOR, *task) for task in chunk]


def run_local(extractor, tasks: list[tuple[str, str]], jobs: int) -> Iterator[tuple[str, "np.ndarray | None", str | None]]:
    """Yield ``(id, features or None, error or None, warnings)`` for every task, in any order.

    ``jobs`` processes compute: this one and ``jobs - 1`` workers. This
    process also writes what they return (the caller's loop), so ``jobs``
    busy processes use ``jobs`` cores, the same as a ``Pool(jobs)`` whose
    parent only waits.
    """
    with blas_threads(1, "blas"):  # small matrices: one BLAS thread each; restored when the loop ends
        yield from _run_limited(extractor, tasks, jobs)


def _run_limited(extractor, tasks: list[tuple[str, str]], jobs: int):
    """:func:`run_local` inside its BLAS limit."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield compute_one(extractor, *task)
        return
    # The first file here, before the pool starts: forked workers then inherit the decoder and FFT modules loaded.
    yield compute_one(extractor, *tasks[0])
    tasks = tasks[1:]
    size = max(1, min(8, len(tasks) // (jobs * 8)))
    chunks = collections.deque(tasks[i:i + size] for i in range(0, len(tasks), size))
    workers = Workers(jobs - 1, _worker_chunk, initializer=_init_worker, initargs=(extractor.config.to_dict(),),
                      start_method=start_method())
    with single_thread_env():
        workers.start()
    with workers:
        yield from _share(workers, extractor, chunks)


def _share(workers, extractor, chunks):
    """Workers take chunks from the front of ``chunks``; between their results this process computes from the back."""
    own: list = []
    while chunks and workers.outstanding < 2 * len(workers):
        workers.submit(chunks.popleft())
    while workers.outstanding or own or chunks:
        done = workers.get(block=False) if workers.outstanding else None
        if done is not None:
            yield from done
            if chunks:
                workers.submit(chunks.popleft())
            continue
        if not own and chunks:
            own = chunks.pop()[::-1]
        if own:
            yield compute_one(extractor, *own.pop())
        else:  # nothing left to take: wait for the workers
            yield from workers.get()

