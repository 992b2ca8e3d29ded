"""BPDA and EOT (Athalye et al. 2018)."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
import torch
from torch import nn

from advkit.attacks import PGD, BestOf, CarliniWagnerL2, FGSM
from advkit.attacks.adaptive import BPDA, Expectation, supports_eot, with_eot
from advkit.attacks.base import BudgetedAttack
from advkit.errors import ConfigError
from advkit.model import Classifier
from advkit.threat import ThreatModel


def quantize(x):
    return torch.round(x * 4) / 4


def test_bpda_forward_is_the_transform_and_backward_the_identity():
    x = torch.rand(3, 1, 4, 4, requires_grad=True)
    out = BPDA(quantize)(x)
    assert torch.equal(out, quantize(x.detach()))
    v = torch.randn_like(x)
    (g,) = torch.autograd.grad((out * v).sum(), x)
    assert torch.equal(g, v)


def test_bpda_backward_uses_the_surrogate():
    x = torch.rand(2, 5, requires_grad=True)
    out = BPDA(torch.sign, surrogate=torch.tanh)(x)
    assert torch.equal(out, torch.sign(x.detach()))
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g, 1 - torch.tanh(x.detach()) ** 2)


def test_bpda_validates():
    with pytest.raises(ConfigError):
        BPDA("not callable")
    with pytest.raises(ConfigError, match="same shape"):
        BPDA(lambda x: x.flatten(), surrogate=None)(torch.rand(2, 3))


def test_bpda_defeats_gradient_masking_by_quantization(digits_model):
    """PGD through round() sees zero gradients and changes nothing; through BPDA it breaks the model."""
    clf, x, y = digits_model
    x, y = x[:60], y[:60]
    masked = Classifier(nn.Sequential(nn.Identity(), clf.net), num_classes=10)
    masked.net[0] = _NoGrad(quantize)
    bpda = Classifier(nn.Sequential(BPDA(quantize), clf.net), num_classes=10)
    attack = PGD(threat=ThreatModel("linf", 0.3), steps=20, random_start=False)
    clean = (masked.predict(x) == y).float().mean().item()
    plain = attack(masked, x, y)
    adaptive = attack(bpda, x, y)
    assert plain.robust_accuracy == pytest.approx(clean)  # the defense "looks" robust
    assert adaptive.robust_accuracy < 0.5 * clean


class _NoGrad(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class _Noisy(nn.Module):
    """A randomized linear model: logits of (x + noise)."""

    def __init__(self, net, sigma):
        super().__init__()
        self.net, self.sigma = net, sigma

    def forward(self, x):
        return self.net(x + self.sigma * torch.randn_like(x))


def test_expectation_averages_draws(digits_model):
    clf, x, _ = digits_model
    torch.manual_seed(0)  # the randomized model under test draws from the global RNG
    noisy = _Noisy(clf.net, 0.3).eval()
    with torch.no_grad():
        exact = clf.net(x[:16])
        err1 = (noisy(x[:16]) - exact).abs().mean()
        err64 = (Expectation(noisy, 64)(x[:16]) - Expectation(noisy, 64)(x[:16])).abs().mean()
    assert err64 < 0.5 * err1
    with pytest.raises(ConfigError):
        Expectation(noisy, 0)


@dataclasses.dataclass(frozen=True)
class _BlackBox(BudgetedAttack):
    name: ClassVar[str] = "black-box"
    uses_gradients: ClassVar[bool] = False

    def _run(self, oracle, x, y, targets, generator):
        return x


def test_with_eot_sets_eot_recursively():
    t = ThreatModel("linf", 0.1)
    assert with_eot(PGD(threat=t), 5).eot == 5
    assert with_eot(FGSM(threat=t), 3).eot == 3
    assert with_eot(CarliniWagnerL2(), 2).eot == 2
    wrapped = with_eot(BestOf(PGD(threat=t, steps=3), restarts=2), 4)
    assert wrapped.attack.eot == 4 and wrapped.eot == 4 and wrapped.restarts == 2
    assert wrapped.attack.steps == 3
    assert not supports_eot(_BlackBox(threat=t))
    with pytest.raises(ConfigError, match="no eot"):
        with_eot(_BlackBox(threat=t), 4)
    with pytest.raises(ConfigError):
        with_eot(PGD(threat=t), 0)


def test_eot_averages_gradients_of_a_randomized_model(digits_model):
    """Against a randomized model, EOT gradient calls scale with k and the attack stays valid."""
    clf, x, y = digits_model
    torch.manual_seed(1)
    noisy = Classifier(_Noisy(clf.net, 0.5), num_classes=10)
    base = PGD(threat=ThreatModel("linf", 0.3), steps=5, random_start=False, keep_best=False)
    one = base(noisy, x[:20], y[:20])
    eot = with_eot(base, 8)(noisy, x[:20], y[:20])
    # 5 steps x 8 draws per attacked sample (which samples start correct depends on the noise)
    assert eot.gradient_calls % (5 * 8) == 0 and 0 < eot.gradient_calls <= 5 * 8 * 20
    assert one.gradient_calls % 5 == 0 and one.gradient_calls <= 5 * 20
    assert eot.config["eot"] == 8
