import math

import pytest
import torch

from advkit import ThreatModel
from advkit.errors import ConfigError


@pytest.mark.parametrize("text,norm,eps", [
    ("linf:8/255", "linf", 8 / 255), ("l2:0.5", "l2", 0.5), ("l1:10", "l1", 10.0),
    ("Linf:0.3", "linf", 0.3), ("inf:0.031", "linf", 0.031), ("l2:1e-2", "l2", 0.01), ("linf:0", "linf", 0.0),
])
def test_parse(text, norm, eps):
    t = ThreatModel.parse(text)
    assert t.norm == norm and t.eps == eps


@pytest.mark.parametrize("text", ["linf:8/255", "l2:0.5", "l1:10.0", "linf:0.3", "linf:0.031", "l2:0.1"])
def test_str_round_trips(text):
    t = ThreatModel.parse(text)
    assert ThreatModel.parse(str(t)) == t


def test_8_over_255_is_not_0_031():
    assert ThreatModel.parse("linf:8/255") != ThreatModel.parse("linf:0.031")
    assert str(ThreatModel.parse("linf:8/255")) == "linf:8/255"


@pytest.mark.parametrize("bad", ["linf", "l3:0.1", "linf:-1", "linf:abc", "linf:1/0", "linf:nan", "", "l2:inf", 5])
def test_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        ThreatModel.parse(bad)


def test_frozen():
    t = ThreatModel("linf", 0.1)
    with pytest.raises(Exception):
        t.eps = 0.2


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_project_contains_sample(norm, gen):
    t = ThreatModel(norm, 0.3)
    x = torch.rand(10, 1, 5, 5, generator=gen)
    far = x + torch.randn(10, 1, 5, 5, generator=gen)
    p = t.project(far, x)
    assert t.contains(p, x).all()
    assert not t.contains(far, x).all()
    s = t.sample(x, generator=gen)
    assert t.contains(s, x).all()
    assert (t.distance(p, x) <= 0.3 + 1e-6).all()
