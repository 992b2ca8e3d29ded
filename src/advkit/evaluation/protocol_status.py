"""Whether a threat's headline number comes from the reference AutoAttack protocol.

Shared contract (``result["threats"][key]["protocol"]``): ``{"name": str | None, "reference": bool,
"reasons": [str, ...]}``; ``reference`` is true only when AutoAttack ran with the official composition at
the reference budgets.  Code that grades or gates reads it through :func:`protocol_status` only.
"""
from __future__ import annotations


def protocol_status(threat_summary: dict) -> tuple[bool, list[str]]:
    """``(reference, reasons)`` of one threat section; a section without ``protocol`` is not the reference."""
    proto = threat_summary.get("protocol", {}) if isinstance(threat_summary, dict) else {}
    if not isinstance(proto, dict):
        return False, ["no protocol record"]
    reference = proto.get("reference", False) is True
    reasons = [str(r) for r in (proto.get("reasons") or [])]
    if not reference and not reasons:
        reasons = ["no protocol record" if not proto else "not the reference AutoAttack protocol"]
    return reference, reasons


__all__ = ["protocol_status"]
