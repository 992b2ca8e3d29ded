"""``advkit evaluate`` gives the same per-sample records (samples.npz) at any batch size: each sample's
random draws come from its own stream keyed by (seed, stage, sample index), never from its batch mates.

The model is a linear classifier on the built-in digits written with per-row arithmetic (products summed
over the last dimension), so that its own forward passes are bit-identical in any batch: matrix kernels
(GEMM/GEMV) may sum in another order for another batch size, which is the model's float rounding, not the
evaluation's randomness."""
from __future__ import annotations

import json

import numpy as np
import torch

from _evalhelpers import TINY_SPEC

THREAT = "linf:0.02"  # the linear model is weak: a budget at which attacks break some samples, not all
FACTORY = '''
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from advkit.model import Classifier


class RowWiseLinear(nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, x):
        return (x.flatten(1)[:, None, :] * self.w).sum(-1) + self.b


def build():
    d = load_digits()
    a = np.c_[d.images.reshape(len(d.images), -1) / 16.0, np.ones(len(d.images))]
    coef = np.linalg.lstsq(a, np.eye(10)[d.target] * 10.0, rcond=None)[0].astype(np.float32)
    net = RowWiseLinear(torch.from_numpy(coef[:-1].T.copy()), torch.from_numpy(coef[-1].copy()))
    return Classifier(net, num_classes=10, input_shape=(1, 8, 8), accelerate=False)
'''


def _evaluate(tmp_path, factory, batch_size: int):
    from advkit.cli.main import main
    spec = tmp_path / f"spec{batch_size}.toml"
    text = TINY_SPEC.format(n=14, batch_size=batch_size).replace('"linf:0.1"', f'"{THREAT}"')
    spec.write_text(f'model = "{factory}:build"\ndata = "digits"\n' + text)
    out = tmp_path / f"out{batch_size}"
    assert main(["evaluate", str(spec), "--db", "", "--out", str(out), "--quiet", "--device", "cpu"]) in (0, 1)
    with np.load(out / "samples.npz") as z:
        samples = {k: z[k] for k in z.files}
    return json.loads((out / "result.json").read_text()), samples


def test_batch_sizes_4_and_7_give_identical_per_sample_records(tmp_path):
    factory = tmp_path / "rowwise_factory.py"
    factory.write_text(FACTORY)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r4, s4 = _evaluate(tmp_path, factory, 4)
        r7, s7 = _evaluate(tmp_path, factory, 7)
    finally:
        torch.set_num_threads(saved)
    assert 0.5 < r4["clean"]["accuracy"] < 1.0
    threat = THREAT
    assert {f"{threat}/{a}/success" for a in ("pgd", "apgd-ce", "apgd-t", "fab-t", "square")} <= set(s4)
    robust = r4["robust_accuracy"][threat]
    assert 0 < robust < r4["clean"]["accuracy"]  # attacks broke some samples, not all
    assert s4.keys() == s7.keys()
    for k in s4:
        assert np.array_equal(s4[k], s7[k]), k
    assert r7["robust_accuracy"] == r4["robust_accuracy"] and r7["clean"] == r4["clean"]


def test_sync_free_attack_loops_give_identical_per_sample_records(tmp_path, monkeypatch):
    """The accelerator loops (no host sync between compaction points, advkit/sync.py), selected on CPU by
    ADVKIT_SYNC_FREE=1, give the records of the per-iteration compacting loops through the whole pipeline."""
    factory = tmp_path / "rowwise_factory.py"
    factory.write_text(FACTORY)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    (tmp_path / "compacting").mkdir()
    (tmp_path / "sync-free").mkdir()
    try:
        monkeypatch.setenv("ADVKIT_SYNC_FREE", "0")
        r0, s0 = _evaluate(tmp_path / "compacting", factory, 7)
        monkeypatch.setenv("ADVKIT_SYNC_FREE", "1")
        r1, s1 = _evaluate(tmp_path / "sync-free", factory, 7)
    finally:
        torch.set_num_threads(saved)
    assert 0 < r0["robust_accuracy"][THREAT] < r0["clean"]["accuracy"]
    assert s0.keys() == s1.keys()
    for k in s0:
        assert np.array_equal(s0[k], s1[k]), k
    assert r1["robust_accuracy"] == r0["robust_accuracy"]
