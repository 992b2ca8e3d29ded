"""SmoothedClassifier PREDICT / CERTIFY against analytic oracles (Cohen, Rosenfeld & Kolter 2019)."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from torch import nn

from advkit.errors import ConfigError
from advkit.model import Classifier
from advkit.smoothing import ABSTAIN, SmoothedClassifier, run_certify_stage
from advkit.smoothing.smoothed import image_generators


class Constant(nn.Module):
    """Always predicts class ``c``, reading nothing but the batch size (trivially cheap)."""

    def __init__(self, c=1, k=3):
        super().__init__()
        self.c, self.k = c, k

    def forward(self, x):
        z = torch.zeros(len(x), self.k, device=x.device)
        z[:, self.c] = 1.0
        return z


class Linear2(nn.Module):
    """Binary linear classifier: class 1 iff w·x + b > 0, with ‖w‖₂ = 1."""

    def __init__(self, w, b):
        super().__init__()
        self.register_buffer("w", w.flatten())
        self.b = float(b)

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], 1)


def linear_setup(distances, dim=16):
    """Points at signed distances ``distances`` from a hyperplane through the middle of [0,1]^dim."""
    w = torch.zeros(dim)
    w[:4] = 0.5  # unit norm
    x = torch.full((len(distances), 1, 4, 4), 0.5)
    b = -float(w @ x[0].flatten())
    x = x + torch.tensor(distances, dtype=torch.float32).view(-1, 1, 1, 1) * w.view(1, 1, 4, 4)
    return Classifier(Linear2(w, b), num_classes=2), x


def test_constant_classifier_radius_is_exact():
    sigma, n, alpha = 0.25, 100_000, 0.001
    clf = Classifier(Constant(1), num_classes=3)
    x = torch.rand(3, 1, 2, 2)
    cert = SmoothedClassifier(clf, sigma, 3).certify(x, 100, n, alpha, torch.Generator().manual_seed(0), 20_000)
    expected = sigma * norm.ppf(alpha ** (1 / n))
    assert torch.equal(cert.prediction, torch.ones(3, dtype=torch.long))
    assert np.allclose(cert.radius.numpy(), expected, rtol=0, atol=1e-12)
    assert round(float(cert.radius[0]), 3) == 0.953
    assert torch.equal(cert.samples, torch.full((3,), 100 + n))


def test_constant_classifier_stage_certified_accuracy():
    clf = Classifier(Constant(1), num_classes=3)
    x, y = torch.rand(4, 1, 2, 2), torch.tensor([1, 1, 0, 1])
    res = run_certify_stage(clf, x, y, sigma=0.25, n0=100, n=100_000, alpha=0.001, radii=[0.5, 0.9, 1.0],
                            batch_size=50_000, generator=torch.Generator().manual_seed(1))
    assert res["certified_accuracy"] == {"0.5": 0.75, "0.9": 0.75, "1": 0.0}
    assert res["records"]["correct"] == [1, 1, 0, 1]
    assert res["abstain_rate"] == 0.0
    assert math.isclose(res["average_radius"], 0.75 * 0.25 * norm.ppf(0.001 ** 1e-5), rel_tol=1e-12)


@pytest.mark.parametrize("n", [20_000, 100_000])
def test_linear_classifier_radius_below_and_close_to_distance(n):
    d = [0.1, 0.25, 0.5, 0.7, -0.3]
    clf, x = linear_setup(d)
    cert = SmoothedClassifier(clf, 0.25, 2).certify(x, 100, n, 0.001, torch.Generator().manual_seed(2), 20_000)
    true = torch.tensor([abs(v) for v in d], dtype=torch.float64)
    assert cert.prediction.tolist() == [1, 1, 1, 1, 0]
    assert (cert.radius <= true).all()
    # the gap is what Clopper–Pearson at α costs plus sampling noise: at most (z_α + 4) standard errors of p̂
    p = norm.cdf(true.numpy() / 0.25)
    slack = (norm.ppf(1 - 0.001) + 4) * np.sqrt(p * (1 - p) / n)
    max_gap = 0.25 * (norm.ppf(p) - norm.ppf(p - slack))
    assert ((true - cert.radius).numpy() <= max_gap).all()
    if n == 100_000:  # within a few percent where the distance is not tiny
        rel = ((true - cert.radius) / true)[1:]
        assert (rel < 0.04).all(), rel


def test_predict_abstains_at_the_boundary_and_decides_away_from_it():
    clf, x = linear_setup([0.0] * 8 + [0.3, -0.3])
    pred = SmoothedClassifier(clf, 0.25, 2).predict(x, 2000, 0.001, torch.Generator().manual_seed(3))
    assert pred[:8].tolist() == [ABSTAIN] * 8
    assert pred[8:].tolist() == [1, 0]


def test_certify_abstains_at_the_boundary():
    clf, x = linear_setup([0.0] * 6 + [0.02])
    cert = SmoothedClassifier(clf, 0.25, 2).certify(x, 100, 1000, 0.001, torch.Generator().manual_seed(4))
    assert cert.prediction.tolist() == [ABSTAIN] * 7  # p_A ≤ 0.53: n = 1000 cannot show p_A > 1/2 at α
    assert (cert.radius == 0).all()


def test_results_do_not_depend_on_batch_composition(digits_model):
    clf, x, _ = digits_model
    sm = SmoothedClassifier(clf, 0.25, 10)
    together = sm.certify(x[:6], 50, 500, 0.01, image_generators(7, range(6)), batch_size=200)
    alone = sm.certify(x[4:5], 50, 500, 0.01, image_generators(7, [4]), batch_size=200)
    assert together.prediction[4] == alone.prediction[0]
    assert together.p_lower[4] == alone.p_lower[0]


def test_inputs_and_modes_untouched(digits_model):
    clf, x, _ = digits_model
    x0 = x[:3].clone()
    clf.train()
    try:
        SmoothedClassifier(clf, 0.5, 10).certify(x[:3], 10, 100, 0.01, torch.Generator().manual_seed(0))
        assert clf.training and all(p.requires_grad for p in clf.parameters())
    finally:
        clf.eval()
    assert torch.equal(x[:3], x0)


def test_bad_configuration_raises():
    clf = Classifier(Constant(1), num_classes=3)
    with pytest.raises(ConfigError):
        SmoothedClassifier(clf, 0.0, 3)
    with pytest.raises(ConfigError):
        SmoothedClassifier(clf, 0.25, 3).certify(torch.rand(1, 1, 2, 2), 100, 0, 0.001)
    with pytest.raises(ConfigError):
        SmoothedClassifier(clf, 0.25, 3).predict(torch.rand(1, 1, 2, 2), 10, 1.5)
