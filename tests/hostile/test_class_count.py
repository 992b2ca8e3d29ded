"""The number of classes comes from the model's output width, never from the labels that happen to occur.

Reproduction (issue 11): on data whose labels hold fewer than 4 values, APGD-T and FAB-T were skipped
without a finding (the same images and model: 51.7% vs 41.4% robust), and a clean prediction above
the highest label crashed the per-class tables.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advkit.errors import InputError, ModelError
from advkit.evaluation import evaluate, spec_from_dict
from advkit.model import Classifier, resolve_classes

THREAT = "linf:0.1"


def _spec():
    return spec_from_dict({
        "n": 30, "batch_size": 30, "threats": [THREAT],
        "stages": {"fgsm": {"enabled": False}, "pgd": {"steps": 3, "restarts": 1},
                   "autoattack": {"version": "standard", "steps": 3, "square_queries": 5, "n_targets": 2},
                   "curve": {"enabled": False}, "checks": {"enabled": False}}})


@pytest.fixture(scope="module")
def few_labels(digits_model):
    """The digits CNN on 30 test images of classes 0, 1 and 2 only (labels hold 3 values)."""
    clf, x, y = digits_model
    keep = (y < 3).nonzero().flatten()[:30]
    return clf, x[keep], y[keep]


def test_class_dependent_attacks_run_when_labels_hold_few_values(few_labels):
    clf, x, y = few_labels
    assert len(torch.unique(y)) == 3
    res = evaluate(_spec(), model=clf, data=(x, y)).result
    t = res["threats"][THREAT]
    assert {"apgd-ce", "apgd-t", "fab-t", "square"} <= set(t["attacks"]), sorted(t["attacks"])
    assert not [f for f in res["findings"] if f["code"] == "attack-unavailable"]
    assert len(res["clean"]["per_class"]) == 10  # the model's classes, not the 3 label values


def test_prediction_above_the_highest_label_is_counted_not_a_crash(few_labels):
    clf, x, y = few_labels
    wrong = Classifier(nn.Sequential(clf.net, _Shift()), num_classes=10, input_shape=(1, 8, 8))  # predicts y + 7
    res = evaluate(_spec(), model=wrong, data=(x, y)).result
    cm = np.asarray(res["clean"]["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == len(y)
    assert res["clean"]["accuracy"] < 0.2 and cm[:, 7:].sum() > 0


class _Shift(nn.Module):
    def forward(self, z):
        return torch.roll(z, 7, dims=1)


def test_a_two_class_model_reports_the_dropped_component():
    """APGD-T cannot run on a 2-class model (no class to target besides the other one's DLR scale): it is
    reported as a warning finding, and the headline is an upper bound, not the reference protocol."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(2, 64, generator=g))
    x = torch.rand(30, 1, 8, 8, generator=g)
    clf = Classifier(net, input_shape=(1, 8, 8))
    y = clf.predict(x)
    res = evaluate(_spec(), model=clf, data=(x, y)).result
    t = res["threats"][THREAT]
    assert "apgd-t" not in t["attacks"] and "fab-t" in t["attacks"]
    dropped = [f for f in res["findings"] if f["code"] == "attack-unavailable"]
    assert dropped and dropped[0]["severity"] == "warning" and "apgd-t" in dropped[0]["message"]
    assert t["upper_bound"] is True
    assert t["protocol"]["reference"] is False and any("apgd-t" in r for r in t["protocol"]["reasons"])


def test_resolve_classes_reads_the_width_and_refuses_labels_beyond_it():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 5))
    clf = Classifier(net)
    x = torch.rand(6, 1, 2, 2)
    assert resolve_classes(clf, x, torch.tensor([0, 1, 1, 0, 4, 2]), ("a", "b")) == (5, ("a", "b", "2", "3", "4"))
    assert clf.num_classes == 5
    with pytest.raises(InputError, match=r"label 7 \(sample 2\) is outside the model's 5 outputs"):
        resolve_classes(clf, x, torch.tensor([0, 1, 7, 0, 4, 2]))
    with pytest.raises(ModelError, match="declares num_classes=10 but returns 5 outputs"):
        resolve_classes(Classifier(net, num_classes=10), x, torch.zeros(6, dtype=torch.long))
