"""The training device and its numeric precision (bfloat16 autocast where the hardware computes it natively)."""

from __future__ import annotations

import functools

from sertool.runtime.process import torch_device
from sertool.training import distributed


def training_device(name: str):
    """The torch device to train on; under DDP on CUDA, this process's GPU (``LOCAL_RANK``).

    Parameters
    ----------
    name : str
        ``"auto"``, ``"cpu"`` or ``"cuda"`` (:attr:`TrainConfig.device`).

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        ``"cuda"`` without a CUDA device.
    """
    import torch  # torch: heavy, loaded only when a model trains

    device = torch_device(name)
    if device.type == "cuda" and distributed.world().active:
        return torch.device("cuda", distributed.world().local_rank)
    return device


def native_bf16(device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX512-BF16 / AMX.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    bool
    """
    if device.type == "cuda":
        import torch  # torch: heavy, loaded only when a model trains

        return torch.cuda.is_bf16_supported()
    return _cpu_has_bf16()


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 in /proc/cpuinfo's flags (read once: training asks on every step)."""
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolved_precision(config, device) -> str:
    """What :attr:`TrainConfig.precision` means on ``device``.

    Parameters
    ----------
    config : TrainConfig
    device : torch.device

    Returns
    -------
    str
        ``"fp32"`` or ``"bf16"`` (``auto``: bf16 where the device computes it natively).
    """
    if config.precision != "auto":
        return config.precision
    return "bf16" if native_bf16(device) else "fp32"


def autocast(config, device):
    """A context manager: bfloat16 autocast when the resolved precision is bf16, otherwise a no-op.

    ``config`` (a :class:`TrainConfig`) and ``device`` (a ``torch.device``) as for
    :func:`resolved_precision`; returns a ``torch.autocast`` context.
    """
    import torch  # torch: heavy, loaded only when a model trains

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolved_precision(config, device) == "bf16")
