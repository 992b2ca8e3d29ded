"""The sharding rule in-process: each simulated rank computes only its batches (r, r+W, ...), with the
same per-sample random streams as one process, so the merged records equal the single-process ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advkit import distributed as D
from advkit.evaluation import sharding
from advkit.evaluation.context import Context
from advkit.evaluation.spec import EvaluationSpec
from advkit.model import Classifier


def _ctx(n=23, bs=4):
    x, y = torch.rand(n, 1, 2, 2), torch.zeros(n, dtype=torch.long)
    return Context(EvaluationSpec(batch_size=bs), Classifier(nn.Flatten()), x, y, np.arange(n), 4)


def _stage(sl, streams):
    return {"draw": streams.uniform((sl.stop - sl.start,)), "_count": [sl.stop - sl.start]}


def test_a_samples_draws_do_not_depend_on_the_batch_size():
    four, five = _ctx(bs=4).run_batched("s", _stage)["draw"], _ctx(bs=5).run_batched("s", _stage)["draw"]
    assert len(four) == 23 and np.array_equal(four, five)
    assert not np.array_equal(_ctx(bs=4).run_batched("other stage", _stage)["draw"], four)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_compute_their_own_batches_and_the_merge_equals_one_process(world, monkeypatch):
    one = _ctx().run_batched("s", _stage)["draw"]
    computed, parts = {}, {}
    monkeypatch.setattr(D, "world_size", lambda: world)
    for r in range(world):
        monkeypatch.setattr(D, "rank", lambda r=r: r)
        seen = []
        monkeypatch.setattr(sharding, "exchange", lambda p, seen=seen: seen.extend(p) or
                            [q if q is not None else {"draw": np.zeros(0), "_count": np.zeros(0)} for q in p])
        ctx = _ctx()
        ctx.run_batched("s", lambda sl, gen, r=r: computed.setdefault(r, []).append(sl.start // 4) or _stage(sl, gen))
        parts[r] = seen
    assert {r: b for r, b in computed.items()} == {r: list(range(r, 6, world)) for r in range(world)}
    merged = [next(parts[r][b] for r in range(world) if parts[r][b] is not None) for b in range(6)]
    assert np.array_equal(np.concatenate([m["draw"] for m in merged]), one)


def test_without_torchrun_every_helper_is_the_identity():
    assert not D.is_distributed() and all(sharding.owns(b) for b in range(5))
    parts = [{"a": 1}, {"a": 2}]
    assert sharding.exchange(parts) is parts and sharding.share(7) == 7 and sharding.total(3) == 3
    ctx = _ctx()
    assert sharding.on_main(ctx, lambda v: v + 1, 1) == 2
