"""Square Attack: the p-schedule, the init patterns, black-box use of the model, budget and queries."""
import pytest
import torch

from advkit.attacks.schedules import square_p
from advkit.attacks.square import Square, bump, mountain
from advkit.attacks.square_draws import Shared
from advkit.errors import ConfigError
from advkit.model import Classifier

# The paper's schedule on 10,000 iterations: p_init for it <= 10, then halved after 10, 50, 200, ...
PAPER = [(0, 1), (10, 1), (11, 2), (50, 2), (51, 4), (200, 4), (201, 8), (500, 8), (501, 16), (1000, 16),
         (1001, 32), (2000, 32), (2001, 64), (4000, 64), (4001, 128), (6000, 128), (6001, 256), (8000, 256),
         (8001, 512), (9999, 512)]


@pytest.mark.parametrize("it,div", PAPER)
def test_p_schedule_matches_paper(it, div):
    assert square_p(it, 0.8, 10_000) == pytest.approx(0.8 / div)
    assert square_p(it, 0.8, 123, rescale=False) == pytest.approx(0.8 / div)


def test_p_schedule_rescales_to_budget():
    # with 1000 queries, iteration 100 plays the role of iteration 1000 of the reference schedule
    assert square_p(100, 0.8, 1000) == pytest.approx(0.8 / 16)
    assert square_p(101, 0.8, 1000) == pytest.approx(0.8 / 32)
    assert square_p(1, 0.8, 1000) == pytest.approx(0.8)
    ps = [square_p(i, 0.5, 5000) for i in range(5000)]
    assert all(a >= b for a, b in zip(ps, ps[1:]))


def test_mountain_and_bump_shape():
    m = mountain(5, 5)
    assert m.argmax() == 12 and m[0, 0] == m.min() and torch.equal(m, m.T)
    b = bump(6)
    assert b.norm().item() == pytest.approx(1.0)
    assert (b[:3] > 0).all() and (b[3:] < 0).all()
    assert b.sum().abs() < 1e-6  # antisymmetric halves


def test_linf_init_is_vertical_stripes(gen):
    atk = Square("linf:0.1")
    x = torch.full((4, 2, 6, 5), 0.5)
    x0 = atk._init_linf(x, gen, None, (0.0, 1.0))
    d = x0 - x
    assert torch.allclose(d.abs(), torch.full_like(d, 0.1))
    assert (d == d[:, :, :1, :]).all()  # constant down each column


def test_l2_init_has_norm_eps(gen):
    atk = Square("l2:0.7")
    x = torch.full((3, 1, 10, 10), 0.5)
    d = atk._init_l2(x, gen, Shared(gen, x.device, x.dtype), (0.0, 1.0)) - x
    assert d.flatten(1).norm(dim=1) == pytest.approx(torch.full((3,), 0.7), abs=1e-5)


class _NoGrad(torch.nn.Module):
    """Fails loudly if anyone differentiates through it."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if torch.is_grad_enabled() and x.requires_grad:
            raise RuntimeError("black-box attack asked for a gradient")
        return self.net(x)


@pytest.mark.parametrize("threat", ["linf:0.15", "l2:0.8"])
def test_square_is_black_box_in_budget_and_counts_queries(digits_model, threat, gen):
    clf, x, y = digits_model
    x, y = x[:40], y[:40]
    bb = Classifier(_NoGrad(clf.net), num_classes=10)
    atk = Square(threat, n_queries=300)
    res = atk(bb, x, y, generator=gen)
    assert Square.uses_gradients is False and res.gradient_calls == 0
    assert atk.threat.contains(res.x_adv, x).all()
    assert res.success.float().mean() > 0.3
    # at most the initial point and n_queries iterations per sample, plus the contract's clean and
    # verification passes
    assert len(x) < res.model_calls <= len(x) * (1 + 300 + 2)


def test_square_targeted_reaches_target(digits_model, gen):
    clf, x, y = digits_model
    x, y = x[:20], y[:20]
    t = (y + 1) % 10
    res = Square("linf:0.3", n_queries=500)(clf, x, y, targets=t, generator=gen)
    assert res.success.float().mean() > 0.5
    assert torch.equal(res.predictions[res.success], t[res.success])


def test_square_config_errors():
    with pytest.raises(ConfigError):
        Square("linf:0.1", n_queries=0)
    with pytest.raises(ConfigError, match="per_sample_flip must be true or false"):
        Square("linf:0.1", per_sample_flip="maybe")
    assert Square("linf:0.1", per_sample_flip=True).describe()["name"] == "square-per-sample-flip"
    with pytest.raises(ConfigError):
        Square("linf:0.1", p_init=0.0)
