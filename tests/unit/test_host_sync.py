"""Attack inner loops on accelerators make no host synchronisation between compaction points
(advkit/sync.py), and the sync-free loops return what the per-step compacting loops return.

Checked on CPU: ``ADVKIT_SYNC_FREE=1`` selects the accelerator loops, and :class:`HostSyncCounter`
counts the dispatched operations that synchronise on CUDA.  The fast paths are off
(``ADVKIT_ACCELERATE=0``), as on a GPU.
"""
import pytest
import torch
from torch import nn

from advkit import rng, sync
from advkit.attacks import presets
from advkit.attacks.apgd import APGD
from advkit.attacks.cw import CarliniWagnerL2
from advkit.attacks.fab import FAB
from advkit.attacks.pgd import PGD
from advkit.attacks.square import Square
from advkit.errors import ConfigError
from advkit.sync import HostSyncCounter


@pytest.fixture(autouse=True)
def _no_fast_paths(monkeypatch):
    monkeypatch.setenv("ADVKIT_ACCELERATE", "0")


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x = torch.rand(24, 1, 8, 8)
    return net, x, net(x).argmax(1)


NET, X, Y = _net()

#: name → (attack with `steps` iterations at radius scale e, inner loops per sample: targets × restarts)
LOOPS = {
    "pgd-linf": (lambda s, e: PGD(threat=f"linf:{e}", steps=s), 1),
    "pgd-l1": (lambda s, e: PGD(threat=f"l1:{20 * e}", steps=s), 1),
    "apgd-ce": (lambda s, e: APGD(threat=f"linf:{e}", steps=s), 1),
    "apgd-dlr-l2": (lambda s, e: APGD(threat=f"l2:{8 * e}", steps=s, loss="dlr"), 1),
    "apgd-l1-large-eps": (lambda s, e: APGD(threat=f"l1:{20 * e}", steps=s, large_eps=True), 1),
    "apgd-t": (lambda s, e: APGD(threat=f"linf:{e}", steps=s, loss="dlr", n_targets=3), 3),
    "fab": (lambda s, e: FAB(threat=f"linf:{e}", steps=s, restarts=2), 2),
    "fab-t": (lambda s, e: FAB(threat=f"l2:{8 * e}", steps=s, n_targets=3), 3),
    "square-linf": (lambda s, e: Square(threat=f"linf:{e}", n_queries=s), 1),
    "square-l2": (lambda s, e: Square(threat=f"l2:{8 * e}", n_queries=s), 1),
    "square-l1": (lambda s, e: Square(threat=f"l1:{20 * e}", n_queries=s), 1),
    # APGD-CE, APGD-T and FAB-T over 9 targets each, Square
    "autoattack": (lambda s, e: presets.autoattack_standard(f"linf:{e}", 10, steps=s, square_queries=s), 1 + 9 + 9 + 1),
}


def _syncs(attack, model=NET) -> HostSyncCounter:
    with HostSyncCounter() as counter:
        attack(model, X, Y, generator=rng.SampleStreams.for_samples(0, "sync", torch.arange(len(X))))
    return counter


@pytest.mark.parametrize("eps", [0.001, 0.1], ids=["nothing-breaks", "most-break"])
@pytest.mark.parametrize("name", sorted(LOOPS))
def test_accelerator_loops_sync_only_at_compaction_points(name, eps, monkeypatch):
    make, loops = LOOPS[name]
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "1")
    short, long = _syncs(make(32, eps)), _syncs(make(64, eps))
    # 32 more iterations pass two more compaction points (48, 64): at most one sync each per loop
    extra_points = sync.compaction_points(64) - sync.compaction_points(32)
    assert extra_points == 2
    assert long.total - short.total <= loops * extra_points, (short.counts, long.counts)


@pytest.mark.parametrize("name", ["pgd-linf", "apgd-ce", "fab", "square-linf"])
def test_cpu_loops_compact_every_iteration(name, monkeypatch):
    """The counter sees the per-iteration compaction of the CPU loops (so the test above can fail)."""
    make, _ = LOOPS[name]
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "0")
    short, long = _syncs(make(32, 0.001)), _syncs(make(64, 0.001))
    assert long.total - short.total >= 32


def test_carlini_wagner_syncs_once_per_abort_check(monkeypatch):
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "1")
    counts = [_syncs(CarliniWagnerL2(max_iterations=n, binary_search_steps=2)).total for n in (40, 400)]
    # at most ten abort-early checks per binary-search step whatever the iteration count (a loop that
    # synchronised every iteration would add 720)
    assert counts[1] - counts[0] <= 2 * 10


CASES = {
    "pgd-l2": PGD(threat="l2:0.4", steps=30), "pgd-l1": PGD(threat="l1:1.0", steps=30),
    "apgd-ce": APGD(threat="linf:0.05", steps=30), "apgd-l1": APGD(threat="l1:1.0", steps=30, large_eps=True),
    "apgd-t": APGD(threat="linf:0.05", steps=30, loss="dlr", n_targets=3),
    "apgd-eot": APGD(threat="linf:0.05", steps=10, eot=2),
    "fab-l2": FAB(threat="l2:0.4", steps=30, restarts=2), "fab-t": FAB(threat="linf:0.05", steps=30, n_targets=3),
    "square-linf": Square(threat="linf:0.05", n_queries=200), "square-l2": Square(threat="l2:0.4", n_queries=200),
    "square-l1": Square(threat="l1:1.0", n_queries=200),
    "cw": CarliniWagnerL2(max_iterations=40, binary_search_steps=3),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sync_free_loops_return_what_compacting_loops_return(name, monkeypatch):
    """Broken samples wait frozen until the next compaction: with per-sample streams the result is the
    compacting loop's (up to the model's batch-size float rounding)."""
    out = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("ADVKIT_SYNC_FREE", mode)
        streams = rng.SampleStreams.for_samples(0, "same", torch.arange(len(X)))
        out[mode] = CASES[name](NET, X, Y, generator=streams)
    a, b = out["0"], out["1"]
    assert 0 < int(a.success.sum()) < len(X)  # the comparison covers broken and robust samples
    assert torch.equal(a.success, b.success)
    torch.testing.assert_close(b.x_adv, a.x_adv, atol=1e-5, rtol=0)


def test_counter_sees_syncing_operations_and_not_masked_ones():
    x = torch.randn(6, 3)
    mask = x[:, 0] > 0
    idx = torch.tensor([0, 2])
    with HostSyncCounter() as free:
        torch.where(mask[:, None], x, -x)
        x[idx] = x[idx] * 2
        x.index_select(0, idx)
        mask.any()  # a tensor: no host read until it is used as a Python bool
        torch.full((), 0.3, device=x.device)  # a fill on the device
    assert free.total == 0, free.counts
    with HostSyncCounter() as c:
        mask.nonzero()
        x[mask]
        x[mask] = x[mask] * 0
        bool(mask.any())
        x.sum().item()
        torch.tensor(0.3, device=x.device)  # a host-to-device copy on a GPU
    assert c.counts == {"aten::nonzero": 1, "aten::index": 2, "aten::index_put_": 1, "aten::_local_scalar_dense": 2,
                        "aten::lift_fresh": 1}


def test_compaction_schedule(monkeypatch):
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "auto")
    assert sync.sync_free("cuda") and sync.sync_free(torch.device("mps")) and not sync.sync_free("cpu")
    assert all(sync.compacts_at(i, "cpu") for i in range(1, 50))
    points = [i for i in range(1, 100) if sync.compacts_at(i, "cuda")]
    assert points == [1, 2, 4, 8, 16, 32, 48, 64, 80, 96]
    assert sync.compaction_points(100) == len(points)
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "0")
    assert not sync.sync_free("cuda") and sync.compacts_at(3, "cuda")
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "1")
    assert sync.sync_free("cpu") and not sync.compacts_at(3, "cpu")
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "sometimes")  # a typo is an error, not a silent default
    with pytest.raises(ConfigError, match=r"ADVKIT_SYNC_FREE must be 1 \(on\), 0 \(off\) or auto, got 'sometimes'"):
        sync.sync_free("cpu")


@pytest.mark.parametrize("defense", ["noise:0.1", "resize-pad:0.8"])
def test_eot_loops_on_a_randomized_defense_make_no_sync_per_iteration(defense, monkeypatch):
    """APGD with EOT through a randomized defense (the AutoAttack rand setting): every sample runs the whole
    budget, so the loop never compacts, and neither the EOT passes nor the defense's draws synchronise."""
    from advkit.defenses import defended_models
    from advkit.model import Classifier
    monkeypatch.setenv("ADVKIT_SYNC_FREE", "1")
    _, model, _ = defended_models(Classifier(NET, num_classes=10, input_shape=(1, 8, 8)), defense, seed=0)
    short, long = (_syncs(APGD(threat="linf:0.05", steps=s, eot=3), model) for s in (16, 48))
    assert long.total == short.total, (short.counts, long.counts)
