"""Square for L1 (Croce & Hein 2021, "Mind the box", the Square adaptation of l1-AutoAttack)."""
from __future__ import annotations

import pytest
import torch

from advkit import Classifier
from advkit.attacks.square import Square, bump
from advkit.attacks.square_draws import Shared


def _official_eta(s: int, norm: str = "l1") -> torch.Tensor:
    """The official code's pattern, written out by hand: nested squares adding 1/(k+1)^power around the
    centre of each half (power 4 for L1, 2 for L2), each half normalised, the lower half negated, the
    whole normalised (L1 or L2)."""
    power = 4 if norm == "l1" else 2
    unit = (lambda t: t / t.abs().sum()) if norm == "l1" else (lambda t: t / t.norm())  # noqa: E731

    def rect(a, b):
        d = torch.zeros(a, b)
        ca, cb = a // 2, b // 2
        for k in range(max(a // 2 + 1, b // 2 + 1)):
            d[max(ca - k, 0):min(ca + k + 1, a), max(cb - k, 0):min(cb + k + 1, b)] += 1.0 / (k + 1) ** power
        return unit(d) if d.numel() else d
    return unit(torch.cat([rect(s // 2, s), -rect(s - s // 2, s)], 0))


@pytest.mark.parametrize("s", [1, 3, 5, 8])
def test_l1_bump_is_the_official_pattern(s):
    assert torch.allclose(bump(s, norm="l1"), _official_eta(s), atol=1e-7)
    assert bump(s, norm="l1").abs().sum().item() == pytest.approx(1.0)


@pytest.mark.parametrize("s", [3, 5, 7])
def test_l2_bump_normalises_each_half_like_the_official_code(s):
    assert torch.allclose(bump(s), _official_eta(s, "l2"), atol=1e-7)


def test_l1_init_and_steps_stay_in_ball_and_box():
    gen = torch.Generator().manual_seed(0)
    atk = Square("l1:2.0")
    x = torch.rand(4, 3, 10, 10, generator=gen)
    shared = Shared(gen, x.device, x.dtype)
    x0 = atk._init_l1(x, gen, shared, (0.0, 1.0))
    assert ((x0 - x).flatten(1).abs().sum(1) <= 2.0 + 1e-5).all() and x0.min() >= 0 and x0.max() <= 1
    x1 = atk._step_l1(x, x0, 3, gen, shared, (0.0, 1.0))
    assert ((x1 - x).flatten(1).abs().sum(1) <= 2.0 + 1e-5).all() and x1.min() >= 0 and x1.max() <= 1
    assert not torch.equal(x1, x0)


class _NoGrad(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("black-box attack asked for a gradient")
        return self.net(x)


def test_square_l1_breaks_the_digits_model_black_box(digits_model):
    clf, x, y = digits_model
    x, y = x[:40], y[:40]
    bb = Classifier(_NoGrad(clf.net), num_classes=10)
    atk = Square("l1:4.0", n_queries=300, rescale_schedule=False)
    res = atk(bb, x, y, generator=torch.Generator().manual_seed(1))
    assert res.gradient_calls == 0 and atk.threat.contains(res.x_adv, x).all()
    assert res.success.float().mean() > 0.3
