"""Randomized models: success decided on one draw (official AutoAttack), PGD does not freeze lucky draws."""
from __future__ import annotations

import torch
from torch import nn

from advkit.attacks.apgd import APGD
from advkit.evaluation import evaluate, spec_from_dict
from advkit.model import Classifier


class _NoisyConstant(nn.Module):
    """Ignores the input: logits (1, 0, 0) plus N(0, 1.5²) noise.  The logits averaged over 20 draws are
    almost always class 0; a single draw is another class in ~40% of the cases."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.g = torch.Generator().manual_seed(seed)
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        base = torch.tensor([1.0, 0.0, 0.0]).expand(len(x), 3) + self.w * x.flatten(1)[:, :1]
        return base + 1.5 * torch.randn(len(x), 3, generator=self.g)


def test_eot_attack_success_is_decided_on_one_draw():
    clf = Classifier(_NoisyConstant(), num_classes=3)
    x, y = torch.rand(300, 1, 4, 4, generator=torch.Generator().manual_seed(1)), torch.zeros(300, dtype=torch.long)
    res = APGD("linf:0.01", steps=2, eot=20)(clf, x, y, generator=torch.Generator().manual_seed(2))
    # the averaged prediction would call ~98% robust; one draw misclassifies ~40% of the points
    assert 0.25 < res.success.float().mean().item() < 0.6


class _Noise(nn.Module):
    def forward(self, x):
        return x + 0.1 * torch.randn_like(x)


def test_pgd_keeps_the_last_iterate_on_a_randomized_model(digits_model):
    clf, x, y = digits_model
    spec = spec_from_dict({"n": 20, "threats": ["linf:0.1"],
                           "stages": {"pgd": {"steps": 3, "restarts": 1}, "autoattack": {"version": "off"},
                                      "curve": {"enabled": False}, "checks": {"enabled": False}}})
    noisy = Classifier(nn.Sequential(_Noise(), clf.net), num_classes=10, input_shape=(1, 8, 8), name="noisy")
    cfg = evaluate(spec, model=noisy, data=(x, y)).result["threats"]["linf:0.1"]["attacks"]["pgd"]["config"]
    assert cfg["attack"]["keep_best"] is False
    cfg = evaluate(spec, model=clf, data=(x, y)).result["threats"]["linf:0.1"]["attacks"]["pgd"]["config"]
    assert cfg["attack"]["keep_best"] is True


class _SeededNoise(nn.Module):
    """Gaussian input noise σ from its own generator (reproducible draws)."""

    def __init__(self, sigma: float, seed: int):
        super().__init__()
        self.sigma, self.g = sigma, torch.Generator().manual_seed(seed)

    def forward(self, x):
        return x + self.sigma * torch.randn(x.shape, generator=self.g)


def test_apgd_eot_runs_the_whole_budget_on_every_sample(digits_model):
    """Official AutoAttack rand: APGD with EOT never stops a sample at its first (lucky) success, and
    returns the latest iterate a draw misclassified.  Stopping early returned points that fresh draws
    classified correctly far more often (issue 12: 106.8 vs the official 75.1 expected correct of 200
    behind noise:0.1; benchmarks/README.md).  Deterministic APGD (eot 1) keeps its early stop."""
    clf, x, y = digits_model
    x, y = x[:40], y[:40]
    noisy = Classifier(nn.Sequential(_SeededNoise(0.3, 7), clf.net), num_classes=10, input_shape=(1, 8, 8))
    steps, eot = 20, 4
    res = APGD("linf:0.15", steps=steps, eot=eot)(noisy, x, y, generator=torch.Generator().manual_seed(0))
    assert res.success.sum() >= 10
    # every attacked sample runs every iteration: (steps + 1) EOT gradient passes each
    assert res.gradient_calls > 0 and res.gradient_calls % (eot * (steps + 1)) == 0, res.gradient_calls
    det = APGD("linf:0.15", steps=steps)(clf, x, y, generator=torch.Generator().manual_seed(0))
    attacked = int((clf.predict(x) == y).sum())
    assert det.success.sum() >= 10 and det.gradient_calls < attacked * (steps + 1)
