"""Is a threat's headline robust accuracy trustworthy?  ``trusted`` / ``untrusted_reasons`` per threat.

A model that *looks* masked — zero or NaN input gradients, a black-box attack breaking samples every
white-box attack failed on, an unbounded attack that does not reach 0%, a randomized model attacked
without EOT — may be defended by something the evaluation does not know about (an undeclared JPEG
layer, rounding, saturated logits, noise).  Its worst-case number is then at best an upper bound
(Carlini et al. 2019, §5; Athalye, Carlini & Wagner 2018), so the result marks it: per threat
``trusted`` (bool; missing means true) and ``untrusted_reasons`` (one line per symptom).  Gates and
grades treat ``trusted == false`` like an upper bound; renderers print the number as untrusted.

Findings of the naive pass of a *declared* defense (``data["pass"] == "naive"``) are expected symptoms
and do not count: that threat's headline is the adaptive number.
"""
from __future__ import annotations

#: finding codes that mean "the attacks may have been fooled" (masking symptoms)
MASKING_CODES = ("zero-gradients", "nan-gradients", "blackbox-beats-whitebox", "unbounded-not-zero",
                 "randomized-no-eot")


def untrusted_reasons(findings: list[dict], threat: str) -> list[str]:
    """Masking findings (as dicts) that concern ``threat`` (or every threat) and the headline pass."""
    out = []
    for f in findings:
        data = f.get("data") or {}
        if f.get("code") not in MASKING_CODES or data.get("pass") == "naive":
            continue
        if data.get("threat") not in (None, threat):
            continue
        out.append(f"{f['code']}: {f.get('message', '')}")
    return out


def mark(threats: dict, findings: list[dict]) -> None:
    """Set ``trusted`` and ``untrusted_reasons`` on every threat summary of a result."""
    for key, summary in threats.items():
        reasons = untrusted_reasons(findings, key)
        summary["trusted"] = not reasons
        summary["untrusted_reasons"] = reasons


def is_trusted(threat_summary: dict) -> bool:
    """The shared reading of the contract: a missing ``trusted`` means true."""
    return bool(threat_summary.get("trusted", True))


__all__ = ["MASKING_CODES", "untrusted_reasons", "mark", "is_trusted"]
