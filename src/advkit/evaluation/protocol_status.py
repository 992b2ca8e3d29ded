"""Whether a threat's headline robust accuracy is the reference protocol's number or an upper bound.

The shared contract (``result["threats"][key]``): ``"protocol": {"name", "reference", "reasons"}``
says whether AutoAttack ran with its official composition at the reference budgets; a missing
section means it is not known to have, so the number counts as an upper bound.  Code that grades
or gates reads it only through :func:`protocol_status`.
"""
from __future__ import annotations


def protocol_status(threat_summary: dict) -> tuple[bool, list[str]]:
    """``(reference, reasons)`` of one threat's summary; ``reference`` defaults to False."""
    proto = (threat_summary or {}).get("protocol") or {}
    reference = bool(proto.get("reference", False))
    reasons = [str(r) for r in (proto.get("reasons") or [])]
    if not reference and not reasons:
        reasons = ["no reference-protocol record in the result"]
    return reference, reasons


__all__ = ["protocol_status"]
