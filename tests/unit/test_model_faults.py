"""Library-level checks behind exit code 6 and the run identity (issue 24): a model's NaN logits, exceptions
and exits become a ModelFault naming it wherever advkit trusts a pass, and a factory's definition digest
follows the files it imports from its folder."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advkit.attacks.fgsm import FGSM
from advkit.attacks.pgd import PGD
from advkit.errors import ModelError, ModelFault
from advkit.model import Classifier
from advkit.smoothing.smoothed import SmoothedClassifier
from advkit.sources.definition import definition_digest
from advkit.threat import ThreatModel

LINF = ThreatModel("linf", 0.1)


class _After(nn.Module):
    """A linear model whose output turns bad (``what``) from its ``after``-th call on."""

    def __init__(self, what: str, after: int):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.what, self.after, self.calls = what, after, 0

    def forward(self, x):
        self.calls += 1
        z = self.lin(x.flatten(1))
        if self.calls <= self.after:
            return z
        if self.what == "nan":
            return z * float("nan")
        if self.what == "exit":
            raise SystemExit(0)
        if self.what == "width":
            return z[:, :2]
        raise ValueError("bad layer")


def _clf(what: str, after: int) -> Classifier:
    torch.manual_seed(0)
    return Classifier(_After(what, after), name="toy.py:net", accelerate=False)


X, Y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("attack", [FGSM(threat=LINF), PGD(threat=LINF, steps=2)], ids=["fgsm", "pgd"])
def test_an_attack_never_counts_nan_logits_as_robust(attack):
    with pytest.raises(ModelFault, match=r"'toy\.py:net' returned non-finite logits .* 6 of 6 samples"):
        attack(_clf("nan", 1), X, Y)  # the probe is fine, every later pass is NaN


@pytest.mark.parametrize("what, pattern", [("exit", r"called sys\.exit\(0\)"), ("raise", r"raised ValueError: bad layer"),
                                           ("width", r"shape \(6, 2\).*expected \(6, 3\)")])
def test_later_misbehaviour_is_a_fault_naming_the_model(what, pattern):
    with pytest.raises(ModelFault, match=r"toy\.py:net.*" + pattern):
        PGD(threat=LINF, steps=2)(_clf(what, 1), X, Y)


def test_misbehaviour_on_the_probe_is_an_input_error_not_a_fault():
    with pytest.raises(ModelError) as e:
        _clf("raise", 0).output_width(X)
    assert not isinstance(e.value, ModelFault) and "ValueError: bad layer" in str(e.value)


def test_smoothing_never_certifies_nan_logits():
    with pytest.raises(ModelFault, match="randomized smoothing"):
        SmoothedClassifier(_clf("nan", 0), sigma=0.25, num_classes=3).certify(X[:1], n0=5, n=10, alpha=0.01)


def test_definition_digest_follows_sibling_imports(tmp_path):
    (tmp_path / "net.py").write_text("from helper import make\nfrom . import pkg\n\ndef net():\n    return make()\n")
    (tmp_path / "helper.py").write_text("from deep import x\ndef make():\n    return 1\n")
    (tmp_path / "deep.py").write_text("x = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("y = 2\n")
    (tmp_path / "unrelated.py").write_text("z = 3\n")
    ref = f"{tmp_path}/net.py:net"
    first = definition_digest(ref)
    (tmp_path / "unrelated.py").write_text("z = 4\n")
    assert definition_digest(ref) == first  # not imported: not part of the definition
    for name in ("deep.py", "pkg/__init__.py", "net.py"):
        (tmp_path / name).write_text((tmp_path / name).read_text() + "# edited\n")
        assert definition_digest(ref) != first, name
        first = definition_digest(ref)
    assert definition_digest("zoo:anything") is None
