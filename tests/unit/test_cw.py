"""Carlini-Wagner L2 on the digits CNN."""
from __future__ import annotations

import pytest
import torch

from advkit.attacks import CarliniWagnerL2
from advkit.errors import ConfigError
from advkit.losses import margin

FAST = dict(max_iterations=100, binary_search_steps=6, initial_const=0.01)


@pytest.fixture(scope="module")
def digits(digits_model):
    clf, x, y = digits_model
    keep = clf.predict(x) == y
    return clf, x[keep][:16], y[keep][:16]


@pytest.fixture(scope="module")
def cw_plain(digits):
    clf, x, y = digits
    return CarliniWagnerL2(**FAST)(clf, x, y)


def test_cw_breaks_every_sample_and_is_reproducible(digits, cw_plain):
    clf, x, y = digits
    assert cw_plain.success.all()
    again = CarliniWagnerL2(**FAST)(clf, x, y, batch_size=5)
    assert torch.allclose(again.x_adv, cw_plain.x_adv, atol=1e-5)
    assert cw_plain.config["name"] == "cw-l2" and cw_plain.config["binary_search_steps"] == 6
    default = CarliniWagnerL2()
    assert (default.initial_const, default.binary_search_steps, default.learning_rate) == (1e-3, 9, 0.01)


def test_more_binary_search_steps_never_increase_the_distance(digits, cw_plain):
    """The first c values are the same, so extra binary-search steps can only refine the result."""
    clf, x, y = digits
    fewer = CarliniWagnerL2(**{**FAST, "binary_search_steps": 4})(clf, x, y)
    assert (cw_plain.success | ~fewer.success).all()
    both = fewer.success
    assert (cw_plain.distance[both] <= fewer.distance[both] + 1e-6).all()
    assert cw_plain.distance[both].sum() < fewer.distance[both].sum()


def test_cw_points_are_close_to_the_boundary(digits, cw_plain):
    """Halfway to the C&W point the model still predicts the true class for most samples."""
    clf, x, y = digits
    half = x + 0.5 * (cw_plain.x_adv - x)
    assert (clf.predict(half) == y).float().mean() > 0.8


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
    # targeted needs larger moves: a faster Adam rate than the paper's 0.01 keeps 100 iterations enough
    res = CarliniWagnerL2(**{**FAST, "learning_rate": 0.05})(clf, x, y, targets=targets)
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
