"""Evaluation specs: TOML → frozen dataclasses, errors that name the key path, CLI options."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from advkit.errors import ConfigError
from advkit.evaluation.spec import EvaluationSpec
from advkit.evaluation.spec_load import load_spec, parse_max_drop, spec_from_dict, with_options
from advkit.threat import ThreatModel

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))


def test_defaults_are_the_built_in_evaluation():
    s = spec_from_dict({})
    assert s == EvaluationSpec()
    assert (s.model, s.data, s.n, s.threats) == ("zoo:mnist5k-standard", "mnist5k", 1000, (ThreatModel("linf", 0.3),))
    assert (s.stages.pgd.steps, s.stages.pgd.restarts, s.stages.autoattack.version) == (20, 5, "auto")
    assert s.gates.max_drop == 0.02
    assert dataclasses.is_dataclass(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n = 3  # type: ignore[misc]


def test_default_curve_is_0_to_2eps_in_10_steps():
    s = spec_from_dict({"threats": ["linf:8/255"]})
    eps = s.curve_eps(s.threats[0])
    assert len(eps) == 11 and eps[0] == 0 and eps[-1] == pytest.approx(16 / 255)
    assert eps[5] == pytest.approx(8 / 255)
    assert spec_from_dict({"stages": {"curve": {"eps": [0.2, 0.1]}}}).curve_eps(s.threats[0]) == (0.1, 0.2)


@pytest.mark.parametrize("doc, message", [
    ({"stages": {"pgd": {"steps": "x"}}}, 'stages.pgd.steps: expected an integer >= 1, got "x"'),
    ({"stages": {"pgd": {"steps": 0}}}, "stages.pgd.steps: expected an integer >= 1, got 0"),
    ({"stages": {"pgd": {"restarts": 2.5}}}, "stages.pgd.restarts: expected an integer >= 1"),
    ({"stages": {"autoattack": {"version": "fast"}}}, "stages.autoattack.version: expected one of"),
    ({"stages": {"curve": {"eps": []}}}, "stages.curve.eps: expected a non-empty list"),
    ({"stages": {"curve": {"eps": [0.1, -1]}}}, "stages.curve.eps"),
    ({"stages": {"per_class": {"min_accuracy": 2}}}, "stages.per_class.min_accuracy: expected a number in [0.0, 1.0]"),
    ({"stages": {"checks": {"enabled": "yes"}}}, "stages.checks.enabled: expected true or false"),
    ({"stages": {"pgd": {"stepz": 3}}}, "stages.pgd.stepz: unknown key"),
    ({"stages": {"pdg": {}}}, "stages.pdg: unknown key"),
    ({"stages": 3}, "stages: expected a table"),
    ({"n": -1}, "n: expected an integer >= 1"),
    ({"n": True}, "n: expected an integer >= 1, got true"),
    ({"modle": "x"}, "modle: unknown key"),
    ({"threats": []}, "threats: expected a non-empty list"),
    ({"threats": ["linf:0.3", "l3:1"]}, "threats[1]: norm must be one of"),
    ({"gates": {"max_drop": "lots"}}, "gates.max_drop: expected a fraction"),
    ({"gates": {"require": [1]}}, "gates.require: expected a list of strings"),
    ({"gates": {"clean_floor": 95}}, "gates.clean_floor: expected a number in [0.0, 1.0]"),
    ({"certify": {"sigma": 0}}, "certify.sigma: expected a number > 0"),
    ({"certify": {"alpha": 1.5}}, "certify.alpha"),
    ({"certify": {"n0": "many"}}, "certify.n0: expected an integer >= 1"),
])
def test_errors_name_the_key_path(doc, message):
    with pytest.raises(ConfigError) as e:
        spec_from_dict(doc)
    assert message in str(e.value)


def test_toml_file_round_trip_and_errors(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('n = 50\nthreats = ["l2:0.5", "linf:8/255"]\n[stages.pgd]\nsteps = 7\n[gates]\nmax_drop = "3pp"\n'
                 '[certify]\nsigma = 0.5\n')
    s = load_spec(p)
    assert s.n == 50 and s.stages.pgd.steps == 7 and s.gates.max_drop == pytest.approx(0.03)
    assert [str(t) for t in s.threats] == ["l2:0.5", "linf:8/255"] and s.certify.sigma == 0.5
    assert spec_from_dict(s.to_dict()) == s  # to_dict is itself a valid spec document
    p.write_text("n = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_spec(p)
    with pytest.raises(ConfigError, match="cannot read spec file"):
        load_spec(tmp_path / "nope.toml")


def test_cli_options_build_the_same_spec_as_the_file():
    from_file = spec_from_dict({"model": "m.py:f", "data": "digits", "n": 20, "seed": 3, "threats": ["l2:1"],
                                "stages": {"autoattack": {"version": "off"}}})
    from_options = with_options(EvaluationSpec(), model="m.py:f", data="digits", n=20, seed=3, threats=("l2:1",),
                                no_autoattack=True)
    assert from_file == from_options
    with pytest.raises(ConfigError, match="n: expected an integer >= 1"):
        with_options(EvaluationSpec(), n=0)
    assert with_options(from_file, n=None) == from_file  # None keeps the spec's value


def test_spec_hash_tracks_what_changes_the_numbers():
    base = EvaluationSpec()
    assert base.spec_hash() == spec_from_dict({}).spec_hash()
    assert base.spec_hash() == with_options(base, output="elsewhere", db="other.db").spec_hash()
    assert base.spec_hash() != with_options(base, seed=1).spec_hash()
    assert base.spec_hash() != spec_from_dict({"stages": {"pgd": {"steps": 21}}}).spec_hash()


def test_max_drop_forms():
    assert parse_max_drop("2pp") == pytest.approx(0.02)
    assert parse_max_drop("2.5%") == pytest.approx(0.025)
    assert parse_max_drop(0.05) == 0.05 and parse_max_drop("off") is None
    with pytest.raises(ConfigError):
        parse_max_drop(3)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_specs_are_valid(path):
    assert isinstance(load_spec(path), EvaluationSpec)


def test_there_are_examples():
    assert len(EXAMPLES) >= 2
