"""Carlini-Wagner L2 on the digits CNN."""
from __future__ import annotations

import pytest
import torch

from advkit.attacks import CarliniWagnerL2, PGD
from advkit.errors import ConfigError
from advkit.losses import margin
from advkit.threat import ThreatModel

FAST = dict(max_iterations=100, binary_search_steps=5)


@pytest.fixture(scope="module")
def digits(digits_model):
    clf, x, y = digits_model
    keep = clf.predict(x) == y
    return clf, x[keep][:24], y[keep][:24]


@pytest.fixture(scope="module")
def cw_plain(digits):
    clf, x, y = digits
    return CarliniWagnerL2(**FAST)(clf, x, y)


def test_cw_breaks_every_sample_and_is_reproducible(digits, cw_plain):
    clf, x, y = digits
    assert cw_plain.success.all()
    again = CarliniWagnerL2(**FAST)(clf, x, y, batch_size=5)
    assert torch.allclose(again.x_adv, cw_plain.x_adv, atol=1e-5)
    assert cw_plain.config["name"] == "cw-l2" and cw_plain.config["initial_const"] == 1e-3


def test_cw_is_minimal_compared_with_pgd(digits, cw_plain):
    """PGD-L2 at 0.9x the C&W distance breaks few of the samples: C&W is close to minimal."""
    clf, x, y = digits
    eps = 0.9 * cw_plain.distance.median().item()
    res = PGD(threat=ThreatModel("l2", eps), steps=50)(clf, x, y, generator=torch.Generator().manual_seed(0))
    below = cw_plain.distance > eps  # samples C&W could not break within eps
    assert res.success[below].float().mean() < 0.5


def test_confidence_is_part_of_success(digits, cw_plain):
    clf, x, y = digits
    res = CarliniWagnerL2(confidence=3.0, **FAST)(clf, x, y)
    m = margin(clf.predict(res.x_adv, logits=True), y)
    assert res.success.any()
    assert (m[res.success] >= 3.0 - 1e-4).all()
    assert (res.distance[res.success].median() > cw_plain.distance.median())


def test_max_eps_turns_far_points_into_failures(digits, cw_plain):
    clf, x, y = digits
    budget = cw_plain.distance.median().item()
    res = CarliniWagnerL2(max_eps=budget, **FAST)(clf, x, y)
    assert (res.distance[res.success] <= budget + 1e-6).all()
    assert torch.equal(res.x_adv[~res.success], x[~res.success])
    assert 0 < res.success.sum() < len(x)


def test_targeted_cw_reaches_the_target(digits):
    clf, x, y = digits
    targets = (y + 3) % 10
    res = CarliniWagnerL2(**FAST)(clf, x, y, targets=targets)
    assert res.success.float().mean() > 0.9
    assert (res.predictions[res.success] == targets[res.success]).all()


def test_cw_eot_and_validation(digits):
    clf, x, y = digits
    one = CarliniWagnerL2(max_iterations=5, binary_search_steps=1, abort_early=False)(clf, x[:4], y[:4])
    two = CarliniWagnerL2(max_iterations=5, binary_search_steps=1, abort_early=False, eot=2)(clf, x[:4], y[:4])
    assert two.gradient_calls == 2 * one.gradient_calls
    for bad in ({"norm": "linf"}, {"max_iterations": 0}, {"learning_rate": 0}, {"confidence": -1}, {"eot": 0}):
        with pytest.raises(ConfigError):
            CarliniWagnerL2(**bad)
