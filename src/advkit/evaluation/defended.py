"""Evaluating a declared preprocessing defense: naive and adaptive attacks, side by side.

Athalye, Carlini & Wagner (2018), "Obfuscated gradients give a false sense of security": a defense
g in front of a classifier f is evaluated twice on the same samples:

* **naive** — every attack of the spec through autograd of f(g(x)), without EOT (what a user who just
  wraps the model gets: rounding in JPEG / bit depth has zero gradient, so gradient attacks stall);
* **adaptive** — the same attacks on the model whose non-differentiable steps backpropagate through
  their BPDA surrogates, with EOT over the randomized steps (AutoAttack's ``rand`` version), plus the
  black-box Square attack.  This is the main pass: its stages are the result's ``attacks``.

The forward pass of both models is exactly f(g(x)), so every success of either pass is a real
adversarial example: the headline robust accuracy is the per-sample worst case over both (never above
the adaptive pass alone).  When the naive number lies above the adaptive pass's 95% interval the
error finding ``obfuscated-gradients`` names the defense and the remedy.
"""
from __future__ import annotations

import dataclasses

from ..findings import Finding, register_check
from ..results import records as rec
from . import aggregate, metrics, stages
from .context import Context, derive_seed

register_check(
    "obfuscated-gradients", "Defense obfuscates gradients",
    "Naive gradient attacks through the declared preprocessing defense report much higher robust accuracy "
    "than adaptive attacks (BPDA through its non-differentiable steps, EOT through its random ones): the defense "
    "hides the gradient instead of removing adversarial examples (Athalye, Carlini & Wagner 2018).",
    "Report the adaptive (headline) number, never the naive one; preprocessing is not a robustness defense on its "
    "own: train the model robustly (advkit train --method pgd-at or trades) or certify it (advkit certify).")

PREFIX = "naive:"


def build_models(spec, clf):
    """(adaptive model, naive model, chain) for the spec's declared defense; randomness seeded from the spec."""
    from ..defenses.chain import defended_models
    naive, adaptive, chain = defended_models(clf, spec.defense.chain, seed=derive_seed(spec.seed, "defense"))
    return adaptive, naive, chain


def naive_pass(ctx: Context, naive_clf) -> dict:
    """Run every threat's attacks (and curve) on the defended model through autograd, without EOT.

    Copies each attack's per-sample success/pred/conf into ``ctx.records`` as ``naive:<attack>`` and
    returns ``{threat: {"names": [...], "section": {...}}}``.
    """
    n = dataclasses.replace(ctx, clf=naive_clf, records=dict(ctx.records), stats={}, timings={}, findings=[],
                            mode="naive", store_prefix="naive/")
    out = {}
    for threat in ctx.spec.threats:
        info = stages.threat_attacks(n, threat)
        cinfo = stages.curve(n, threat) if ctx.spec.stages.curve.enabled else None
        summary = aggregate.threat_summary(n, threat, info, cinfo)
        aggregate.threat_findings(n, threat, summary, info)
        for name in info["attacks"]:
            for part in ("success", "pred", "conf"):
                ctx.records[rec.key(threat, PREFIX + name, part)] = n.records[rec.key(threat, name, part)]
        section = {k: summary[k] for k in ("robust_accuracy", "ci", "n", "correct", "upper_bound", "attacks",
                                           "autoattack_version", "curve") if k in summary}
        out[str(threat)] = {"names": [PREFIX + a for a in info["attacks"]], "section": section}
    if ctx.spec.stages.checks.enabled:
        n.findings.extend(stages.gradients(n))
    ctx.findings.extend(_relabel(f) for f in n.findings)
    ctx.timings.update({f"naive/{k}": v for k, v in n.timings.items()})
    return out


def _relabel(f: Finding) -> Finding:
    """A naive-pass finding: expected symptoms of the defense, labelled so, and not held against the headline."""
    return Finding(f.code, f.severity, f"naive attacks on the defended model (no BPDA/EOT): {f.message}",
                   {**f.data, "pass": "naive"})


def attach(ctx: Context, threat, summary: dict, info: dict, naive: dict, chain) -> None:
    """Add the ``defense``, ``naive`` and ``adaptive`` sections to a threat summary; fire the finding."""
    robust = rec.worst_case(ctx.records, threat, list(info["attacks"]) + list(info.get("inner", [])))[0]
    adaptive = metrics.accuracy(robust)
    eot = stages.attack_eot(ctx, 1)
    summary["defense"] = {"chain": chain.name, "randomized": bool(chain.randomized),
                          "adaptive_method": chain.describe_adaptive(eot)}
    summary["naive"] = naive["section"]
    summary["adaptive"] = {"robust_accuracy": adaptive["accuracy"], "ci": adaptive["ci"], "n": adaptive["n"],
                           "correct": adaptive["correct"], "method": chain.describe_adaptive(eot),
                           "autoattack_version": summary.get("autoattack_version")}
    ctx.findings.extend(obfuscation_findings(threat, chain.name, naive["section"], summary["adaptive"],
                                             summary["defense"]["adaptive_method"]))


def obfuscation_findings(threat, chain: str, naive: dict, adaptive: dict, method: str) -> list[Finding]:
    """``obfuscated-gradients`` when the naive robust accuracy lies above the adaptive one's 95% interval."""
    hi = adaptive["ci"][1]
    if naive["robust_accuracy"] <= hi:
        return []
    gap = naive["robust_accuracy"] - adaptive["robust_accuracy"]
    return [Finding(
        "obfuscated-gradients", "error",
        f"{threat}: the defense '{chain}' obfuscates gradients: naive attacks report "
        f"{100 * naive['robust_accuracy']:.1f}% robust accuracy, adaptive attacks ({method}) "
        f"{100 * adaptive['robust_accuracy']:.1f}% ({100 * gap:.1f} points lower, above the 95% interval's "
        f"upper end {100 * hi:.1f}%). The headline is the adaptive number; '{chain}' adds no real robustness: "
        "train robustly (advkit train --method pgd-at) or certify (advkit certify) instead",
        {"threat": str(threat), "defense": chain, "naive": naive["robust_accuracy"],
         "adaptive": adaptive["robust_accuracy"], "gap": gap})]


__all__ = ["build_models", "naive_pass", "attach", "obfuscation_findings", "PREFIX"]
