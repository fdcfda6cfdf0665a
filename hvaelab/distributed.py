"""Past one machine: the ``torch.distributed`` process group that ``torchrun`` starts.

``torchrun --nproc_per_node N -m hvaelab train|tables|evaluate …`` starts N processes (ranks)
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in their environment; the command
line joins them into one group (:func:`init`): gloo on the CPU, NCCL on GPUs, one GPU per local
rank. Without ``torchrun`` (or with one process) nothing changes: :func:`current` is world 1.

* Training (:class:`hvaelab.train.Trainer`) wraps the model in DistributedDataParallel; each
  rank takes a disjoint shard of every global batch; the loss is normalised by the *global*
  batch size; the data-dependent initialisation runs once, on rank 0, and DDP broadcasts it; rank
  0 alone writes checkpoints, history, logs and progress.
* Scoring (:func:`hvaelab.scores.score_tensor`) deals batches to ranks round-robin and gathers
  the score columns on every rank (:func:`gather`); rank 0 writes the tables.

Gathering uses ``all_gather`` on tensors (never ``all_gather_object``, which pickles).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

ENV_WORLD = "WORLD_SIZE"


@dataclass(frozen=True)
class Dist:
    """This process's place in the group: ``rank`` of ``world_size`` (``local_rank`` on its
    machine) and the ``backend`` ("gloo", "nccl" or "none" for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def describe(self) -> dict:
        """What a checkpoint card records about the run's processes."""
        return {"world_size": self.world_size, "backend": self.backend}


def launched() -> bool:
    """Whether ``torchrun`` (or another launcher) started this process as one of several."""
    return int(os.environ.get(ENV_WORLD, "1")) > 1


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for the CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: torch.device | str = "cpu") -> Dist:
    """Join the process group ``torchrun`` prepared (idempotent); world 1 when not launched.

    On CUDA each process takes the GPU of its local rank (``cuda:LOCAL_RANK``).
    """
    if dist.is_available() and dist.is_initialized():
        return current()
    if not launched():
        return Dist()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend_for(device))
    return current()


def current() -> Dist:
    """This process's :class:`Dist` (world 1 unless :func:`init` joined a group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Dist()
    return Dist(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        backend=str(dist.get_backend()),
    )


def device_of(device: torch.device) -> torch.device:
    """The device this rank computes on: ``cuda:LOCAL_RANK`` for CUDA under torchrun."""
    d = current()
    if torch.device(device).type == "cuda" and d.active:
        return torch.device("cuda", d.local_rank)
    return torch.device(device)


def barrier() -> None:
    if current().active:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks (in place; returned); unchanged for one process."""
    if current().active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def shard(n: int) -> range:
    """The items 0..n-1 (batches) this rank takes: round-robin, ``rank, rank + W, …``."""
    d = current()
    return range(d.rank, n, d.world_size)


def owners(n_items: int, block: int = 1) -> np.ndarray:
    """The rank that holds each of ``n_items`` items dealt in blocks of ``block`` by
    :func:`shard` (block b to rank ``b % W``)."""
    return (np.arange(n_items) // block) % current().world_size


def gather(mine: np.ndarray, owner: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """Reassemble items dealt to ranks: ``owner[i]`` is the rank holding item i; ``mine`` holds
    this rank's items, ``(count, *row)``, in their global order. Returns every item, ``(n, *row)``
    float64, in global order, on every rank."""
    d = current()
    mine = np.ascontiguousarray(mine, dtype=np.float64)
    if not d.active:
        return mine
    counts = np.bincount(owner, minlength=d.world_size)
    if len(mine) != counts[d.rank]:
        raise ValueError(f"rank {d.rank} holds {len(mine)} items, its share is {counts[d.rank]}")
    row = mine.shape[1:]
    # NCCL gathers only CUDA tensors; gloo only CPU ones.
    dev = torch.device(device) if d.backend == "nccl" else torch.device("cpu")
    buf = torch.zeros((int(counts.max()), *row), dtype=torch.float64, device=dev)
    buf[: len(mine)] = torch.from_numpy(mine).to(dev)
    parts = [torch.empty_like(buf) for _ in range(d.world_size)]
    dist.all_gather(parts, buf)
    out = np.empty((len(owner), *row), dtype=np.float64)
    for r, part in enumerate(parts):
        out[owner == r] = part[: counts[r]].cpu().numpy()
    return out


def close() -> None:
    """Leave the process group (end of a command run under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "Dist",
    "all_reduce_sum",
    "backend_for",
    "barrier",
    "close",
    "current",
    "device_of",
    "gather",
    "init",
    "launched",
    "owners",
    "shard",
]
