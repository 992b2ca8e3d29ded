"""The AutoAttack part of a threat's attack stage: which version runs, its components with the spec's budgets
(from the one protocol definition, :mod:`advkit.attacks.presets`; Croce & Hein 2020, "Reliable evaluation
of adversarial robustness with an ensemble of diverse parameter-free attacks", and 2021, "Mind the box"),
the result's ``protocol`` entry (reference or reduced), members that cannot run, and the EOT draws of
every gradient attack of the pass."""
from __future__ import annotations

from ..attacks import presets
from ..findings import Finding
from ..threat import ThreatModel
from .context import Context


def aa_version(ctx: Context) -> str:
    """The AutoAttack version this pass runs: the spec's, with ``auto`` resolved (rand on a randomized
    model), and ``standard`` for the naive pass of a declared defense; ``off`` when turned off."""
    v = ctx.spec.stages.autoattack.version
    if getattr(ctx, "mode", "plain") == "naive" and v in ("auto", "rand"):
        return "standard"  # the naive attacker of a declared defense uses no EOT
    if v == "auto":
        return "rand" if ctx.randomized else "standard"
    return v


def report_dropped(ctx: Context, threat: ThreatModel, version: str, names: list[str], info: dict) -> None:
    """A protocol member that cannot run for the model's class count (APGD-T's targeted DLR loss needs
    more classes than a 2-class model has) is never dropped silently: a warning finding, and the headline
    becomes an upper bound that is not the reference protocol.  The class count is the model's output
    width (:func:`advkit.model.resolve_classes`), never the number of label values seen."""
    planned = [name for name, _ in presets.protocol(version, threat.norm).members]
    off = {"square"} if ctx.spec.stages.autoattack.square_queries == 0 else set()
    missing = [name for name in planned if name not in names and name not in off]
    if not missing:
        return
    info["upper_bound"] = True
    reasons = [f"{name} not run: the model has {ctx.num_classes} classes" for name in missing]
    proto = info.get("protocol") or {}
    info["protocol"] = {**proto, "reference": False, "reasons": [*proto.get("reasons", []), *reasons]}
    ctx.findings.append(Finding("attack-unavailable", "warning",
                                f"{threat}: AutoAttack component(s) {', '.join(missing)} did not run: their loss needs "
                                f"more classes than the model's {ctx.num_classes} outputs; the robust accuracy is "
                                "an upper bound"))


def attack_eot(ctx: Context, requested: int) -> int:
    """EOT draws for a gradient attack: 1 in the naive pass, AutoAttack's ``eot`` in the adaptive pass
    of a randomized defense (unless the spec asks for more), else what the spec asks."""
    if getattr(ctx, "mode", "plain") == "naive":
        return 1
    if getattr(ctx, "mode", "plain") == "adaptive" and ctx.randomized:
        return max(requested, ctx.spec.stages.autoattack.eot)
    return requested


def autoattack_components(ctx: Context, threat: ThreatModel, version: str) -> list[tuple[str, object]]:
    """AutoAttack's attacks with the spec's budgets, in cascade order, from the one protocol object
    (:mod:`advkit.attacks.presets`, Croce & Hein 2020/2021).  The naive pass of a declared defense is
    autograd only: it leaves out the black-box Square, which belongs to the adaptive pass."""
    out = presets.components(threat, version, ctx.num_classes, _budget(ctx, version))
    return [(n, a) for n, a in out if n != "square"] if getattr(ctx, "mode", "plain") == "naive" else out


def _budget(ctx: Context, version: str) -> presets.Budget:
    aa = ctx.spec.stages.autoattack
    return presets.Budget(steps=aa.steps, square_queries=aa.square_queries, n_targets=aa.n_targets,
                          eot=aa.eot if version == "rand" else None)


def protocol_info(ctx: Context, threat: ThreatModel, version: str, skipped_why: str | None) -> dict:
    """The result.json ``protocol`` entry of a threat; adds a ``reduced-budget`` finding when needed."""
    if skipped_why is not None:
        return {"name": None, "reference": False, "reasons": ["autoattack skipped"]}
    proto = presets.protocol(version, threat.norm)
    reasons = presets.budget_reasons(proto, _budget(ctx, version))
    if getattr(ctx, "mode", "plain") == "naive":
        reasons = reasons + ["naive pass of a declared defense: autograd only, no black-box attack"]
    name = presets.label(proto, reasons)
    if presets.is_reduced(reasons):
        ctx.findings.append(Finding("reduced-budget", "warning",
                                    f"{threat}: {name}: a budget below the reference; the robust accuracy is not "
                                    "comparable with published AutoAttack numbers (an upper bound of them)",
                                    {"threat": str(threat), "reasons": reasons}))
    return {"name": name, "reference": not reasons, "reasons": reasons}
