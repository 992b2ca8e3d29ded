"""torch.distributed helpers: initialise from a ``torchrun`` environment, shard work, gather records.

Everything here degrades to a single process when advkit is not launched by ``torchrun``
(no ``WORLD_SIZE``/``RANK`` in the environment), so library code calls it unconditionally.
"""
from __future__ import annotations

import atexit
import logging
import os

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group when launched by torchrun; False when not distributed.

    ``backend`` defaults to NCCL when CUDA is available and gloo otherwise.  On CUDA the local
    rank's device becomes the current device.
    """
    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return False
    if not dist.is_available():  # pragma: no cover - torch built without distributed
        raise RuntimeError("torch.distributed is not available in this torch build")
    use_cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    atexit.register(_shutdown)  # a process group left alive at exit can abort the process (gloo threads)
    log.info("initialised %s process group: rank %d of %d", backend, rank(), world_size())
    return True


def _shutdown() -> None:
    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception as e:  # noqa: BLE001 - at exit: a peer may be gone already; nothing left to save
        log.debug("process group shutdown: %s", e)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def local_device() -> torch.device:
    """The device this rank should use: its local GPU under NCCL, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard_indices(n: int) -> torch.Tensor:
    """This rank's share of ``range(n)``: indices rank, rank + world, rank + 2·world, ..."""
    return torch.arange(rank(), n, world_size(), dtype=torch.long)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a copy; the input is not modified)."""
    out = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= world_size()
    return out


def _to_numpy(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def gather_records(records: dict) -> dict | None:
    """Gather per-sample arrays from every rank onto rank 0, concatenated and sorted by ``index``.

    ``records`` maps names to arrays of equal length and must contain ``index``.  Returns the merged
    dict of numpy arrays on rank 0 and ``None`` on the other ranks (the full dict when not distributed).
    """
    if "index" not in records:
        raise ValueError("gather_records needs an 'index' entry to order the samples")
    local = {k: _to_numpy(v) for k, v in records.items()}
    lengths = {len(v) for v in local.values()}
    if len(lengths) > 1:
        raise ValueError(f"all record arrays must have the same length, got lengths {sorted(lengths)}")
    if not is_distributed():
        parts = [local]
    else:
        parts = [None] * world_size() if is_main() else None
        dist.gather_object(local, parts, dst=0)
        if not is_main():
            return None
    merged = {k: np.concatenate([p[k] for p in parts]) for k in local}
    order = np.argsort(merged["index"], kind="stable")
    return {k: v[order] for k, v in merged.items()}
