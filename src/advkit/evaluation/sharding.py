"""Sharded evaluation under ``torchrun``: which rank computes which batch, and how results meet.

The unit of work is the evaluation batch: the samples are cut into fixed batches of
``spec.batch_size`` (batch ``b`` holds samples ``b·bs … (b+1)·bs − 1`` of the selection), and rank
``r`` of ``W`` computes batches ``r, r + W, r + 2W, …``.  Every sample draws its random numbers from its
own stream keyed by (spec seed, stage, the sample's index in the selection)
(:meth:`advkit.evaluation.context.Context.streams`, :class:`advkit.rng.SampleStreams`), never from the
rank, the number of ranks or its batch mates; every decision an attack stage makes about a sample
depends only on that sample's earlier records.  So the per-sample records are identical for any number
of processes and any batch size, for a deterministic model (a randomized model's own noise, e.g. a noise
defense, is drawn by the model and is not per-sample; and a model's batched kernels may round differently
at another batch size, which can move a float in its last bits).

After each stage the ranks exchange their batches (``all_gather_object``), so every rank holds every
per-sample record (scalars per sample: small) and global decisions (FGSM's survivors, the samples of
the checks) are the same everywhere.  The few whole-set steps (the unbounded-attack and gradient
checks, certification) run on rank 0 only and their outcome is broadcast.  Rank 0 alone opens and
finishes the history run and writes the run directory; every rank saves its own batches to the
history database as it finishes them, so ``--resume`` (with any number of processes) recomputes only
the batches that are missing.

Without ``torchrun`` every helper here is the identity (one rank owns every batch).
"""
from __future__ import annotations

import logging

from .. import distributed as D
from ..errors import PeerFailed

log = logging.getLogger(__name__)


def _collective(fn, *args, **kw):
    """A collective call; a peer that died turns into :class:`PeerFailed` (exit code 3, run resumable)."""
    try:
        return fn(*args, **kw)
    except RuntimeError as e:  # gloo/NCCL: connection closed, timeout, ...
        why = str(e).splitlines()[0].split("] ")[-1][:200].replace("[", "(").replace("]", ")")
        raise PeerFailed(
            f"rank {D.rank()} of {D.world_size()}: another process of this sharded evaluation failed or was "
            f"killed ({why}); every finished batch is in the history database, so "
            "rerun the same command with --resume to compute only what is missing") from e


def owns(batch: int) -> bool:
    """Whether this rank computes ``batch``."""
    return batch % D.world_size() == D.rank()


def exchange(parts: list) -> list:
    """``parts[b]`` is this rank's payload for the batches it owns (None elsewhere); returns every
    batch's payload, gathered from the rank that owns it."""
    if not D.is_distributed():
        return parts
    import torch.distributed as dist
    mine = {b: p for b, p in enumerate(parts) if p is not None}
    gathered: list = [None] * D.world_size()
    _collective(dist.all_gather_object, gathered, mine)
    merged: dict = {}
    for g in gathered:
        merged.update(g)
    missing = [b for b in range(len(parts)) if b not in merged]
    if missing:  # pragma: no cover - would be a sharding bug
        raise RuntimeError(f"sharded evaluation lost batches {missing[:5]}")
    return [merged[b] for b in range(len(parts))]


def share(obj):
    """Rank 0's ``obj`` on every rank."""
    if not D.is_distributed():
        return obj
    import torch.distributed as dist
    box = [obj if D.is_main() else None]
    _collective(dist.broadcast_object_list, box, src=0)
    return box[0]


def on_main(ctx, fn, *args):
    """Run ``fn(*args)`` on rank 0 only; every rank gets its return value and the ``ctx.stats`` /
    ``ctx.records`` entries it added."""
    if not D.is_distributed():
        return fn(*args)
    payload = None
    if D.is_main():
        stats, records = set(ctx.stats), set(ctx.records)
        out = fn(*args)
        payload = (out, {k: v for k, v in ctx.stats.items() if k not in stats},
                   {k: v for k, v in ctx.records.items() if k not in records})
    out, stats, records = share(payload)
    ctx.stats.update(stats)
    ctx.records.update(records)
    return out


def total(n: int) -> int:
    """Sum of ``n`` over ranks."""
    if not D.is_distributed():
        return n
    import torch.distributed as dist
    gathered: list = [None] * D.world_size()
    _collective(dist.all_gather_object, gathered, int(n))
    return int(sum(gathered))


def describe() -> dict:
    """``{"processes": W, "backend": ...}`` for result.json (``processes`` 1 without torchrun)."""
    if not D.is_distributed():
        return {"processes": 1}
    import torch.distributed as dist
    return {"processes": D.world_size(), "backend": str(dist.get_backend())}


__all__ = ["owns", "exchange", "share", "on_main", "total", "describe"]
