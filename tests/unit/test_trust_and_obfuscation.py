"""The untrusted-headline contract and the obfuscated-gradients threshold, on hand-made findings/sections."""
from __future__ import annotations

from advkit.evaluation import defended, trust


def _f(code, threat=None, **data):
    d = dict(data)
    if threat is not None:
        d["threat"] = threat
    return {"code": code, "severity": "warning", "message": f"{code} seen", "data": d}


def test_masking_findings_make_only_their_threat_untrusted():
    threats = {"linf:0.3": {}, "l2:2": {}}
    trust.mark(threats, [_f("blackbox-beats-whitebox", "linf:0.3"), _f("fgsm-breaks-all", "l2:2")])
    assert threats["linf:0.3"]["trusted"] is False
    assert threats["linf:0.3"]["untrusted_reasons"] == ["blackbox-beats-whitebox: blackbox-beats-whitebox seen"]
    assert threats["l2:2"] == {"trusted": True, "untrusted_reasons": []}  # not a masking symptom


def test_global_symptoms_concern_every_threat_and_naive_pass_findings_do_not_count():
    threats = {"linf:0.3": {}, "l2:2": {}}
    trust.mark(threats, [_f("zero-gradients")])
    assert all(t["trusted"] is False for t in threats.values())
    threats = {"linf:0.3": {}}
    trust.mark(threats, [_f("zero-gradients", **{"pass": "naive"}), _f("unbounded-not-zero", "linf:0.3",
                                                                       **{"pass": "naive"})])
    assert threats["linf:0.3"]["trusted"] is True  # expected symptoms of a declared defense's naive pass
    assert trust.is_trusted({}) is True  # missing means true


def test_obfuscated_gradients_fires_only_above_the_adaptive_interval():
    adaptive = {"robust_accuracy": 0.10, "ci": [0.05, 0.18]}
    assert defended.obfuscation_findings("linf:0.3", "jpeg:75", {"robust_accuracy": 0.18}, adaptive, "BPDA") == []
    found = defended.obfuscation_findings("linf:0.3", "jpeg:75", {"robust_accuracy": 0.19}, adaptive, "BPDA")
    assert len(found) == 1 and found[0].code == "obfuscated-gradients" and found[0].severity == "error"
    assert "jpeg:75" in found[0].message and "advkit train" in found[0].message
    assert found[0].data["gap"] == 0.19 - 0.10
