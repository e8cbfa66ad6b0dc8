"""Worker processes for ``extract``: chunks of tasks in, lists of results out.

Why not ``concurrent.futures.ProcessPoolExecutor``: its workers send each
result synchronously through a 64 KiB pipe, so a worker holding a chunk's
features (about 0.5 MB) waits until the busy parent has read them all;
that idled workers for 14-21 % of their busy time here. These workers put
results on a ``multiprocessing.Queue``, whose feeder thread sends them
while the worker computes the next chunk (5 % idle).

A worker that dies (out of memory, killed) is noticed within
``poll_seconds`` and raises :class:`~sertool.errors.SertoolError`; a
parent that dies (kill -9) takes its workers with it, even busy ones; an
exception inside ``function`` is raised in the parent as RuntimeError with
the worker's traceback, and the worker goes on with the next chunk; leaving
the ``with`` block (normally, or on Ctrl-C or an error) stops every worker.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import traceback
from typing import Any, Callable

from sertool.errors import SertoolError

_STOP = None


class _Crash:
    """What a worker sends back when ``function`` raised: the formatted traceback."""

    def __init__(self, text: str):
        self.text = text


def _exit_with(parent) -> None:
    """Worker thread: end this process at once when ``parent`` dies (kill -9), even in the middle of a chunk.

    Nobody would read the results, and a chunk can run for minutes (a long file).
    """
    parent.join()
    os._exit(1)


def _main(initializer: Callable[..., Any], initargs: tuple, function: Callable[[Any], Any], tasks, results) -> None:
    """Worker loop: ``results.put(function(chunk))`` for every chunk until the stop marker.

    The process ends, too, as soon as the parent dies, busy or not.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() ends a worker at once, whatever the parent set
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="sertool-parent-watch", daemon=True).start()
    initializer(*initargs)
    while True:
        chunk = tasks.get()
        if chunk is _STOP:
            return
        try:
            results.put(function(chunk))
        except Exception:  # a bug, not bad input (``function`` reports that in its result): the parent raises it
            results.put(_Crash(traceback.format_exc()))


class Workers:
    """``count`` processes applying ``function`` to submitted chunks; a context manager.

    Parameters
    ----------
    count
        Number of worker processes.
    function
        Picklable top-level function of one chunk; its return value is what
        :meth:`get` returns.
    initializer, initargs
        Run once in each worker before its first chunk.
    start_method
        ``"fork"`` or ``"spawn"`` (see ``multiprocessing``).
    poll_seconds
        How often a blocking :meth:`get` checks that the workers are alive.
    """

    def __init__(self, count: int, function: Callable[[Any], Any], *, initializer: Callable[..., Any],
                 initargs: tuple = (), start_method: str = "spawn", poll_seconds: float = 0.5):
        context = multiprocessing.get_context(start_method)
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._poll = poll_seconds
        self._processes = [
            context.Process(target=_main, args=(initializer, initargs, function, self._tasks, self._results),
                            daemon=True)
            for _ in range(count)
        ]
        self.outstanding = 0  #: chunks submitted and not yet returned

    def start(self) -> "Workers":
        """Start the processes (once); the environment now is the one they get."""
        for process in self._processes:
            if process.pid is None:
                process.start()
        return self

    def __enter__(self) -> "Workers":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.outstanding == 0:
            for _ in self._processes:
                self._tasks.put(_STOP)
            for process in self._processes:
                process.join(timeout=5)
        for process in self._processes:  # interrupted, failed, or slow to stop
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for channel in (self._tasks, self._results):
            channel.cancel_join_thread()  # queued items for dead workers must not block this process's exit
            channel.close()

    def __len__(self) -> int:
        return len(self._processes)

    def submit(self, chunk) -> None:
        """Queue ``chunk`` for the next free worker."""
        self._tasks.put(chunk)
        self.outstanding += 1

    def get(self, block: bool = True):
        """The result of some submitted chunk (in completion order); None when ``block`` is False and none is ready.

        Raises SertoolError when a worker died.
        """
        while True:
            try:
                result = self._results.get(timeout=self._poll) if block else self._results.get_nowait()
            except queue.Empty:
                self._check_alive()
                if not block:
                    return None
                continue
            self.outstanding -= 1
            if isinstance(result, _Crash):
                raise RuntimeError(f"a worker process raised:\n{result.text}")
            return result

    def _check_alive(self) -> None:
        if any(process.exitcode not in (None, 0) for process in self._processes):
            raise SertoolError("a feature worker process died (out of memory?); finished work is saved, "
                               "rerun with fewer --jobs to continue")
