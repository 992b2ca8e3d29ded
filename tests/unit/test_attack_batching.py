"""Attacks work in batches: CPU_BATCH_SIZE by default on CPU, the whole input on accelerators."""
import torch

from advkit import FGSM, PGD
from advkit.attacks import base


def test_default_batch_size():
    assert base.default_batch_size(torch.device("cpu"), 1000) == base.CPU_BATCH_SIZE
    assert base.default_batch_size(torch.device("cpu"), 7) == 7
    assert base.default_batch_size(torch.device("cpu"), 0) == 1
    assert base.default_batch_size(torch.device("cuda"), 1000) == 1000


def test_default_batches_give_the_explicit_result(digits_model, monkeypatch):
    clf, x, y = digits_model
    monkeypatch.setattr(base, "CPU_BATCH_SIZE", 50)  # several batches of the 397 test images
    calls = []
    real = base.Attack._attack_batch
    monkeypatch.setattr(base.Attack, "_attack_batch", lambda self, *a: calls.append(len(a[2])) or real(self, *a))
    for attack in (FGSM("linf:0.1"), PGD("linf:0.1", steps=5)):
        calls.clear()
        got = attack(clf, x, y, generator=torch.Generator().manual_seed(1))
        assert calls == [50] * (len(x) // 50) + [len(x) % 50]
        want = attack(clf, x, y, generator=torch.Generator().manual_seed(1), batch_size=50)
        assert torch.equal(got.x_adv, want.x_adv) and torch.equal(got.success, want.success)
