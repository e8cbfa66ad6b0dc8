"""Process-wide settings that library calls change only inside a block and then restore.

torch's intra-op thread count and the BLAS thread pools (OpenBLAS spinning
threads took the cores from torch's own threads, see sertool.inference.predict) are
process-wide. The CLI may leave them set; a library call such as
``sertool.predict`` or ``sertool.train`` from a notebook must leave them as
it found them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Iterator

from sertool.errors import ConfigError


@contextlib.contextmanager
def torch_threads(count: int | None, *, loaded_only: bool = False) -> Iterator[None]:
    """torch uses ``count`` CPU threads inside the block (unchanged when None), then its earlier count.

    ``loaded_only``: leave torch alone (and unimported: about 1 s) when nothing has imported it yet, e.g. a
    predict whose model runs on onnxruntime.
    """
    if loaded_only and "torch" not in sys.modules:
        yield
        return
    import torch  # torch: heavy, loaded only when its threads are set

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def torch_device(name: str):
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) as a torch.device; ConfigError when CUDA is absent."""
    import torch  # torch: heavy, loaded only when a model runs

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} must be cpu, cuda or auto")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu")
    return torch.device(name)


@contextlib.contextmanager
def blas_threads(count: int, api: str = "openblas") -> Iterator[None]:
    """BLAS library ``api`` limited to ``count`` threads inside the block, then its earlier count.

    Parameters
    ----------
    count
        Threads inside the block (at least 1).
    api
        ``"openblas"`` (threadpoolctl's internal API name, whatever the library file is called: numpy 2 ships it
        as ``libscipy_openblas``), or ``"blas"`` for every BLAS library loaded.
    """
    from threadpoolctl import ThreadpoolController  # loaded on use: keeps `sertool --help` light

    # Selected by internal API: the earlier ``threadpool_limits(limits={"openblas": n})`` matched no library
    # (its keys are user APIs or file prefixes), so numpy's OpenBLAS kept 2 threads and predict's features
    # ran 3-5x slower whenever numpy was imported before OPENBLAS_NUM_THREADS was set.
    pools = ThreadpoolController()
    pools = pools.select(user_api="blas") if api == "blas" else pools.select(internal_api=api)
    limiter = pools.limit(limits=count)
    try:
        yield
    finally:
        limiter.restore_original_limits()


def inference_autocast(device):
    """bfloat16 autocast for inference on a CUDA device that supports it (mixed precision on GPU); else a no-op.

    On the CPU inference stays float32, so CPU scores never depend on the CPU's bfloat16 support.
    """
    import torch  # torch: heavy, loaded only when a model runs

    enabled = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


_BLAS_LIMIT = None


def tune_allocator() -> None:
    """glibc malloc keeps large blocks instead of mmap/munmap-ing every numpy temporary (>128 KiB).

    That cut page-fault time from 1.0 s to 0.16 s per 960 files here (see
    bench/README.md). Process-wide and not undone: the CLI and extract's
    worker processes call it, library calls do not.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def tune_worker_process() -> None:
    """A worker process computes with one BLAS thread (``--jobs`` decides the cores) and the tuned allocator."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is not None:
        return
    from threadpoolctl import threadpool_limits  # loaded on use: keeps `sertool --help` light

    _BLAS_LIMIT = threadpool_limits(1, user_api="blas")
    tune_allocator()


#: Thread-pool sizes read by BLAS/OpenMP libraries when they load.
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def single_thread_env():
    """Workers spawned in this block load BLAS with one thread.

    Limiting threads after import (threadpoolctl) is not enough: OpenBLAS's
    idle threads keep spinning, and two processes then ran 5x slower each.
    """
    saved = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
    os.environ.update(SINGLE_THREAD_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value



def start_method() -> str:
    """``fork`` when every loaded thread pool has one thread and onnxruntime is not loaded, else ``spawn``.

    Forking a process whose BLAS or OpenMP pool has worker threads can
    deadlock the children; a spawned worker is safe but pays 0.3-0.5 s of
    imports. The CLI loads BLAS single-threaded, so it gets the fast path.
    """
    from threadpoolctl import threadpool_info  # loaded on use: keeps `sertool --help` light

    if "onnxruntime" in sys.modules:  # its thread pools do not survive a fork: a forked worker hung in it
        return "spawn"
    pools = threadpool_info()
    return "fork" if pools and all(p.get("num_threads") == 1 for p in pools) else "spawn"

