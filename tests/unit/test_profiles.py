"""Domain profiles as data: every file loads, the spec takes its defaults from the profile (explicit values
win), zoo models and data REFs carry a default profile, and each profile's ε and curve grid reach the attacks."""
from __future__ import annotations

import math

import pytest

from advkit.errors import ConfigError
from advkit.evaluation import evaluate
from advkit.evaluation.spec import EvaluationSpec
from advkit.evaluation.spec_load import spec_from_dict, with_options
from advkit.profiles import default_profile, list_profiles, load_profile, profile_names
from advkit.threat import ThreatModel

EXPECTED = {"mnist": ("linf:0.3", "l2:2.0"), "fashion-mnist": ("linf:0.1",), "cifar10": ("linf:8/255", "l2:0.5"),
            "cifar100": ("linf:8/255",), "imagenet": ("linf:4/255", "l2:3.0")}


def test_the_shipped_profiles_and_their_standard_budgets():
    assert profile_names() == sorted(EXPECTED)
    for p in list_profiles():
        assert tuple(str(t.threat) for t in p.threats) == EXPECTED[p.name]
        assert p.clean_floor is not None and p.clean_floor_source
        for tp in p.threats:
            assert tp.curve[0] == 0 and tp.threat.eps in tp.curve and tp.curve[-1] >= 1.5 * tp.threat.eps
            assert tp.source and tp.convention in ("protocol", "advkit", "none")
            assert (tp.convention == "none") == (not tp.grades)
            assert all(r.year >= 2018 and r.source for r in tp.references)


def test_k255_domains_have_k255_grids_and_the_protocol_grades_cifar10():
    for name, threat in (("cifar10", "linf:8/255"), ("cifar100", "linf:8/255"), ("imagenet", "linf:4/255")):
        grid = load_profile(name).for_threat(threat).curve
        assert all(math.isclose(e * 255, round(e * 255), abs_tol=1e-9) for e in grid)
    tp = load_profile("cifar10").for_threat("linf:8/255")
    assert [(g.name, g.min) for g in tp.grades] == [("competitive", 0.5), ("strong", 0.55), ("state-of-the-art", 0.6)]
    assert tp.convention == "protocol" and load_profile("cifar10").clean_floor == 0.8


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown profile 'cifar1'; expected one of: cifar10, cifar100"):
        spec_from_dict({"profile": "cifar1"})


@pytest.mark.parametrize("model, data, profile", [
    ("zoo:mnist5k-standard", "mnist5k", "mnist"), ("zoo:fmnist-pgdat", "mnist5k", "fashion-mnist"),
    ("m.py:f", "digits", "mnist"), ("m.py:f", "fashion-mnist:/some/root", "fashion-mnist"),
    ("m.py:f", "torchvision:CIFAR10:/data", "cifar10"), ("m.py:f", "torchvision:cifar100:/data", "cifar100"),
    ("m.py:f", "npz:x.npz", None), ("m.py:f", "imagefolder:/d", None),
])
def test_default_profile_of_zoo_models_and_data_refs(model, data, profile):
    assert default_profile(model, data) == profile
    assert spec_from_dict({"model": model, "data": data}).profile == profile


def test_profile_defaults_and_explicit_overrides():
    s = spec_from_dict({"profile": "cifar10"})
    assert s.threats == (ThreatModel.parse("linf:8/255"),)
    assert s.curve_eps(s.threats[0]) == tuple(k / 255 for k in range(0, 17, 2))
    both = spec_from_dict({"profile": "cifar10", "threats": ["linf", "l2"]})  # a bare norm takes the profile's ε
    assert [str(t) for t in both.threats] == ["linf:8/255", "l2:0.5"]
    assert both.curve_eps(both.threats[1])[-1] == pytest.approx(1.0)
    explicit = spec_from_dict({"profile": "cifar10", "threats": ["linf:4/255"], "stages": {"curve": {"points": 3}}})
    assert explicit.threats == (ThreatModel.parse("linf:4/255"),)
    assert explicit.curve_eps(explicit.threats[0]) == pytest.approx((0, 4 / 255, 8 / 255))
    grid = spec_from_dict({"profile": "cifar10", "stages": {"curve": {"eps": [0.1, 0.0]}}})
    assert grid.curve_eps(grid.threats[0]) == (0.0, 0.1)
    off = spec_from_dict({"profile": "none"})
    assert off.profile is None and off.to_dict()["profile"] == "none" and spec_from_dict(off.to_dict()) == off
    assert len(off.curve_eps(off.threats[0])) == 11  # the generic 0 … 2ε
    with pytest.raises(ConfigError, match="no standard l2 budget"):
        spec_from_dict({"profile": "cifar100", "threats": ["l2"]})


def test_cli_options_rederive_what_the_profile_supplied():
    base = EvaluationSpec()  # the built-in default: mnist profile, linf:0.3
    assert with_options(base, profile="cifar10").threats == (ThreatModel.parse("linf:8/255"),)
    cifar = with_options(base, model="net.py:build", data="torchvision:CIFAR10:/d")
    assert (cifar.profile, str(cifar.threats[0])) == ("cifar10", "linf:8/255")
    assert with_options(base, profile="imagenet", threats=("linf:0.01",)).threats == (ThreatModel("linf", 0.01),)
    from_file = spec_from_dict({"threats": ["linf:0.2"]})  # threats a spec file names are kept
    assert with_options(from_file, profile="cifar10").threats == (ThreatModel("linf", 0.2),)
    named = spec_from_dict({"profile": "mnist"})  # a profile a spec file names is kept when the data changes
    assert with_options(named, data="torchvision:CIFAR10:/d").profile == "mnist"


CASES = [(name, i) for name in sorted(EXPECTED) for i in range(len(EXPECTED[name]))]


@pytest.mark.parametrize("name, index", CASES, ids=[f"{n}-{EXPECTED[n][i]}" for n, i in CASES])
def test_each_profiles_eps_and_curve_grid_reach_the_attacks(name, index, digits_model, monkeypatch):
    from advkit.evaluation import stages

    built = []
    real = stages.registry.build

    def spy(attack, threat, **kw):
        built.append((attack, threat.eps))
        return real(attack, threat, **kw)

    monkeypatch.setattr(stages.registry, "build", spy)
    clf, x, y = digits_model
    tp = load_profile(name).threats[index]
    norm = {"threats": [tp.threat.norm]} if index else {}  # the first threat is the default; others by bare norm
    spec = spec_from_dict({"profile": name, "n": 6, "db": None, **norm, "stages": {
        "pgd": {"steps": 1, "restarts": 1}, "autoattack": {"version": "off"}, "checks": {"enabled": False},
        "curve": {"attacks": ["fgsm"], "method": "per-point"}}, "gates": {"max_drop": "off"}})  # one attack per ε
    res = evaluate(spec, model=clf, data=(x[:6], y[:6]))
    key = str(tp.threat)
    assert list(res.result["threats"]) == [key] and res.result["profile"] == name
    attacks = res.result["threats"][key]["attacks"]
    for attack in ("fgsm", "pgd"):
        assert ThreatModel.parse(_threat_of(attacks[attack]["config"])).eps == pytest.approx(tp.threat.eps)
    assert res.result["threats"][key]["curve"]["eps"] == pytest.approx(list(tp.curve))
    assert [e for a, e in built if a == "fgsm"] == pytest.approx(list(tp.curve))  # one curve attack per grid ε


def _threat_of(config: dict) -> str:
    if "threat" in config:
        return config["threat"]
    return _threat_of(config.get("attack") or config.get("base") or next(v for v in config.values()
                                                                           if isinstance(v, dict)))
