"""FMN (Pintor et al. 2021) against the exact minimal distances of linear models, and its settings."""
from __future__ import annotations

import pytest
import torch

from advkit.attacks import FMN, registry
from advkit.errors import ConfigError

from test_linear_oracles_gradient import oracle_data


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_binary_linear_model_distance_is_the_exact_minimum(norm):
    clf, x, y, d, _ = oracle_data(2, norm)
    res = FMN(norm=norm)(clf, x, y)
    assert res.success.all()
    ratio = res.distance / d
    assert ratio.min() >= 1 - 1e-4  # no point closer than the boundary
    assert ratio.max() <= 1 + 2e-3


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_multiclass_linear_model_never_beats_the_minimum_and_mostly_reaches_it(norm):
    clf, x, y, d, _ = oracle_data(5, norm)
    res = FMN(norm=norm)(clf, x, y)
    assert res.success.all()
    ratio = res.distance / d
    assert ratio.min() >= 1 - 1e-4
    assert ratio.median() <= 1 + 1e-3
    assert (ratio <= 1 + 1e-2).float().mean() >= 0.8


def test_max_eps_turns_farther_points_into_failures_that_return_x():
    clf, x, y, d, _ = oracle_data(2, "l2")
    far = FMN(norm="l2", max_eps=float(d.min()) * 0.5)(clf, x, y)
    assert not far.success.any() and torch.equal(far.x_adv, x)
    near = FMN(norm="l2", max_eps=float(d.max()) * 1.01)(clf, x, y)
    assert near.success.all()


def test_model_passes_are_steps_per_sample_plus_the_checks():
    clf, x, y, _, _ = oracle_data(2, "linf")
    res = FMN(norm="linf", steps=20)(clf, x, y)
    assert res.gradient_calls == 20 * len(x)
    assert res.model_calls == 22 * len(x)  # + the clean pass and the fresh check of the contract


def test_registry_builds_fmn_from_the_threat():
    atk = registry.build("fmn", "l1:8")
    assert isinstance(atk, FMN) and atk.norm == "l1" and atk.max_eps == 8


@pytest.mark.parametrize("kw", [{"steps": 0}, {"alpha_init": 0.0}, {"gamma_init": 1.0},
                                {"gamma_init": 0.01, "gamma_final": 0.1}, {"norm": "l3"}])
def test_bad_settings_are_config_errors(kw):
    with pytest.raises(ConfigError):
        FMN(**kw)
