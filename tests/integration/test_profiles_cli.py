"""``--profile`` end to end: the profile's threat and curve grid in result.json, the grade (here: none,
because the tiny AutoAttack budget is not the reference protocol) in result.json and report.md, usage errors."""
from __future__ import annotations

import json
import textwrap

import pytest

from advkit.cli.main import main
from advkit.profiles import load_profile

from _evalhelpers import TINY_SPEC, write_inputs

SPEC = textwrap.dedent(TINY_SPEC.format(n=20, batch_size=20)).replace('threats = ["linf:0.1"]\n', "")
SPEC = SPEC.replace("[stages.curve]\npoints = 3\n", "[stages.curve]\nattacks = [\"fgsm\"]\n")


@pytest.fixture(scope="module")
def refs(tmp_path_factory, digits_model):
    return write_inputs(tmp_path_factory.mktemp("inputs"), digits_model, n=20)


def _spec(path, refs, extra=""):
    path.write_text(f'model = {json.dumps(refs["model"])}\ndata = {json.dumps(refs["data"])}\n{extra}{SPEC}')
    return path


def test_evaluate_with_a_profile(tmp_path, refs):
    code = main(["evaluate", str(_spec(tmp_path / "s.toml", refs)), "--profile", "cifar10", "--out",
                 str(tmp_path / "out"), "--db", str(tmp_path / "h.db"), "--quiet"])
    assert code == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["profile"] == "cifar10" and result["spec"]["profile"] == "cifar10"
    t = result["threats"]["linf:8/255"]
    assert t["curve"]["eps"] == pytest.approx(list(load_profile("cifar10").for_threat("linf:8/255").curve))
    # AutoAttack at 10 steps is not the reference protocol: the number is an upper bound and gets no grade
    assert t["grade"]["grade"] is None and t["grade"]["text"].startswith("no grade: ")
    assert "no grade: " in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("args, extra", [
    (["--profile", "cifar1"], ""),
    ([], '[gates]\nrequire = ["grade[linf:8/255] >= superb"]\n'),
    (["--profile", "none"], '[gates]\nrequire = ["grade[linf:8/255] >= strong"]\n'),
    (["--profile", "imagenet"], '[gates]\nrequire = ["grade[linf:8/255] >= strong"]\n'),
])
def test_usage_errors_exit_2_before_any_attack(tmp_path, refs, args, extra, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(f'model = {json.dumps(refs["model"])}\ndata = {json.dumps(refs["data"])}\n'
                    f'threats = ["linf:8/255"]\n{extra}')
    assert main(["evaluate", str(spec), *args, "--out", str(tmp_path / "o"), "--db", str(tmp_path / "h.db"),
                 "--quiet"]) == 2
    assert not (tmp_path / "o").exists()


def test_list_profiles(capsys):
    assert main(["list", "profiles", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["profile"] for r in rows if r["profile"]] == ["cifar10", "cifar100", "fashion-mnist", "imagenet",
                                                           "mnist"]
    assert (rows[0]["threat"], rows[0]["grades"], rows[0]["clean floor"]) == ("linf:8/255", "50/55/60%", "80%")


@pytest.mark.parametrize("args, threat", [(["--profile", "cifar10"], "linf:8/255"),
                                          (["--profile", "imagenet", "--threat", "l2"], "l2:3.0"),
                                          (["--threat", "linf:0.05"], "linf:0.05")])
def test_attack_takes_its_budget_from_the_profile(refs, args, threat, capsys):
    code = main(["attack", "fgsm", "--model", refs["model"], "--data", refs["data"], "--n", "5", "--json", *args])
    assert code == 0 and json.loads(capsys.readouterr().out)["threat"] == threat


def test_attack_without_threat_or_profile_is_a_usage_error(refs):
    assert main(["attack", "fgsm", "--model", refs["model"], "--data", refs["data"], "--n", "5"]) == 2
