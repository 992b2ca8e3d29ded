"""The one-run robustness curve (issue 22): FMN once, then fixed-ε APGD-CE only where it can change a point."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from advkit.attacks.apgd import APGD
from advkit.evaluation import evaluate, spec_from_dict
from advkit.evaluation.curve import curve_batch, first_index
from advkit.threat import ThreatModel

from test_linear_oracles_gradient import oracle_data


def test_first_index_is_the_first_grid_eps_at_or_above_the_distance():
    grid = [0.0, 0.1, 0.2, 0.3]
    d = torch.tensor([0.05, 0.1, 0.25, 0.31, float("inf")])
    assert first_index(grid, d).tolist() == [1, 1, 3, 4, 4]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_binary_linear_model_breaks_each_sample_exactly_from_its_minimal_distance(norm):
    clf, x, y, d, _ = oracle_data(2, norm)
    grid = [float(e) for e in torch.linspace(0, float(d.max()) * 1.2, 9)]
    calls = []

    def attacks_at(eps):
        calls.append(eps)
        return [APGD(ThreatModel(norm, eps), steps=10, restarts=2)]

    out = curve_batch(clf, x, y, grid, norm, attacks_at, torch.Generator().manual_seed(0), fmn_steps=30)
    gap = (torch.tensor(grid)[None] - d[:, None]).abs().min(1).values
    sharp = gap > 2e-3 * d  # no grid ε within FMN's 0.1% of the exact distance
    assert torch.equal(out["broken_at"][sharp], first_index(grid, d)[sharp])
    # a fixed-ε attack below the exact distance fails: every sample is probed once, at one ε
    assert calls == sorted(set(calls), reverse=True)
    assert out["model_calls"] > 0 and out["gradient_calls"] > 0


def test_without_fmn_help_the_descent_alone_finds_each_samples_first_broken_eps(monkeypatch):
    """With an FMN that finds nothing, every sample is probed from the largest ε down until the fixed-ε
    attack fails: on a binary linear model that is exactly the first grid ε above its distance."""
    from types import SimpleNamespace

    import advkit.evaluation.curve as curve_mod

    def blind(**_):
        return lambda clf, x, y, **kw: SimpleNamespace(
            success=torch.zeros(len(x), dtype=torch.bool), distance=torch.full((len(x),), float("inf")),
            x_adv=x.clone(), predictions=y.clone(), model_calls=0, gradient_calls=0)

    monkeypatch.setattr(curve_mod, "FMN", blind)
    clf, x, y, d, _ = oracle_data(2, "l2")
    grid = [float(e) for e in torch.linspace(0, float(d.max()) * 1.2, 7)]
    out = curve_batch(clf, x, y, grid, "l2", lambda eps: [APGD(ThreatModel("l2", eps), steps=10)],
                      torch.Generator().manual_seed(0), fmn_steps=1)
    gap = (torch.tensor(grid)[None] - d[:, None]).abs().min(1).values
    sharp = gap > 1e-3 * d
    assert sharp.sum() >= len(d) - 2
    assert torch.equal(out["broken_at"][sharp], first_index(grid, d)[sharp])
    assert out["gradient_calls"] > 0


@pytest.fixture(scope="module")
def curves(digits_model):
    clf, x, y = digits_model
    out = {}
    for method in ("per-point", "fmn"):
        spec = {"n": 60, "seed": 0, "threats": ["linf:0.1"],
                "stages": {"fgsm": {"enabled": False}, "pgd": {"enabled": False}, "autoattack": {"version": "off"},
                           "checks": {"enabled": False}, "curve": {"method": method}}}
        out[method] = evaluate(spec_from_dict(spec), model=clf, data=(x, y)).result["threats"]["linf:0.1"]["curve"]
    return out


def test_fmn_curve_is_as_strong_as_per_point_apgd_and_monotone(curves):
    old, new = np.array(curves["per-point"]["robust_accuracy"]), np.array(curves["fmn"]["robust_accuracy"])
    assert len(old) == len(new) == 11
    assert (new <= old + 1 / 60 + 1e-9).all()  # at most one of 60 images more at any point
    assert (np.diff(new) <= 1e-12).all() and new[-1] <= new[0]
    assert (np.diff(np.array(curves["fmn"]["raw_accuracy"])) <= 1e-12).all()  # monotone before the worst case too


def test_pass_counts_are_recorded_and_fmn_costs_less(curves):
    old, new = curves["per-point"], curves["fmn"]
    assert new["method"] == "fmn" and old["method"] == "per-point"
    assert "fmn (10 steps) once" in new["attack"] and new["attacks"] == ["fmn", "apgd-ce"]
    for c in (old, new):
        assert c["model_calls"] > 0 and c["gradient_calls"] > 0
    assert new["model_calls"] + new["gradient_calls"] < 0.75 * (old["model_calls"] + old["gradient_calls"])


def test_curve_method_is_validated():
    from advkit.errors import ConfigError
    with pytest.raises(ConfigError):
        spec_from_dict({"stages": {"curve": {"method": "one-shot"}}})
