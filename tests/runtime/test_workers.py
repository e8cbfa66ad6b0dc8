"""The extract worker processes: results, a dying worker, an interrupted or killed parent."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sertool.errors import SertoolError
from sertool.runtime.workers import Workers
from tests.conftest import HANG_SECONDS, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _nothing() -> None:
    pass


def _square_all(chunk: list[int]) -> list[tuple[int, int, int]]:
    return [(x, x * x, os.getpid()) for x in chunk]


def _die_on_minus_one(chunk: list[int]) -> list[int]:
    if -1 in chunk:
        os._exit(9)  # as an out-of-memory kill would end it: no exception, no result
    return chunk


def _block(chunk: list[str]) -> list[str]:
    """Busy until killed: creates the file ``chunk[0]`` (the test's sign that the work began), then never returns."""
    Path(chunk[0]).touch()
    threading.Event().wait()
    return chunk


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # a zombie has exited; only its parent could reap it


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_every_chunk_comes_back_once(start_method):
    chunks = [list(range(i, i + 5)) for i in range(0, 50, 5)]
    with Workers(2, _square_all, initializer=_nothing, start_method=start_method) as workers:
        for chunk in chunks:
            workers.submit(chunk)
        assert len(workers) == 2 and workers.outstanding == 10
        worker_pids = {p.pid for p in workers._processes}
        results = [workers.get() for _ in chunks]
        assert workers.outstanding == 0 and workers.get(block=False) is None
    flat = sorted(item for result in results for item in result)
    assert [(x, sq) for x, sq, _ in flat] == [(x, x * x) for x in range(50)]
    assert {pid for _, _, pid in flat} <= worker_pids and os.getpid() not in worker_pids  # computed in the workers


def test_a_dying_worker_is_a_clear_error():
    with pytest.raises(SertoolError, match="worker process died.*fewer --jobs"):
        with Workers(1, _die_on_minus_one, initializer=_nothing, start_method="fork", poll_seconds=0.05) as workers:
            workers.submit([1, 2])
            assert workers.get() == [1, 2]
            workers.submit([-1])
            workers.get()


def _fail_on_zero(chunk: list[int]) -> list[float]:
    return [1 / x for x in chunk]


def test_an_exception_in_a_worker_reaches_the_parent_with_its_traceback():
    with Workers(1, _fail_on_zero, initializer=_nothing, start_method="fork") as workers:
        workers.submit([0])
        with pytest.raises(RuntimeError, match=r"(?s)worker process raised.*ZeroDivisionError"):
            workers.get()
        workers.submit([2])  # the worker lives on
        assert workers.get() == [0.5]


def test_leaving_early_stops_every_worker(tmp_path):
    started = [tmp_path / "0", tmp_path / "1"]
    with pytest.raises(KeyboardInterrupt, match="Ctrl-C while busy"):
        with Workers(2, _block, initializer=_nothing, start_method="fork") as workers:
            for path in started:
                workers.submit([str(path)])
            processes = list(workers._processes)
            wait_for(lambda: all(p.exists() for p in started), what="start of both chunks")  # both workers busy
            raise KeyboardInterrupt("Ctrl-C while busy")
    assert not any(p.is_alive() for p in processes)


KILLED_PARENT = """
import signal, sys
from tests.runtime.test_workers import _block, _nothing
from sertool.runtime.workers import Workers
workers = Workers(2, _block, initializer=_nothing, start_method=sys.argv[1]).start()
for path in sys.argv[2:]:
    workers.submit([path])
print(*[p.pid for p in workers._processes], flush=True)
signal.pause()  # until the test kills it
"""


@pytest.mark.parametrize("start_method,busy", [("fork", False), ("fork", True), ("spawn", True)],
                         ids=["idle", "busy", "busy-spawn"])
def test_workers_exit_when_their_parent_is_killed(tmp_path, start_method, busy):
    """Idle workers, and busy ones in the middle of a chunk that would never end: none outlives a kill -9."""
    started = [tmp_path / "0", tmp_path / "1"] if busy else []
    stderr = tmp_path / "stderr.txt"  # also the killed parent's resource tracker's, which warns about its semaphores
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, start_method, *map(str, started)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        pids = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(pids) == 2 and not any(_gone(pid) for pid in pids), stderr.read_text()
        assert wait_for(lambda: all(p.exists() for p in started), proc, what="start of both chunks")
        exits = [os.pidfd_open(pid) for pid in pids]  # readable once the process has exited
    finally:
        proc.kill()
        proc.wait()
    try:
        running = set(exits)
        while running:  # each wait ends when a worker exits; the timeout is only a hang guard
            ready, _, _ = select.select(list(running), [], [], HANG_SECONDS)
            assert ready, "orphaned workers kept running"
            running -= set(ready)
    finally:
        for fd in exits:
            if fd in running:
                signal.pidfd_send_signal(fd, signal.SIGKILL)  # a failed test leaves no orphan behind
            os.close(fd)
    assert all(_gone(pid) for pid in pids)
