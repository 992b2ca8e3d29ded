"""Checks that need a CUDA device (marker ``cuda``; skipped without one: never a CI dependency).

Run them where a GPU is: ``python -m pytest -m cuda tests`` (``benchmarks/gpu_session.sh`` does, with the
CUDA benchmarks).  They check on a real device what the CPU suite checks through mocks and
``ADVKIT_SYNC_FREE=1``: attack invariants and agreement with the CPU, inner loops free of host
synchronisation as CUDA itself sees it (``torch.cuda.set_sync_debug_mode``), out-of-memory halving, and
``advkit evaluate --device cuda``.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from advkit import rng, sync
from advkit.attacks.apgd import APGD
from advkit.attacks.cw import CarliniWagnerL2
from advkit.attacks.fab import FAB
from advkit.attacks.pgd import PGD
from advkit.attacks.square import Square
from advkit.errors import BatchSizeReducedWarning
from advkit.model import Classifier
from advkit.threat import ThreatModel

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ATTACKS = {
    "pgd-linf": PGD(threat="linf:0.05", steps=30),
    "pgd-l2": PGD(threat="l2:0.4", steps=30),
    "apgd-ce": APGD(threat="linf:0.05", steps=30),
    "apgd-t": APGD(threat="linf:0.05", steps=30, loss="dlr", n_targets=3),
    "apgd-l1": APGD(threat="l1:1.0", steps=30, large_eps=True),
    "fab-t": FAB(threat="linf:0.05", steps=30, n_targets=3),
    "square-linf": Square(threat="linf:0.05", n_queries=300),
    "square-l2": Square(threat="l2:0.4", n_queries=300),
    "cw": CarliniWagnerL2(max_iterations=50, binary_search_steps=3),
}


def _problem(device):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x = torch.rand(32, 1, 8, 8)
    y = net(x).argmax(1)
    return Classifier(net, num_classes=10, input_shape=(1, 8, 8)).to(device), x.to(device), y.to(device)


def _streams(n, device):
    return rng.SampleStreams.for_samples(0, "cuda-test", torch.arange(n), device=device)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_on_cuda_keep_the_invariants_and_agree_with_the_cpu(name):
    attack = ATTACKS[name]
    model, x, y = _problem("cuda")
    res = attack(model, x, y, generator=_streams(len(x), "cuda"))
    assert res.x_adv.device.type == "cuda"
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    if attack.eps is not None:
        dist = ThreatModel(attack.norm, attack.eps).distance(res.x_adv, x)
        assert float(dist.max()) <= attack.eps * (1 + 1e-5)
    with torch.no_grad():
        again = model(res.x_adv).argmax(1)
    assert torch.equal(again != y, res.success)  # success reproduces on the caller's model
    cpu_model, xc, yc = _problem("cpu")
    ref = attack(cpu_model, xc, yc, generator=_streams(len(xc), "cpu"))
    # TF32 convolutions and other reduction orders: a decision at the boundary may differ, not more
    assert abs(int(res.success.sum()) - int(ref.success.sum())) <= 2, (int(res.success.sum()), int(ref.success.sum()))


def _cuda_syncs(attack, model, x, y) -> int:
    """Synchronising CUDA calls during the attack, as CUDA's sync debug mode reports them."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            attack(model, x, y, generator=_streams(len(x), "cuda"))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in seen)


@pytest.mark.parametrize("name,make,loops", [
    ("pgd", lambda s: PGD(threat="linf:0.001", steps=s), 1),
    ("apgd-ce", lambda s: APGD(threat="linf:0.001", steps=s), 1),
    ("apgd-t", lambda s: APGD(threat="linf:0.001", steps=s, loss="dlr", n_targets=3), 3),
    ("fab-t", lambda s: FAB(threat="linf:0.001", steps=s, n_targets=3), 3),
    ("square", lambda s: Square(threat="l2:0.01", n_queries=s), 1),
])
def test_cuda_itself_sees_no_sync_between_compaction_points(name, make, loops):
    model, x, y = _problem("cuda")
    short, long = _cuda_syncs(make(32), model, x, y), _cuda_syncs(make(64), model, x, y)
    extra_points = sync.compaction_points(64) - sync.compaction_points(32)
    assert long - short <= loops * extra_points, (short, long)
    # and the CPU-side counter agrees on the same run
    with sync.HostSyncCounter() as c32:
        make(32)(model, x, y, generator=_streams(len(x), "cuda"))
    with sync.HostSyncCounter() as c64:
        make(64)(model, x, y, generator=_streams(len(x), "cuda"))
    assert c64.total - c32.total <= loops * extra_points


def test_out_of_memory_on_a_real_device_halves_the_batch_and_keeps_the_records():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))
    model = Classifier(net, num_classes=10, input_shape=(3, 64, 64)).cuda()
    x = torch.rand(256, 3, 64, 64, device="cuda")
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = PGD(threat="linf:0.01", steps=3)
    ref = attack(model, x, y, generator=_streams(len(x), "cuda"), batch_size=16)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    # activations of a 256-image batch need ~4 GiB per stored layer: allow ~1.5 GiB in all
    torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5 * 2**30 / total))
    try:
        with pytest.warns(BatchSizeReducedWarning, match="out of memory"):
            got = attack(model, x, y, generator=_streams(len(x), "cuda"), batch_size=len(x))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    # the same samples' draws are replayed; cuDNN may pick other algorithms for other batch sizes, so a
    # gradient sign may flip at a rare pixel: compare decisions and nearly all pixels, not bits
    assert int((got.success != ref.success).sum()) <= 2
    assert float(((got.x_adv - ref.x_adv).abs() > 1e-4).float().mean()) < 1e-3


def test_evaluate_on_cuda_gives_the_cpu_records(tmp_path):
    import sys
    from pathlib import Path

    from advkit.cli.main import main
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from _evalhelpers import TINY_SPEC
    from test_batch_size_invariance import FACTORY as ROWWISE_FACTORY

    factory = tmp_path / "rowwise_factory.py"
    factory.write_text(ROWWISE_FACTORY)
    out = {}
    for device in ("cpu", "cuda"):
        spec = tmp_path / f"spec-{device}.toml"
        spec.write_text(f'model = "{factory}:build"\ndata = "digits"\n'
                        + TINY_SPEC.format(n=14, batch_size=7).replace('"linf:0.1"', '"linf:0.02"'))
        d = tmp_path / device
        assert main(["evaluate", str(spec), "--db", "", "--out", str(d), "--quiet", "--device", device]) in (0, 1)
        with np.load(d / "samples.npz") as z:
            out[device] = json.loads((d / "result.json").read_text()), {k: z[k] for k in z.files}
    (rc, sc), (rg, sg) = out["cpu"], out["cuda"]
    assert rg["clean"] == rc["clean"]
    assert sc.keys() == sg.keys()
    for key in sc:
        if key.endswith("/success"):
            assert int(np.sum(sc[key] != sg[key])) <= 1, key  # one decision at the boundary, at most
