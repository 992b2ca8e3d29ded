"""Whether a threat's headline number was measured with the reference AutoAttack protocol.

Reads the ``protocol`` entry of ``result["threats"][key]`` (written by the evaluate stage from
:mod:`advkit.attacks.presets`): ``{"name": str | None, "reference": bool, "reasons": [str, ...]}``.
Gates, grades and ``advkit.evaluation`` read it through :func:`protocol_status` only; a summary without the entry (older
results) counts as not reference.
"""
from __future__ import annotations


def protocol_status(threat_summary: dict) -> tuple[bool, list[str]]:
    """``(reference, reasons)``: reference is True only when AutoAttack ran with the official composition
    at the reference budgets; reasons say why not (["protocol not recorded"] when the entry is missing)."""
    entry = (threat_summary or {}).get("protocol")
    if not isinstance(entry, dict):
        return False, ["protocol not recorded"]
    reference = entry.get("reference") is True
    reasons = [str(r) for r in (entry.get("reasons") or [])]
    return reference, reasons


__all__ = ["protocol_status"]
