"""AutoAttack as data: one protocol object per (version, norm), as the official code composes them.

Croce & Hein (2020), "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks"; the L1 composition from Croce & Hein (2021), "Mind the box: l1-APGD for
sparse adversarial attacks on image classifiers" (l1-AutoAttack).  The official code's ``set_version``:

* standard, L∞ and L2: APGD-CE (100 iterations, 1 restart) → APGD-T (targeted DLR, top 9 classes,
  100 iterations) → FAB-T (top 9 classes, 100 iterations) → Square (5000 queries, p_init 0.8, the
  p-schedule not rescaled to the budget);
* standard, L1: APGD-CE with 5 restarts and APGD-T with 5 target classes, both with the 3ε→2ε→ε
  schedule (``large_eps``, official ``use_largereps``), then FAB-T (9 classes) and Square-L1;
* rand (any norm): APGD-CE and APGD-DLR, 100 iterations, 1 restart, EOT over 20 draws.

Each attack runs on the points still robust (:class:`Ensemble`).  The number of targets is
min(reference, K − 1); the targeted DLR loss needs 4 classes: with 3 classes APGD-T becomes
untargeted APGD-DLR, with 2 it is left out (DLR is undefined), as is APGD-DLR of the rand version,
and FAB-T searches untargeted when K = 2.  These class-count adaptations keep the reference label.

Every command, stage and report takes the composition from :func:`protocol` (DESIGN principle 11):
``advkit attack autoattack``, ``advkit list presets``, the ``evaluate`` stage and the report.
A budget other than the reference (``steps``, ``square_queries``, ``n_targets``, ``eot``) changes
the label: :func:`budget_reasons` says how, :func:`label` names the run, e.g.
``autoattack-standard (reduced: steps 25 < 100, square queries 200 < 5000)``.

The screening protocol (``screening-malt``, L∞ and L2) is defined here too but is *not* AutoAttack:
APGD-CE (100 iterations) → APGD-T on the 5 targets ranked by MALT (Melamed, Yehudai & Shamir 2024,
"MALT Powers Up Adversarial Attacks"; :mod:`advkit.attacks.malt`), 100 iterations each.  It is a
fast check for every checkpoint, validated against AutoAttack in ``benchmarks/README.md``; its
reasons always include ``SCREENING_NOTE``, so a run with it is never a reference AutoAttack run.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..threat import NORMS, ThreatModel
from .apgd import APGD
from .ensemble import Ensemble
from .fab import FAB
from .malt import MaltAPGD
from .square import Square

VERSIONS = ("standard", "rand", "screening")
SCREENING_NOTE = "screening protocol, not AutoAttack"
REFERENCE_EOT = 20

_SQUARE = ("square", {"n_queries": 5000, "p_init": 0.8, "rescale_schedule": False})
_STANDARD_LINF_L2 = (
    ("apgd-ce", {"loss": "ce", "steps": 100, "restarts": 1}),
    ("apgd-t", {"loss": "dlr", "n_targets": 9, "steps": 100, "restarts": 1}),
    ("fab-t", {"n_targets": 9, "steps": 100, "restarts": 1}),
    _SQUARE,
)
_STANDARD_L1 = (
    ("apgd-ce", {"loss": "ce", "steps": 100, "restarts": 5, "large_eps": True}),
    ("apgd-t", {"loss": "dlr", "n_targets": 5, "steps": 100, "restarts": 1, "large_eps": True}),
    ("fab-t", {"n_targets": 9, "steps": 100, "restarts": 1}),
    _SQUARE,
)
_SCREENING = (
    ("apgd-ce", {"loss": "ce", "steps": 100, "restarts": 1}),
    ("apgd-t-malt", {"loss": "dlr", "n_targets": 5, "steps": 100, "restarts": 1}),
)
_RAND = (
    ("apgd-ce", {"loss": "ce", "steps": 100, "restarts": 1, "eot": REFERENCE_EOT}),
    ("apgd-dlr", {"loss": "dlr", "steps": 100, "restarts": 1, "eot": REFERENCE_EOT}),
)


@dataclass(frozen=True)
class Protocol:
    """One attack protocol: ``members`` are (name, reference settings) in cascade order."""

    version: str
    norm: str
    members: tuple

    @property
    def screening(self) -> bool:
        return self.version == "screening"

    @property
    def name(self) -> str:
        return "screening-malt" if self.screening else f"autoattack-{self.version}"

    def describe(self) -> str:
        return " → ".join(f"{n} ({', '.join(f'{k}={v}' for k, v in s.items())})" for n, s in self.members)


PROTOCOLS: dict[tuple[str, str], Protocol] = {
    ("standard", "linf"): Protocol("standard", "linf", _STANDARD_LINF_L2),
    ("standard", "l2"): Protocol("standard", "l2", _STANDARD_LINF_L2),
    ("standard", "l1"): Protocol("standard", "l1", _STANDARD_L1),
    **{("rand", n): Protocol("rand", n, _RAND) for n in NORMS},
    ("screening", "linf"): Protocol("screening", "linf", _SCREENING),
    ("screening", "l2"): Protocol("screening", "l2", _SCREENING),
}


def protocol(version: str, norm: str) -> Protocol:
    """The protocol of ``version`` ("standard"/"rand" AutoAttack, or "screening") for threat norm ``norm``."""
    try:
        return PROTOCOLS[(version, norm)]
    except KeyError:
        if version == "screening":
            raise ConfigError(f"the screening protocol is defined for linf and l2, got norm {norm!r}") from None
        raise ConfigError(f"AutoAttack version must be one of {VERSIONS} and norm one of {NORMS}, "
                          f"got version {version!r}, norm {norm!r}") from None


@dataclass(frozen=True)
class Budget:
    """Overrides of the reference budget; None keeps the reference.  ``square_queries`` = 0 drops Square."""

    steps: int | None = None
    square_queries: int | None = None
    n_targets: int | None = None
    eot: int | None = None


def _settings(name: str, ref: dict, budget: Budget) -> dict | None:
    kw = dict(ref)
    if budget.steps is not None and "steps" in kw:
        kw["steps"] = budget.steps
    if budget.n_targets is not None and "n_targets" in kw:
        kw["n_targets"] = budget.n_targets
    if budget.eot is not None and "eot" in kw:
        kw["eot"] = budget.eot
    if name == "square" and budget.square_queries is not None:
        if budget.square_queries == 0:
            return None
        kw["n_queries"] = budget.square_queries
    return kw


_BUDGET_KEYS = (("steps", "steps", "steps"), ("n_targets", "n_targets", "targets"), ("eot", "eot", "EOT draws"),
                ("square_queries", "n_queries", "square queries"))


def budget_reasons(proto: Protocol, budget: Budget) -> list[str]:
    """Why a run with ``budget`` is not the reference AutoAttack ("steps 25 < 100", ...); empty if it is.
    A screening protocol is never the reference: its reasons start with ``SCREENING_NOTE``."""
    out: list[str] = [SCREENING_NOTE] if proto.screening else []
    for field, key, what in _BUDGET_KEYS:
        got = getattr(budget, field)
        having = [(n, s[key]) for n, s in proto.members if key in s]
        if got is None or not having:
            continue
        if field == "square_queries" and got == 0:
            out.append("square off")
            continue
        groups: dict[tuple, list[str]] = {}
        for name, ref in having:
            if got != ref:
                groups.setdefault(("<" if got < ref else ">", ref), []).append(name)
        for (op, ref), names in groups.items():
            who = "" if len(names) == len(having) else f" ({', '.join(names)})"
            out.append(f"{what} {got} {op} {ref}{who}")
    return out


def is_reduced(reasons: list[str]) -> bool:
    """True when some budget is below the reference (as opposed to merely different)."""
    return any(" < " in r or r == "square off" for r in reasons)


def label(proto: Protocol, reasons: list[str]) -> str:
    """The protocol's name, qualified when the budget is not the reference."""
    reasons = [r for r in reasons if r != SCREENING_NOTE]
    if not reasons:
        return proto.name
    kind = "reduced" if is_reduced(reasons) else "custom"
    return f"{proto.name} ({kind}: {', '.join(reasons)})"


def _check(num_classes) -> int:
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return num_classes


def _build(name: str, kw: dict, threat: ThreatModel, k: int):
    kw = dict(kw)
    if "n_targets" in kw:
        kw["n_targets"] = min(kw["n_targets"], k - 1)
    if name.startswith("apgd-t"):  # the targeted DLR loss needs 4 classes: untargeted DLR with 3, none with 2
        if k < 3:
            return None
        if k == 3:
            kw["n_targets"] = 0
        return (MaltAPGD if name == "apgd-t-malt" and k > 3 else APGD)(threat, **kw)
    if name.startswith("apgd"):
        return APGD(threat, **kw) if (kw["loss"] != "dlr" or k >= 3) else None
    if name == "fab-t":
        return FAB(threat, **(kw if k > 2 else {**kw, "n_targets": 0}))
    if name == "square":
        return Square(threat, **kw)
    raise ConfigError(f"unknown preset member {name!r}")


def components(threat, version: str, num_classes: int, budget: Budget = Budget()) -> list[tuple[str, object]]:
    """(name, attack) of the protocol for ``threat`` and a ``num_classes``-way model, in cascade order."""
    threat, k = ThreatModel.parse(threat), _check(num_classes)
    out = []
    for name, ref in protocol(version, threat.norm).members:
        kw = _settings(name, ref, budget)
        attack = None if kw is None else _build(name, kw, threat, k)
        if attack is not None:
            out.append((name, attack))
    return out


def _ensemble(threat, version: str, num_classes: int, budget: Budget) -> Ensemble:
    threat = ThreatModel.parse(threat)
    proto = protocol(version, threat.norm)
    attacks = tuple(a for _, a in components(threat, version, num_classes, budget))
    return Ensemble(attacks, label=label(proto, budget_reasons(proto, budget)).replace("autoattack-standard",
                                                                                        "autoattack", 1))


def screening_malt(threat, num_classes: int, steps: int | None = None, n_targets: int | None = None) -> Ensemble:
    """The screening protocol for ``threat`` (L∞ or L2): APGD-CE → APGD-T on the MALT-ranked targets.
    Not AutoAttack: its label is ``screening-malt``."""
    return _ensemble(threat, "screening", num_classes, Budget(steps=steps, n_targets=n_targets))


def autoattack_standard(threat, num_classes: int, steps: int | None = None, square_queries: int | None = None,
                        n_targets: int | None = None) -> Ensemble:
    """AutoAttack standard for ``threat`` (ThreatModel or text) and a ``num_classes``-way model; budgets
    other than the reference change the label (``autoattack (reduced: ...)``)."""
    return _ensemble(threat, "standard", num_classes, Budget(steps, square_queries, n_targets))


def autoattack_rand(threat, num_classes: int, eot: int = REFERENCE_EOT, steps: int | None = None) -> Ensemble:
    """AutoAttack for randomized models: APGD-CE and APGD-DLR with EOT over ``eot`` draws."""
    return _ensemble(threat, "rand", num_classes, Budget(steps=steps, eot=eot))


PRESETS = {
    "autoattack_standard": (autoattack_standard, "AutoAttack standard (Croce & Hein 2020), linf and l2: "
                            + PROTOCOLS[("standard", "linf")].describe() + "; l1 (Croce & Hein 2021): "
                            + PROTOCOLS[("standard", "l1")].describe()),
    "autoattack_rand": (autoattack_rand, "AutoAttack for randomized models, every norm: "
                        + PROTOCOLS[("rand", "linf")].describe()),
    "screening_malt": (screening_malt, "SCREENING protocol, not AutoAttack (MALT targeting, Melamed et al. 2024), "
                       "linf and l2: " + PROTOCOLS[("screening", "linf")].describe()),
}


def list_presets() -> list[tuple[str, str]]:
    """(name, description) of every preset, for ``advkit list presets``."""
    return [(name, desc) for name, (_, desc) in PRESETS.items()]
