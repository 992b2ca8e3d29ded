"""``advkit report RUN --format robustbench``: the RobustBench model card of a run, checked against the
schema written from RobustBench's model-info files; only reference-AutoAttack numbers fill
``autoattack_acc``, an upper bound or an untrusted headline sets ``unreliable``."""
from __future__ import annotations

import copy
import json
import textwrap

import pytest

from advkit.cli.main import main
from advkit.errors import ConfigError
from advkit.report.robustbench import errors, model_card

# Three entries in the form of RobustBench's model_info/cifar10/Linf/*.json files (a plain entry, the
# standard model, and one with external, footnote and unreliable); values shortened.
RB_FILES = [
    {"link": "https://arxiv.org/abs/1905.13736", "name": "Unlabeled Data Improves Adversarial Robustness",
     "authors": "Y. Carmon et al.", "additional_data": True, "number_forward_passes": 1, "dataset": "cifar10",
     "venue": "NeurIPS 2019", "architecture": "WideResNet-28-10", "eps": "8/255", "clean_acc": "89.69",
     "reported": "62.5", "autoattack_acc": "59.53"},
    {"link": "https://github.com/RobustBench/robustbench/", "name": "Standardly trained model", "authors": "",
     "additional_data": False, "number_forward_passes": 1, "dataset": "cifar10", "venue": "N/A",
     "architecture": "WideResNet-28-10", "eps": "8/255", "clean_acc": "94.78", "reported": "0.0",
     "autoattack_acc": "0.0"},
    {"link": "https://arxiv.org/abs/1905.10510", "name": "k-WTA", "authors": "C. Xiao et al.",
     "additional_data": False, "number_forward_passes": 1, "dataset": "cifar10", "venue": "ICLR 2020",
     "architecture": "DenseNet-121", "eps": "0.031", "clean_acc": "79.28", "reported": "52.4",
     "footnote": "Uses eps = 0.031", "autoattack_acc": "18.50", "external": "7.15", "unreliable": True},
]


def test_schema_accepts_robustbench_model_info_files():
    for entry in RB_FILES:
        assert errors(entry) == []


@pytest.mark.parametrize("change, word", [
    (lambda d: d.pop("clean_acc"), "clean_acc: required"),
    (lambda d: d.update(clean_acc=89.69), "clean_acc: expected string"),
    (lambda d: d.update(autoattack_acc="101.0"), "autoattack_acc: expected text matching"),
    (lambda d: d.update(eps="eight"), "eps: expected text matching"),
    (lambda d: d.update(additional_data="yes"), "additional_data: expected boolean"),
    (lambda d: d.update(number_forward_passes=0), "number_forward_passes: expected >= 1"),
    (lambda d: d.update(accuracy="1"), "accuracy: not a field"),
    (lambda d: d.update(threat_model="L1"), "threat_model: expected one of"),
])
def test_schema_rejects_what_robustbench_would_not_read(change, word):
    entry = copy.deepcopy(RB_FILES[0])
    change(entry)
    assert any(word in e for e in errors(entry)), errors(entry)


def _result(reference=True, trusted=True, aa=0.40, worst=0.40, norm="linf:8/255"):
    protocol = {"name": "autoattack-standard", "reference": reference,
                "reasons": [] if reference else ["steps 5 < 100"]}
    section = {"robust_accuracy": worst, "upper_bound": False, "protocol": protocol, "trusted": trusted,
               "untrusted_reasons": [] if trusted else ["zero-gradients: no gradient"],
               "attacks": {"autoattack": {"robust_accuracy": aa, "reference": reference}}}
    return {"model": "m.py:build", "data": "cifar10", "profile": "cifar10", "n": 100, "seed": 0,
            "advkit_version": "0.1.0", "randomized_model": False, "clean": {"accuracy": 0.9},
            "threats": {norm: section}}


def test_reference_autoattack_fills_autoattack_acc():
    card = model_card(_result(aa=0.5953, worst=0.5953))
    assert card["autoattack_acc"] == "59.53" and card["unreliable"] is False and "external" not in card
    assert (card["clean_acc"], card["eps"], card["dataset"], card["threat_model"]) == ("90.00", "8/255", "cifar10",
                                                                                       "Linf")
    assert errors(card) == []


def test_a_stronger_attack_than_autoattack_goes_to_external():
    card = model_card(_result(aa=0.50, worst=0.45))
    assert card["autoattack_acc"] == "50.00" and card["external"] == "45.00" and card["unreliable"] is False


def test_reduced_autoattack_is_an_upper_bound_and_never_autoattack_acc():
    card = model_card(_result(reference=False, aa=0.5, worst=0.5))
    assert card["autoattack_acc"] is None and card["external"] == "50.00" and card["unreliable"] is True
    assert "upper bound" in card["footnote"] and "steps 5 < 100" in card["footnote"]


def test_untrusted_headline_is_unreliable():
    card = model_card(_result(trusted=False))
    assert card["autoattack_acc"] == "40.00" and card["unreliable"] is True and "zero-gradients" in card["footnote"]


def test_threat_choice_and_l1_refusal():
    res = _result()
    res["threats"]["l2:0.5"] = res["threats"]["linf:8/255"]
    assert model_card(res, "l2:0.5")["threat_model"] == "L2"
    with pytest.raises(ConfigError, match="expected one of the run's threats"):
        model_card(res, "l2:1")
    with pytest.raises(ConfigError, match="L∞ and L2 leaderboards"):
        model_card(_result(norm="l1:10"))


FACTORY = """
import torch
from torch import nn
def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))
"""

SPEC = """
data = "digits"
n = 12
batch_size = 12
threats = ["linf:0.3", "l2:1.0"]
[stages.pgd]
steps = 2
restarts = 1
[stages.curve]
enabled = false
[stages.checks]
enabled = false
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run of a tiny untrained net with reference AutoAttack budgets at linf:0.3 and l2:1.0."""
    tmp = tmp_path_factory.mktemp("rb")
    (tmp / "f.py").write_text(FACTORY)
    spec = tmp / "spec.toml"
    spec.write_text(f"model = {json.dumps(str(tmp / 'f.py') + ':build')}\n" + textwrap.dedent(SPEC))
    assert main(["evaluate", str(spec), "--db", str(tmp / "h.db"), "--out", str(tmp / "run"), "--quiet"]) in (0, 1)
    return tmp / "run"


def test_cli_writes_a_valid_card_of_a_real_run(run_dir, tmp_path, capsys):
    out = tmp_path / "card.json"
    code = main(["report", str(run_dir), "--format", "robustbench", "--out", str(out), "--card", "venue=ICLR 2020",
                 "--card", "additional_data=false", "--card", "reported=62.5"])
    assert code == 0
    card = json.loads(out.read_text())
    result = json.loads((run_dir / "result.json").read_text())
    t = result["threats"]["linf:0.3"]
    assert errors(card) == []
    assert t["protocol"]["reference"] is True
    assert card["autoattack_acc"] == f"{100 * t['attacks']['autoattack']['robust_accuracy']:.2f}"
    assert card["clean_acc"] == f"{100 * result['clean']['accuracy']:.2f}"
    assert (card["venue"], card["additional_data"], card["reported"]) == ("ICLR 2020", False, "62.5")
    assert card["unreliable"] is False and card["threat_model"] == "Linf" and card["eps"] == "0.3"
    assert main(["report", str(run_dir), "--format", "robustbench", "--threat", "l2:1"]) == 0
    assert json.loads(capsys.readouterr().out)["threat_model"] == "L2"


@pytest.mark.parametrize("args, words", [
    (["--card", "additional_data=yes"], "additional_data: expected boolean"),
    (["--card", "citations=3"], "--card: expected keys among"),
    (["--threat", "linf:0.1"], "expected one of the run's threats"),
])
def test_cli_bad_card_values_are_usage_errors(run_dir, capsys, args, words):
    assert main(["report", str(run_dir), "--format", "robustbench", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
