"""The checks for a flawed evaluation: each fires on the symptom it documents and stays quiet otherwise."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from advkit.cli.main import main
from advkit.evaluation import checks
from advkit.findings import CATALOGUE
from advkit.model import Classifier

CODES = ["zero-gradients", "nan-gradients", "blackbox-beats-whitebox", "fgsm-beats-pgd", "unbounded-not-zero",
         "curve-not-monotone", "randomized-no-eot", "ce-autoattack-gap", "fgsm-breaks-all", "class-below-minimum",
         "autoattack-skipped", "probability-outputs", "randomized-model", "input-range", "nan-outputs"]


def test_every_code_is_documented_and_listed(capsys):
    for code in CODES:
        info = CATALOGUE[code]
        assert info.title and len(info.cause) > 40 and len(info.remedy) > 20
    assert main(["list", "checks", "--json"] if _has_json() else ["list", "checks"]) == 0
    out = capsys.readouterr().out
    for code in CODES:
        assert code in out


def _has_json() -> bool:
    from advkit.cli.list_cmd import list_ as cmd
    return any("--json" in p.opts for p in cmd.params)


def _records(**arrays):
    r = {"clean_correct": np.ones(100, bool)}
    r.update({f"t/{k}/success": v for k, v in arrays.items()})
    return r


def _codes(findings):
    return [f.code for f in findings]


def test_blackbox_beats_whitebox():
    pgd = np.zeros(100, bool)
    pgd[:50] = True
    square = pgd.copy()
    assert checks.blackbox_findings(_records(pgd=pgd, square=square), "t", ["pgd"], "square/success", 0.01) == []
    square[50:60] = True  # ten samples only the black-box attack broke
    found = checks.blackbox_findings(_records(pgd=pgd, square=square), "t", ["pgd"], "square/success", 0.01)
    assert _codes(found) == ["blackbox-beats-whitebox"] and found[0].data["count"] == 10


def test_fgsm_beats_pgd():
    f, p = np.zeros(100, bool), np.zeros(100, bool)
    f[:30], p[:40] = True, True
    assert checks.fgsm_pgd_findings(_records(fgsm=f, pgd=p), "t", 0.01) == []
    p[:] = False
    p[:20] = True
    assert _codes(checks.fgsm_pgd_findings(_records(fgsm=f, pgd=p), "t", 0.01)) == ["fgsm-beats-pgd"]


def test_gap_unbounded_monotone_fgsm_and_classes():
    assert checks.gap_findings(0.5, 0.45, "t", 0.1, "AutoAttack") == []
    assert _codes(checks.gap_findings(0.3, 0.0, "t", 0.1, "AutoAttack")) == ["ce-autoattack-gap"]
    from advkit.threat import ThreatModel
    tm = ThreatModel("linf", 0.3)
    assert checks.unbounded_findings(0.0, tm, 1.0, 0.05) == []
    assert _codes(checks.unbounded_findings(0.4, tm, 1.0, 0.05)) == ["unbounded-not-zero"]
    assert checks.monotone_findings([0, 0.1, 0.2], [0.9, 0.5, 0.5], tm, 0.01) == []
    found = checks.monotone_findings([0, 0.1, 0.2], [0.9, 0.2, 0.5], tm, 0.01)
    assert _codes(found) == ["curve-not-monotone"] and "0.1→0.2" in found[0].message
    assert _codes(checks.fgsm_breaks_all(0.0, tm, 0.01)) == ["fgsm-breaks-all"]
    assert checks.fgsm_breaks_all(0.3, tm, 0.01) == []
    pc = [{"class": 0, "accuracy": 0.9, "n": 5}, {"class": 1, "accuracy": 0.2, "n": 5}, {"class": 2, "accuracy": 0.0, "n": 0}]
    found = checks.class_findings(pc, tm, 0.5)
    assert _codes(found) == ["class-below-minimum"] and found[0].data["classes"] == [1]
    assert checks.class_findings(pc, tm, None) == []


class _Scaled(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.scale = scale

    def forward(self, x):
        return self.lin(x.flatten(1)) * self.scale


class _Rounded(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin((torch.round(x * 4) / 4).flatten(1))  # torch.round has a zero gradient everywhere


def test_gradient_check_zero_and_healthy():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 2, 2)
    healthy = Classifier(_Scaled(1.0), num_classes=3)
    y = healthy.predict(x)
    assert checks.gradient_findings(healthy, x, y) == []
    saturated = Classifier(_Scaled(1e6), num_classes=3)
    found = checks.gradient_findings(saturated, x, saturated.predict(x))
    assert _codes(found) == ["zero-gradients"] and found[0].data["fraction"] > 0.5
    shattered = Classifier(_Rounded(), num_classes=3)
    assert _codes(checks.gradient_findings(shattered, x, shattered.predict(x))) == ["zero-gradients"]


def test_gradient_check_nan():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return self.lin(torch.sqrt(x.flatten(1) - 0.5).nan_to_num(0.0) + 0 * x.flatten(1))
    clf = Classifier(Bad(), num_classes=3)
    x = torch.rand(8, 1, 2, 2)
    assert "nan-gradients" in _codes(checks.gradient_findings(clf, x, torch.zeros(8, dtype=torch.long)))


def test_preflight_errors_abort_with_the_fix():
    import pytest
    from advkit.errors import EvaluationAborted
    from advkit.evaluation import evaluate, spec_from_dict
    torch.manual_seed(0)
    clf = Classifier(_Scaled(1.0), num_classes=3)
    x, y = torch.rand(10, 1, 2, 2), torch.randint(0, 3, (10,))
    spec = spec_from_dict({"n": 10, "db": "unused.db"})
    with pytest.raises(EvaluationAborted) as e:
        evaluate(spec, model=clf, data=(x * 255, y))  # 0..255 data for a [0, 1] model
    assert [f.code for f in e.value.findings] == ["input-range"] and "fix:" in str(e.value)
    probs = Classifier(nn.Sequential(_Scaled(1.0), nn.Softmax(dim=1)), num_classes=3)
    with pytest.raises(EvaluationAborted) as e:
        evaluate(spec, model=probs, data=(x, y))
    assert [f.code for f in e.value.findings] == ["probability-outputs"] and "remove" in str(e.value).lower()


def test_blackbox_check_fires_on_a_single_sample_at_the_default_sensitivity():
    """The official AutoAttack check reacts to any point Square breaks that white-box attacks missed."""
    from advkit.evaluation.spec import ChecksStage
    pgd = np.zeros(500, bool)
    pgd[:50] = True
    square = pgd.copy()
    square[77] = True
    r = {"clean_correct": np.ones(500, bool), "t/pgd/success": pgd, "t/square/success": square}
    found = checks.blackbox_findings(r, "t", ["pgd"], "square/success", ChecksStage().blackbox_tolerance)
    assert _codes(found) == ["blackbox-beats-whitebox"] and found[0].data["count"] == 1
