"""Training objectives: each loss and inner maximisation against a hand-written computation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advkit.errors import ConfigError
from advkit.model import Classifier
from advkit.training import MART, PGDAT, TRADES, FastAT, GaussianNoise, Standard, build


def _model(seed: int = 0) -> Classifier:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.8)
    return Classifier(net, num_classes=4)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 1, 4, 4, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)
    return x, y


def _param_grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def _kl_by_hand(z_clean, z_adv):
    p, q = F.softmax(z_clean, 1), F.softmax(z_adv, 1)
    return (p * (p.log() - q.log())).sum(1)


def test_standard_is_cross_entropy(batch):
    x, y = batch
    m = _model()
    out = Standard()(m, x, y)
    assert torch.allclose(out.loss, F.cross_entropy(m(x), y))
    assert torch.equal(out.clean_logits, m(x).detach()) and out.perturbed_logits is None


def test_pgd_at_one_step_equals_hand_written(batch):
    x, y = batch
    eps, alpha = 0.2, 0.07
    m = _model()
    obj = PGDAT(eps=eps, steps=1, step_size=alpha)
    out = obj(m, x, y, generator=torch.Generator().manual_seed(5))
    # by hand: uniform start in the ball, one sign step, project onto the ball and the box
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    x0 = (x + (2 * u - 1) * eps).clamp(0, 1).requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(m(x0), y, reduction="sum"), x0)
    x1 = (x + (x0.detach() + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    expected = F.cross_entropy(m(x1), y)
    assert torch.allclose(out.loss, expected, atol=1e-6)
    got, want = _param_grads(m, out.loss), _param_grads(m, expected)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))


def test_pgd_at_stays_in_ball_and_box_and_increases_loss(batch):
    x, y = batch
    m = _model()
    obj = PGDAT(eps=0.1, steps=10)
    x_adv = obj.perturb(m, x, y, generator=torch.Generator().manual_seed(0), eps_scale=1.0)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert F.cross_entropy(m(x_adv), y) > F.cross_entropy(m(x), y)


def _nearby(x):
    """A fixed point near x (Gaussian noise, σ = 0.05, in the box) for the loss-formula tests."""
    return (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)


def test_trades_loss_equals_formula(batch):
    x, y = batch
    m, x_adv = _model(), _nearby(x)
    out = TRADES(beta=6.0).loss(m, x, y, x_adv)
    z, za = m(x), m(x_adv)
    expected = F.cross_entropy(z, y) + 6.0 * _kl_by_hand(z, za).mean()
    assert torch.allclose(out.loss, expected, atol=1e-6)
    got, want = _param_grads(m, out.loss), _param_grads(m, expected)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))


def test_trades_inner_step_by_hand(batch):
    x, y = batch
    eps, eta = 0.3, 0.05
    m = _model()
    x_adv = TRADES(eps=eps, steps=1, step_size=eta).perturb(m, x, y, generator=torch.Generator().manual_seed(3),
                                                              eps_scale=1.0)
    x0 = (x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    g, = torch.autograd.grad(_kl_by_hand(m(x).detach(), m(x0)).sum(), x0)
    expected = (x + (x0.detach() + eta * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-6)


def test_fast_at_perturbation_step(batch):
    x, y = batch
    eps = 0.2
    m = _model()
    obj = FastAT(eps=eps)
    assert obj.alpha == pytest.approx(1.25 * eps)
    x_adv = obj.perturb(m, x, y, generator=torch.Generator().manual_seed(4), eps_scale=1.0)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(4))
    x0 = (x + (2 * u - 1) * eps).clamp(0, 1).requires_grad_(True)
    g, = torch.autograd.grad(F.cross_entropy(m(x0), y, reduction="sum"), x0)
    expected = (x + (x0.detach() + 1.25 * eps * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    assert (x_adv - x).abs().max() <= eps + 1e-6


def _mart_reference(z, za, y, beta):
    """MART's loss as the authors' reference code computes it (Wang et al. 2020, github.com/YisenWang/MART),
    written out per sample: CE(x̂) − log(1.0001 − p_k(x̂) + 1e-12) with k the most likely class ≠ y, plus
    β·Σ_j p_j(x)·(log p_j(x) − log(p_j(x̂) + 1e-12))·(1.0000001 − p_y(x)), all averaged over the batch."""
    pa, p = F.softmax(za, 1), F.softmax(z, 1)
    total = []
    for i in range(len(y)):
        yi = int(y[i])
        ce = -F.log_softmax(za[i], 0)[yi]
        k = max((j for j in range(za.shape[1]) if j != yi), key=lambda j: float(pa[i, j]))
        bce = ce - torch.log(1.0001 - pa[i, k] + 1e-12)
        kl = sum(p[i, j] * (torch.log(p[i, j]) if p[i, j] > 0 else 0.0) - p[i, j] * torch.log(pa[i, j] + 1e-12)
                 for j in range(za.shape[1]))
        total.append(bce + beta * kl * (1.0000001 - p[i, yi]))
    return torch.stack(total).mean()


def test_mart_loss_equals_the_reference_code(batch):
    x, y = batch
    m, x_adv = _model(), _nearby(x)
    out = MART(beta=6.0).loss(m, x, y, x_adv)
    assert torch.allclose(out.loss, _mart_reference(m(x), m(x_adv), y, 6.0), atol=1e-5)


class _Confident(nn.Module):
    """Logits scaled ×60: softmax outputs saturate (p ≈ 1 for one class, 0 elsewhere)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return 60 * self.net(x)


def test_mart_loss_equals_the_reference_code_on_confident_logits(batch):
    """On saturated outputs exact logarithms and the reference's smoothed ones differ by far more than
    rounding (issue 23: 297.4 vs 167.0 on such logits); advkit follows the reference."""
    x, y = batch
    m = Classifier(_Confident(_model().net), num_classes=4)
    x_adv = _nearby(x)
    z, za = m(x), m(x_adv)
    assert (F.softmax(za, 1).amax(1) > 1 - 1e-6).sum() >= len(y) // 2  # the case is confident
    expected = _mart_reference(z, za, y, 6.0)
    out = MART(beta=6.0).loss(m, x, y, x_adv)
    assert torch.allclose(out.loss, expected, rtol=1e-5)


def test_gaussian_noise_is_unclipped_and_drawn_from_generator(batch):
    x, y = batch
    m = _model()
    obj = GaussianNoise(sigma=0.5)
    xp = obj.perturb(m, x, y, generator=torch.Generator().manual_seed(7), eps_scale=1.0)
    expected = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(xp, expected)
    assert xp.min() < 0 or xp.max() > 1  # no clipping to the box
    out = obj(m, x, y, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(out.loss, F.cross_entropy(m(expected), y))


@pytest.mark.parametrize("obj", [PGDAT(eps=0.2, steps=3), TRADES(eps=0.2, steps=3), FastAT(eps=0.2),
                                 MART(eps=0.2, steps=3)])
def test_eps_scale_zero_gives_clean_points_and_scales_budget(batch, obj):
    x, y = batch
    m = _model()
    assert torch.equal(obj.perturb(m, x, y, generator=torch.Generator().manual_seed(0), eps_scale=0.0), x)
    half = obj.perturb(m, x, y, generator=torch.Generator().manual_seed(0), eps_scale=0.5)
    assert (half - x).abs().max() <= 0.1 + 1e-6


@pytest.mark.parametrize("method", ["pgd-at", "trades", "fast-at", "mart", "gaussian"])
def test_perturb_leaves_parameter_grads_and_restores_mode(batch, method):
    x, y = batch
    m = _model()
    seen = []
    m.net[1].register_forward_hook(lambda mod, i, o: seen.append(mod.training))
    obj = build(method, eps=0.2, steps=2)
    m.train()
    xp = obj.perturb(m, x, y, generator=torch.Generator().manual_seed(0), eps_scale=1.0)
    assert all(p.grad is None for p in m.parameters())
    assert xp is not None and m.training
    seen.clear()
    obj(m, x, y, generator=torch.Generator().manual_seed(0))
    assert seen[-1] is True  # the outer loss runs in train mode
    if method != "gaussian":
        assert seen[0] is False  # the inner maximisation ran in eval mode (attack_mode="eval")
    assert m.training


def test_same_generator_same_perturbation(batch):
    x, y = batch
    m = _model()
    a = PGDAT(eps=0.2, steps=3).perturb(m, x, y, generator=torch.Generator().manual_seed(9), eps_scale=1.0)
    b = PGDAT(eps=0.2, steps=3).perturb(m, x, y, generator=torch.Generator().manual_seed(9), eps_scale=1.0)
    c = PGDAT(eps=0.2, steps=3).perturb(m, x, y, generator=torch.Generator().manual_seed(10), eps_scale=1.0)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kwargs", [dict(method="pgd-at", eps=-1), dict(method="pgd-at", steps=0),
                                    dict(method="trades", beta=-1), dict(method="gaussian", sigma=0),
                                    dict(method="fast-at", norm="l2"), dict(method="pgd-at", norm="l7"),
                                    dict(method="pgd-at", attack_mode="sideways"), dict(method="nope")])
def test_invalid_objective_configs_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        build(**kwargs)
