"""The state an evaluation's stages share, and the batched, resumable stage runner.

Every stage works in fixed batches of the evaluated samples.  Each sample gets its own random stream
(:class:`advkit.rng.SampleStreams`) keyed by (spec seed, stage name, the sample's index in the
selection), so a sample's result depends neither on the batches that ran before it in this process nor
on its batch mates: a run killed after batch k and resumed (``--resume``) ends with exactly the records
of an uninterrupted run, the per-sample records are the same for any ``batch_size`` (on a deterministic
model, up to the float rounding of the model's own batched kernels), and under ``torchrun`` each rank
computes its share of the batches (:mod:`advkit.evaluation.sharding`).  When a history
:class:`~advkit.results.store.Store` is attached, each finished batch is written to it at once.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..model import Classifier
from ..progress import NULL, ProgressFn, rescaled
from ..rng import SampleStreams
from . import sharding
from .spec import EvaluationSpec

BatchFn = Callable[[slice, SampleStreams], dict]


def derive_seed(seed: int, *parts) -> int:
    """A 63-bit seed from the spec seed and a stage/batch path (stable across processes)."""
    text = "/".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@dataclass
class Context:
    spec: EvaluationSpec
    clf: Classifier
    x: torch.Tensor
    y: torch.Tensor
    index: np.ndarray
    num_classes: int
    classes: tuple[str, ...] = ()
    progress: ProgressFn = NULL
    store: object | None = None
    run_id: int | None = None
    randomized: bool = False
    #: "plain" (no declared defense), "naive" (autograd through a declared defense, no EOT) or
    #: "adaptive" (BPDA through its non-differentiable steps, EOT through its random ones)
    mode: str = "plain"
    #: prepended to stage names in the history store and in generator seeds (the naive pass: "naive/")
    store_prefix: str = ""
    records: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    resumed_batches: int = 0
    batch_progress: ProgressFn = NULL

    @property
    def n(self) -> int:
        return len(self.x)

    def batches(self) -> list[slice]:
        bs = self.spec.batch_size
        return [slice(i, min(i + bs, self.n)) for i in range(0, self.n, bs)]

    def generator(self, stage: str, batch: int) -> torch.Generator:
        """One ``torch.Generator`` for a whole-set step (certification), seeded from (seed, stage, batch)."""
        g = torch.Generator(device=self.clf.device)
        g.manual_seed(derive_seed(self.spec.seed, stage, batch))
        return g

    def streams(self, stage: str, rows) -> SampleStreams:
        """Per-sample random streams of the selected samples ``rows`` (a slice or positions), keyed by
        (spec seed, stage, each sample's index in the selection): the same in any batch and any process."""
        return SampleStreams.for_samples(self.spec.seed, stage, self.index[rows], device=self.clf.device)

    def run_batched(self, stage: str, fn: BatchFn, *, label: str | None = None, store_key: str | None = None,
                    streams_key: str | None = None) -> dict:
        """Run ``fn(slice, streams)`` per batch (or load the stored batch) and concatenate; ``streams``
        are the per-sample random streams of the batch's samples (:meth:`streams`), keyed by ``streams_key``
        (default: the stage); ``store_key`` (default: the stage) names the stored batches for resume.

        Keys starting with ``_`` are per-batch extras (counters, gallery rows) and go to
        ``self.stats[stage]``; all other keys are per-sample records and go to ``self.records``.
        """
        start = time.perf_counter()
        parts, batches = [], self.batches()
        skey = self.store_prefix + (store_key or stage)
        rkey = self.store_prefix + (streams_key or store_key or stage)
        task = f"{self.mode} {label or stage}" if self.mode != "plain" else (label or stage)
        for b, sl in enumerate(batches):
            if not sharding.owns(b):  # another rank's batch (torchrun); exchanged below
                parts.append(None)
                continue
            payload = self._stored(skey, b)
            if payload is None:
                t0 = time.perf_counter()
                # the attack inside ``fn`` reports its iterations as a share of this batch's samples
                self.batch_progress = rescaled(self.progress, task, sl.start, sl.stop - sl.start, self.n)
                payload = {k: np.asarray(v) for k, v in fn(sl, self.streams(rkey, sl)).items()}
                if self.store is not None and self.run_id is not None:
                    self.store.save_batch(self.run_id, skey, b, payload, time.perf_counter() - t0)
            else:
                self.resumed_batches += 1
            parts.append(payload)
            self.progress(task, sl.stop, self.n)
        merged = _merge(sharding.exchange(parts))
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
        self.stats[stage] = {k: v for k, v in merged.items() if k.startswith("_")}
        per_sample = {k: v for k, v in merged.items() if not k.startswith("_")}
        self.records.update(per_sample)
        return per_sample

    def _stored(self, stage: str, batch: int) -> dict | None:
        if self.store is None or self.run_id is None:
            return None
        return self.store.load_batch(self.run_id, stage, batch)

    def mask(self, key: str) -> np.ndarray:
        return np.asarray(self.records[key], dtype=bool)


def _merge(parts: list[dict]) -> dict:
    keys = {k for p in parts for k in p}
    out = {}
    for k in sorted(keys):
        arrays = [np.atleast_1d(p[k]) for p in parts if k in p]
        out[k] = np.concatenate(arrays) if arrays else np.zeros(0)
    return out


def subset(ctx: Context, sl: slice, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(x, y, positions in the batch) of the batch's samples selected by ``mask`` (over all samples)."""
    pos = np.nonzero(mask[sl])[0]
    idx = torch.as_tensor(pos + sl.start, dtype=torch.long)
    return ctx.x[idx], ctx.y[idx], pos


__all__ = ["Context", "derive_seed", "subset"]
