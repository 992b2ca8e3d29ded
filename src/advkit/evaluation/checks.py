"""Checks for a flawed evaluation: gradient masking and attack failure, as documented findings.

Each check turns per-sample records into :class:`~advkit.findings.Finding` objects; the codes, their
usual cause and remedy are registered in :data:`advkit.findings.CATALOGUE` (``advkit list checks``).
The checks follow Carlini et al. (2019), "On evaluating adversarial robustness" (§5 checklist), and
Athalye, Carlini & Wagner (2018), "Obfuscated gradients give a false sense of security": a black-box
attack beating white-box ones, one-step beating iterative attacks, unbounded attacks not reaching 0%,
accuracy growing with ε, and zero or random gradients are the symptoms of masked gradients.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import losses
from ..findings import Finding, register_check
from ..results import records as rec

register_check(
    "zero-gradients", "Zero input gradients",
    "The loss gradient with respect to the input is exactly zero for many correctly classified inputs: "
    "saturated logits/softmax (vanishing gradients) or a non-differentiable step such as quantisation "
    "(shattered gradients). Gradient attacks then make no progress and robust accuracy is overestimated.",
    "Trust only the worst case over gradient-free (Square) and scale-invariant (DLR/margin) attacks; for a "
    "non-differentiable preprocessing step attack through it with BPDA (advkit.attacks.adaptive.BPDA).")
register_check(
    "nan-gradients", "NaN input gradients",
    "The input gradient contains NaN or inf: a numerically unstable layer (log of 0, division by 0).",
    "Fix the model's numerics (e.g. use log_softmax instead of log(softmax)); attacks cannot follow NaN gradients.")
register_check(
    "nan-outputs", "NaN model outputs",
    "The model returns NaN or inf logits on a pass advkit trusts: the run stops with exit code 6 "
    "(advkit.faults.check_finite) and no such sample is counted.",
    "Check the weights and the input scaling; an evaluation of NaN outputs means nothing.")
register_check(
    "blackbox-beats-whitebox", "Black-box attack beats white-box attacks",
    "Square, which uses no gradients, broke samples that every gradient attack failed on: a classic sign of "
    "gradient masking (obfuscated gradients).",
    "Treat white-box numbers as upper bounds; use the worst case (advkit reports it) and adaptive attacks "
    "(BPDA for non-differentiable parts, EOT for randomness, DLR/margin losses for saturated logits).")
register_check(
    "fgsm-beats-pgd", "FGSM stronger than PGD",
    "A single FGSM step broke more samples than the iterative PGD attack: the iterative attack is failing "
    "(too small steps, or a loss surface that misleads local search — gradient masking).",
    "Check PGD's step size and number of steps; look for masking; the worst case over both is reported.")
register_check(
    "unbounded-not-zero", "Unbounded attack does not reach 0%",
    "With a budget that covers the whole input box, every input can be turned into any image, so robust "
    "accuracy must be ~0. It is not: the attacks are failing (masking or a bug), not the model being robust.",
    "Investigate the attack (gradients, step size, number of steps); do not trust the headline number.")
register_check(
    "curve-not-monotone", "Accuracy not monotone in ε",
    "The attack found fewer adversarial examples at a larger ε than at a smaller one; a larger ball contains "
    "the smaller, so the attack is failing at the larger ε. Only the per-point curve ([stages.curve] method = "
    "\"per-point\") can show it: the default one-run curve (method = \"fmn\") is monotone by construction.",
    "Increase steps/restarts of the curve attack; the reported curve takes the per-sample worst case.")
register_check(
    "randomized-no-eot", "Randomized model attacked without EOT",
    "The model is randomized but no attack averaged gradients over its randomness (EOT); single-draw "
    "gradients are noisy and overestimate robustness.",
    "Use [stages.autoattack] version = \"auto\" or \"rand\" (EOT), or raise [stages.pgd] eot.")
register_check(
    "ce-autoattack-gap", "Large gap between CE-PGD and AutoAttack",
    "AutoAttack broke many samples that PGD with cross-entropy did not: typically saturated logits, where the "
    "CE gradient vanishes but scale-invariant losses (DLR) still work.",
    "Report AutoAttack's (worst-case) number, not PGD's; check for saturated logits or a softmax in the model.")
register_check(
    "fgsm-breaks-all", "Almost nothing survives FGSM",
    "A one-step attack already breaks (almost) every sample: the model has no robustness at this ε.",
    "Train with adversarial training (advkit train --method pgd-at) before spending compute on stronger attacks.")
register_check(
    "class-below-minimum", "Class below the minimum robust accuracy",
    "The robust accuracy of some classes is below the configured [stages.per_class] min_accuracy.",
    "Inspect those classes (data balance, hard examples); consider class-aware robust training.")
register_check(
    "autoattack-skipped", "AutoAttack skipped",
    "AutoAttack did not run (off, unavailable, or skipped because FGSM broke almost everything); the robust "
    "accuracy is an upper bound.",
    "Run with AutoAttack for a reliable number.")
register_check(
    "attack-unavailable", "Attack not available",
    "An attack the spec asks for is not available in this installation; the stage used a fallback or skipped it.",
    "Install or update advkit; the message says which attack and what was used instead.")


def chance_findings(clean_correct, labels, num_classes: int) -> list[Finding]:
    """``chance-level`` when clean accuracy is not significantly above the best constant classifier."""
    from .metrics import at_chance, chance_accuracy
    correct = np.asarray(clean_correct, dtype=bool)
    n, k = int(correct.size), int(correct.sum())
    chance = chance_accuracy(labels, num_classes)
    if not at_chance(k, n, chance):
        return []
    return [Finding("chance-level", "warning",
                    f"clean accuracy {100 * k / n:.1f}% on {n} samples is not significantly above chance level "
                    f"({100 * chance:.1f}% for {num_classes} classes): the model has not learnt this data",
                    {"accuracy": k / n, "chance": chance, "n": n})]


def gradient_findings(clf, x: torch.Tensor, y: torch.Tensor) -> list[Finding]:
    """Zero or NaN cross-entropy input gradients on (correctly classified) inputs ``x``."""
    if not len(x):
        return []
    with clf.inference():
        xg = x.detach().clone().to(clf.device, clf.dtype).requires_grad_(True)
        loss = losses.ce(clf(xg), y.to(clf.device)).sum()
        g, = torch.autograd.grad(loss, xg)
    flat = g.flatten(1)
    nan = (~torch.isfinite(flat)).any(1)
    zero = (flat == 0).all(1) & ~nan
    out = []
    if nan.any():
        out.append(Finding("nan-gradients", "warning", f"{int(nan.sum())} of {len(x)} inputs have NaN/inf gradients",
                           {"fraction": float(nan.float().mean())}))
    if zero.float().mean() >= 0.1:
        out.append(Finding("zero-gradients", "warning",
                           f"{int(zero.sum())} of {len(x)} correctly classified inputs have an all-zero loss gradient",
                           {"fraction": float(zero.float().mean())}))
    return out


def _frac(mask, n: int) -> float:
    return float(np.sum(mask)) / n if n else 0.0


def blackbox_findings(records: dict, threat, whitebox: list[str], blackbox_key: str, tol: float) -> list[Finding]:
    """Samples that a gradient-free attack broke although every white-box attack failed.

    At the default ``tol`` = 0 a single such sample fires, as the official AutoAttack reacts to any
    point Square breaks after the white-box attacks (``checks.check_square_sr``); ``tol`` is the
    fraction of correctly classified samples that may be broken only by the black-box attack.
    """
    robust_wb, _ = rec.worst_case(records, threat, whitebox)
    bb = records.get(rec.key(threat, blackbox_key))
    if bb is None:
        return []
    only = robust_wb & np.asarray(bb, dtype=bool)
    n = int(np.sum(records["clean_correct"]))
    if only.sum() >= 1 and _frac(only, n) > tol:
        return [Finding("blackbox-beats-whitebox", "warning",
                        f"{threat}: the black-box Square attack broke {int(only.sum())} samples "
                        f"({100 * _frac(only, n):.1f}% of correctly classified) that every white-box attack failed on",
                        {"threat": str(threat), "count": int(only.sum())})]
    return []


def fgsm_pgd_findings(records: dict, threat, tol: float) -> list[Finding]:
    f, p = records.get(rec.key(threat, "fgsm", "success")), records.get(rec.key(threat, "pgd", "success"))
    if f is None or p is None:
        return []
    n = len(f)
    gap = _frac(f, n) - _frac(p, n)
    if gap > tol:
        return [Finding("fgsm-beats-pgd", "warning",
                        f"{threat}: FGSM broke {100 * _frac(f, n):.1f}% but PGD only {100 * _frac(p, n):.1f}%",
                        {"threat": str(threat), "gap": gap})]
    return []


def gap_findings(robust_pgd: float, robust_worst: float, threat, tol: float, attack: str) -> list[Finding]:
    gap = robust_pgd - robust_worst
    if gap > tol:
        return [Finding("ce-autoattack-gap", "warning",
                        f"{threat}: CE-PGD reports {100 * robust_pgd:.1f}% robust accuracy but the worst case with "
                        f"{attack} is {100 * robust_worst:.1f}% ({100 * gap:.1f} points lower)",
                        {"threat": str(threat), "gap": gap})]
    return []


def unbounded_findings(accuracy: float, threat, eps: float, limit: float) -> list[Finding]:
    if accuracy > limit:
        return [Finding("unbounded-not-zero", "warning",
                        f"{threat.norm} attack with ε={eps:g} (the whole input box) still leaves "
                        f"{100 * accuracy:.1f}% robust accuracy; expected ~0%", {"threat": str(threat), "eps": eps})]
    return []


def monotone_findings(eps: list[float], raw: list[float], threat, tol: float) -> list[Finding]:
    bad = [(eps[i], eps[i + 1]) for i in range(len(raw) - 1) if raw[i + 1] > raw[i] + tol]
    if bad:
        pairs = ", ".join(f"{a:g}→{b:g}" for a, b in bad)
        return [Finding("curve-not-monotone", "warning",
                        f"{threat}: the curve attack's accuracy rises with ε at {pairs}", {"threat": str(threat)})]
    return []


def fgsm_breaks_all(fgsm_accuracy: float, threat, limit: float) -> list[Finding]:
    if fgsm_accuracy < limit:
        return [Finding("fgsm-breaks-all", "info",
                        f"{threat}: only {100 * fgsm_accuracy:.1f}% of samples survive FGSM; the model needs "
                        "adversarial training", {"threat": str(threat)})]
    return []


def class_findings(per_class: list[dict], threat, minimum: float | None) -> list[Finding]:
    if minimum is None:
        return []
    low = [c for c in per_class if c["n"] and c["accuracy"] < minimum]
    if not low:
        return []
    names = ", ".join(f"{c['class']} ({100 * c['accuracy']:.0f}%)" for c in low)
    return [Finding("class-below-minimum", "warning", f"{threat}: classes under {100 * minimum:.0f}%: {names}",
                    {"threat": str(threat), "classes": [c["class"] for c in low]})]


register_check(
    "certify-vs-attack", "Certified and empirical robustness side by side",
    "Certified accuracy (randomized smoothing) is a lower bound for the smoothed classifier g; an attack's "
    "robust accuracy is an upper bound for the base model f. They measure different classifiers and bounds "
    "from opposite sides, and CERTIFY cannot certify any radius above σ·Φ⁻¹(α^(1/n)) at its n.",
    "Compare certified accuracy only at radii below the largest certifiable one; raise [certify] n to reach "
    "larger radii; do not read 0% certified as 'broken' next to a high attack number.")


def certify_findings(certify: dict | None, threat_keys) -> list[Finding]:
    """An ``info`` caveat for each L2 threat evaluated beside a certification: when ε lies above the largest
    certifiable radius the certified number there is 0% by construction, not by a weakness of the model."""
    from ..threat import ThreatModel
    if not certify:
        return []
    top, out = certify.get("max_certifiable_radius"), []
    for key in threat_keys:
        t = ThreatModel.parse(key)
        if t.norm != "l2" or top is None:
            continue
        if t.eps > top:
            msg = (f"{key}: ε = {t.eps:g} lies above the largest radius certifiable with n = {certify['n']} "
                   f"(σ·Φ⁻¹(α^(1/n)) = {top:.3f}); certified accuracy there is 0% by construction, while the "
                   "attacks' robust accuracy is an upper bound on the base model: the two do not contradict")
        else:
            msg = (f"{key}: certified accuracy (a lower bound, smoothed classifier σ = {certify['sigma']:g}) and "
                   "robust accuracy under attack (an upper bound, base model) bound different classifiers")
        out.append(Finding("certify-vs-attack", "info", msg, {"threat": key, "max_certifiable_radius": top}))
    return out
