"""MALT targeting (Melamed, Yehudai & Shamir 2024) and the screening protocol built on it."""
from __future__ import annotations

import pytest
import torch

from advkit.attacks import presets, registry
from advkit.attacks.malt import MaltAPGD, malt_ranking
from advkit.attacks.oracle import Oracle
from advkit.errors import ConfigError

from test_linear_oracles_gradient import oracle_data, pairwise


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_ranking_on_a_linear_model_is_the_exact_boundary_distance_order(norm):
    clf, x, y, _, _ = oracle_data(10, norm, n=60)
    dist, _ = pairwise(clf, x, y, norm)                  # exact distance to each class's boundary
    oracle = Oracle(clf)
    ranked = malt_ranking(oracle, x, y, 4, norm, candidates=100)
    assert torch.equal(ranked, dist.argsort(1)[:, :4])
    with torch.no_grad():
        by_logits = clf(x).scatter(1, y.view(-1, 1), float("-inf")).argmax(1)
    assert (by_logits != ranked[:, 0]).any()  # the ranking differs from APGD-T's by-logit order
    assert oracle.calls == len(x) * 2 and oracle.grads == len(x) * 9  # forward + one backward per class


def test_candidates_limit_the_gradients_to_the_top_logits():
    clf, x, y, _, _ = oracle_data(10, "l2", n=30)
    oracle = Oracle(clf)
    ranked = malt_ranking(oracle, x, y, 2, "l2", candidates=3)
    with torch.no_grad():
        top3 = clf(x).scatter(1, y.view(-1, 1), float("-inf")).argsort(1, descending=True)[:, :3]
    assert all(set(r.tolist()) <= set(t.tolist()) for r, t in zip(ranked, top3))
    assert oracle.grads == len(x) * 3


def test_malt_apgd_with_one_target_breaks_every_point_within_its_nearest_boundary():
    clf, x, y, d, nearest = oracle_data(10, "linf", n=60)
    eps = float(d.median()) * 1.02
    threat = f"linf:{eps}"
    malt = MaltAPGD(threat, n_targets=1, steps=20)(clf, x, y, generator=torch.Generator().manual_seed(0))
    within = d <= eps
    assert malt.success[within].all()  # the one MALT target is the nearest boundary: within ε means broken
    assert within.any() and not within.all()


def test_screening_preset_is_labelled_as_screening_never_as_autoattack():
    sc = presets.screening_malt("linf:0.3", 10)
    assert sc.label == "screening-malt" and "autoattack" not in sc.label
    assert sc.names == ("apgd-ce", "apgd-t-malt")
    assert isinstance(sc.attacks[1], MaltAPGD) and sc.attacks[1].n_targets == 5
    proto = presets.protocol("screening", "linf")
    reasons = presets.budget_reasons(proto, presets.Budget())
    assert reasons == [presets.SCREENING_NOTE]  # never the reference AutoAttack
    assert presets.label(proto, reasons) == "screening-malt"
    reduced = presets.budget_reasons(proto, presets.Budget(steps=25))
    assert presets.label(proto, reduced) == "screening-malt (reduced: steps 25 < 100)"
    assert registry.build("screening", "l2:1.5", num_classes=10).describe() == presets.screening_malt("l2:1.5", 10).describe()
    assert "not AutoAttack" in dict(presets.list_presets())["screening_malt"]


def test_screening_adapts_to_few_classes_and_refuses_l1():
    assert presets.screening_malt("linf:0.3", 3).attacks[1].n_targets == 0  # untargeted DLR, as AutoAttack
    assert presets.screening_malt("linf:0.3", 2).names == ("apgd-ce",)
    assert presets.screening_malt("linf:0.3", 4).attacks[1].n_targets == 3
    with pytest.raises(ConfigError, match="screening protocol is defined for linf and l2"):
        presets.screening_malt("l1:10", 10)
