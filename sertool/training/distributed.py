"""Data-parallel training across processes and machines (PyTorch DDP), launched by ``torchrun`` or Slurm.

``torchrun --nproc_per_node N -m sertool train ...`` starts N copies of the
command; each reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
``MASTER_ADDR``/``MASTER_PORT`` from its environment (torchrun sets them;
under Slurm, ``srun`` sets ``SLURM_PROCID``/``SLURM_NTASKS``, read as a
fallback). Every rank builds the same folds and the same model, trains on
its share of each epoch's shuffled order (``batch_size / WORLD_SIZE`` per
rank, so the global batch stays ``batch_size``), and gradients are
all-reduced (gloo on CPU, NCCL on CUDA). Rank 0 is the one writer of split
files, logs, states and checkpoints; it validates, and broadcasts what the
other ranks need (resume state, early-stopping decisions).

Without these variables (or with ``WORLD_SIZE=1``) nothing here does
anything and training is the single-process loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sertool.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` (``local_rank`` on its machine)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether several processes train together."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0


def _env_int(*names: str, default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip():
            return int(os.environ[name])
    return default


def world_from_env() -> World:
    """The job's layout from torchrun's (or Slurm's) environment variables."""
    size = _env_int("WORLD_SIZE", "SLURM_NTASKS", default=1)
    rank = _env_int("RANK", "SLURM_PROCID", default=0)
    local = _env_int("LOCAL_RANK", "SLURM_LOCALID", default=0)
    return World(rank, size, local)


_WORLD = World()


def world() -> World:
    """The world :func:`start` joined (a single process until then)."""
    return _WORLD


def start(device: str = "cpu") -> World:
    """Join the process group the environment describes (no-op for one process); returns the world.

    Backend: NCCL when training on CUDA, gloo otherwise. Idempotent.
    """
    global _WORLD
    import torch.distributed as dist  # torch: heavy (~2 s); this module is on the `sertool --help` path

    layout = world_from_env()
    if not layout.active or (dist.is_available() and dist.is_initialized()):
        _WORLD = layout
        return layout
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; train in one process")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise ConfigError(f"WORLD_SIZE={layout.size} but {' and '.join(missing)} not set: launch with torchrun "
                          "(or set them for srun: MASTER_ADDR=<first node> MASTER_PORT=29500)")
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    os.environ.setdefault("RANK", str(layout.rank))
    os.environ.setdefault("WORLD_SIZE", str(layout.size))
    dist.init_process_group(backend=backend, rank=layout.rank, world_size=layout.size)
    _WORLD = layout
    return layout


def stop() -> None:
    """Leave the process group (end of the command)."""
    import torch.distributed as dist  # torch: heavy (~2 s); this module is on the `sertool --help` path

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value):
    """``value`` of rank 0 on every rank (any picklable value; tensors go to CPU first)."""
    if not _WORLD.active:
        return value
    import torch.distributed as dist  # torch: heavy (~2 s); this module is on the `sertool --help` path

    box = [value if _WORLD.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait until every rank gets here."""
    if _WORLD.active:
        import torch.distributed as dist  # torch: heavy (~2 s); this module is on the `sertool --help` path

        dist.barrier()


def shard(indices: list[int]) -> list[int]:
    """This rank's share of ``indices``: padded (repeating from the start) to a multiple of the world size,
    then every ``size``-th item from ``rank``, so every rank runs the same number of steps."""
    if not _WORLD.active:
        return list(indices)
    size = _WORLD.size
    padded = list(indices) + list(indices)[: (-len(indices)) % size]
    return padded[_WORLD.rank::size]
