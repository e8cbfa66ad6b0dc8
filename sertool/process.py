"""Process-wide settings that library calls change only inside a block and then restore.

torch's intra-op thread count and the BLAS thread pools (OpenBLAS spinning
threads took the cores from torch's own threads, see sertool.prediction) are
process-wide. The CLI may leave them set; a library call such as
``sertool.predict`` or ``sertool.train`` from a notebook must leave them as
it found them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """torch uses ``count`` CPU threads inside the block (unchanged when None), then its earlier count."""
    import torch

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
    import torch

    from sertool.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} must be cpu, cuda or auto")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu")
    return torch.device(name)


@contextlib.contextmanager
def blas_threads(count: int, api: str = "openblas") -> Iterator[None]:
    """BLAS library ``api`` ('openblas', or 'blas' for every BLAS) limited to ``count`` threads inside the block."""
    from threadpoolctl import threadpool_limits

    limiter = (threadpool_limits(limits=count, user_api="blas") if api == "blas"
               else threadpool_limits(limits={api: count}))
    try:
        yield
    finally:
        limiter.restore_original_limits()


def inference_autocast(device):
    """bfloat16 autocast for inference on a CUDA device that supports it (mixed precision on GPU); else a no-op.

    On the CPU inference stays float32, so CPU scores never depend on the CPU's bfloat16 support.
    """
    import torch

    enabled = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
