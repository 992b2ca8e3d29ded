"""A gate's verdict (:class:`GateItem`) and a set of them (:class:`GateReport`): what every kind of gate
(threshold, regression, grade) returns, and what result.json, the CLI and JUnit output carry."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateItem:
    """One gate's verdict: ``margin`` > 0 means room to spare (≥/>) in the gate's direction."""

    name: str
    expected: str
    actual: float | None
    margin: float | None
    passed: bool
    message: str
    noisy: bool = False
    kind: str = "threshold"
    upper_bound: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    items: tuple[GateItem, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(i.passed for i in self.items)

    @property
    def failures(self) -> list[GateItem]:
        return [i for i in self.items if not i.passed]

    @property
    def noisy(self) -> list[GateItem]:
        return [i for i in self.items if i.noisy]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "items": [i.to_dict() for i in self.items]}


def signed(v: float) -> str:
    """A margin with its sign (a minus sign, not a hyphen) and three decimals."""
    sign = "+" if v >= 0 else "\u2212"
    return f"{sign}{abs(v):.3f}"
