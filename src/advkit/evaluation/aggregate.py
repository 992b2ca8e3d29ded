"""Derive the result dict (``result.json``) from the per-sample records of an evaluation.

Nothing here measures anything: every number is computed from ``ctx.records`` (DESIGN principle 6).
Each threat's ``robust_accuracy`` is the per-sample worst case over every attack run at that threat
(curve points at ε ≤ the threat's ε included); ``attacks.autoattack`` is AutoAttack's own number, from its
members alone (docs/protocols.md); the curve point at ε is robust only when no attack at
any ε' ≤ ε broke the sample, so the curve never exceeds the headline number at or beyond the threat's ε.
"""
from __future__ import annotations

import numpy as np
import torch

from ..results import records as rec
from . import checks, metrics
from .context import Context


def clean_summary(ctx: Context) -> dict:
    r, c = ctx.records, ctx.num_classes
    out = metrics.accuracy(r["clean_correct"])
    out["top5"] = metrics.accuracy(r["top5_correct"]) if c > 5 else None
    out["per_class"] = metrics.per_class(r["clean_correct"], r["label"], c)
    out["confusion_matrix"] = metrics.confusion_matrix(r["label"], r["clean_pred"], c).tolist()
    out["classes"] = list(ctx.classes) or [str(i) for i in range(c)]
    return out


def _attack_entry(ctx: Context, threat, name: str, cascade: bool, robust_after: np.ndarray) -> dict:
    stats = ctx.stats.get(f"{threat}/{name}", {})
    success = ctx.mask(rec.key(threat, name, "success"))
    mask = robust_after if cascade else ~success
    entry = metrics.accuracy(mask)
    entry.update(robust_accuracy=entry.pop("accuracy"), cascade=cascade,
                 attacked=int(ctx.mask(rec.key(threat, name, "attacked")).sum()),
                 seconds=float(np.sum(stats.get("_seconds", 0.0))),
                 model_calls=int(np.sum(stats.get("_model_calls", 0))),
                 gradient_calls=int(np.sum(stats.get("_gradient_calls", 0))), config=stats.get("config", {}))
    return entry


def threat_summary(ctx: Context, threat, info: dict, curve_info: dict | None) -> dict:
    names = list(info["attacks"])
    eps_list = curve_info["eps"] if curve_info else []
    inner = [f"curve/{i}" for i, e in enumerate(eps_list) if 0 < e <= threat.eps + 1e-12]
    info["inner"] = inner
    # "extra": attacks of another pass on the same forward function (the naive pass of a declared defense)
    robust, broken_by = rec.worst_case(ctx.records, threat, names + inner + list(info.get("extra", [])))
    ctx.records[rec.key(threat, "robust")] = robust
    ctx.records[rec.key(threat, "broken_by")] = broken_by
    _adv_outputs(ctx, threat, broken_by)
    attacks = _member_entries(ctx, threat, info, names)
    if info["autoattack"] and not info.get("survivors_only"):  # the screening protocol is never filed as AutoAttack
        attacks["screening" if info["version"] == "screening" else "autoattack"] = _aa_entry(ctx, threat, info, attacks)
    out = metrics.accuracy(robust)
    out.update(robust_accuracy=out.pop("accuracy"), upper_bound=info["upper_bound"], attacks=attacks,
               autoattack_version=info["version"], protocol=info["protocol"], broken_by=rec.attribution(broken_by),
               per_class=metrics.per_class(robust, ctx.records["label"], ctx.num_classes))
    out["curve"] = curve_summary(ctx, threat, curve_info, names) if curve_info else None
    return out


def _member_entries(ctx: Context, threat, info: dict, names: list[str]) -> dict:
    """One entry per attack run: FGSM and PGD on their own; AutoAttack's members as the robust accuracy
    after AutoAttack's cascade up to them (from the clean-correct samples, as the official evaluation
    counts); the black-box check, and the members under ``survivors_only``, after everything run before."""
    attacks, worst, aa = {}, ctx.mask("clean_correct"), ctx.mask("clean_correct")
    for name in names:
        broken = ctx.mask(rec.key(threat, name, "success"))
        worst = worst & ~broken
        member = name in info["autoattack"]
        if member:
            aa = aa & ~broken
        cascade = name == "square" and not member or member and info.get("survivors_only")
        after = aa if member and not info.get("survivors_only") else worst
        attacks[name] = _attack_entry(ctx, threat, name, member or cascade, after)
    return attacks


def _aa_entry(ctx: Context, threat, info: dict, attacks: dict) -> dict:
    """AutoAttack's row: the robust accuracy after its last member, counted on every clean-correct sample."""
    last = attacks[info["autoattack"][-1]]
    return {"robust_accuracy": last["robust_accuracy"], "ci": last["ci"], "n": last["n"], "cascade": False,
            "correct": last["correct"], "components": list(info["autoattack"]), "version": info["version"],
            "protocol": info["protocol"]["name"], "reference": info["protocol"]["reference"],
            "seconds": sum(attacks[a]["seconds"] for a in info["autoattack"]),
            "model_calls": sum(attacks[a]["model_calls"] for a in info["autoattack"]),
            "gradient_calls": sum(attacks[a]["gradient_calls"] for a in info["autoattack"]),
            "config": {"version": info["version"], "components": [attacks[a]["config"] for a in info["autoattack"]]}}


def _adv_outputs(ctx: Context, threat, broken_by: np.ndarray) -> None:
    pred = ctx.records["clean_pred"].copy()
    conf = ctx.records["clean_conf"].copy()
    for name in set(broken_by.tolist()) - {"", "clean"}:
        sel = broken_by == name
        pred[sel] = ctx.records[rec.key(threat, name, "pred")][sel]
        conf[sel] = ctx.records[rec.key(threat, name, "conf")][sel]
    ctx.records[rec.key(threat, "adv_pred")] = pred
    ctx.records[rec.key(threat, "adv_conf")] = conf


def curve_summary(ctx: Context, threat, curve_info: dict, headline: list[str]) -> dict:
    eps_list = curve_info["eps"]
    correct = ctx.mask("clean_correct")
    broken = ~correct
    raw, acc, ci = [], [], []
    headline_broken = ~rec.worst_case(ctx.records, threat, headline)[0]
    for i, eps in enumerate(eps_list):
        s = ctx.mask(rec.key(threat, f"curve/{i}", "success"))
        raw.append(float(1 - s.mean()))
        broken = broken | s | (headline_broken if eps >= threat.eps - 1e-12 else False)
        a = metrics.accuracy(~broken)
        acc.append(a["accuracy"])
        ci.append(a["ci"])
    found = checks.monotone_findings(eps_list, raw, threat, ctx.spec.stages.checks.monotone_tolerance)
    ctx.findings.extend(found)
    method = curve_info.get("method", "per-point")
    how = (f"fmn ({curve_info.get('fmn_steps')} steps) once, then " + " + ".join(curve_info["attacks"][1:])
           + f" ({curve_info['steps']} steps) only where it can change a point" if method == "fmn" else
           " + ".join(curve_info["attacks"]) + f" ({curve_info['steps']} steps) at every ε")
    return {"eps": eps_list, "robust_accuracy": acc, "ci": ci, "raw_accuracy": raw, "monotone": not found,
            "attack": how + ", worst case per sample", "attacks": curve_info["attacks"], "method": method,
            "model_calls": curve_info.get("model_calls"), "gradient_calls": curve_info.get("gradient_calls")}


def threat_findings(ctx: Context, threat, summary: dict, info: dict) -> None:
    ch, f = ctx.spec.stages.checks, ctx.findings
    attacks = summary["attacks"]
    if "fgsm" in attacks:
        f += checks.fgsm_breaks_all(attacks["fgsm"]["robust_accuracy"], threat, ch.fgsm_survivors_min)
    if not ch.enabled:
        return
    f += checks.fgsm_pgd_findings(ctx.records, threat, ch.fgsm_tolerance)
    whitebox = [a for a in info["attacks"] if a != "square"] + info.get("inner", [])
    f += checks.blackbox_findings(ctx.records, threat, whitebox, "square/success", ch.blackbox_tolerance)
    if "pgd" in attacks and info["autoattack"]:
        aa = attacks.get("autoattack", summary)
        f += checks.gap_findings(attacks["pgd"]["robust_accuracy"], aa["robust_accuracy"], threat,
                                 ch.gap_tolerance, "AutoAttack")
    f += checks.class_findings(summary["per_class"], threat, ctx.spec.stages.per_class.min_accuracy)
    summary["classes_below_minimum"] = [c["class"] for c in summary["per_class"]
                                        if ctx.spec.stages.per_class.min_accuracy is not None and c["n"]
                                        and c["accuracy"] < ctx.spec.stages.per_class.min_accuracy]


def eot_findings(ctx: Context, infos: dict) -> None:
    if not ctx.randomized:
        return
    used_eot = ctx.spec.stages.pgd.eot > 1 or any(i["version"] == "rand" for i in infos.values())
    if not used_eot:
        ctx.findings.append(checks.Finding(
            "randomized-no-eot", "warning", "the model is randomized but no attack used EOT; robust accuracy "
            "is likely overestimated"))


def gallery(ctx: Context, count: int = 8) -> dict:
    """Up to ``count`` adversarial examples of the first threat, each from the attack that broke it first."""
    rows: dict[str, list] = {k: [] for k in ("clean", "adv", "label", "clean_pred", "adv_pred", "clean_conf",
                                             "adv_conf")}
    r, threat = ctx.records, ctx.spec.threats[0]
    by = r.get(rec.key(threat, "broken_by"), np.zeros(0, str))
    for stage, st in ctx.stats.items():
        if not stage.startswith(f"{threat}/") or "_adv_index" not in st:
            continue
        name = stage[len(str(threat)) + 1:]
        for j, i in enumerate(st["_adv_index"]):
            if len(rows["clean"]) >= count or by[i] != name:
                continue
            for k, v in (("clean", ctx.x[i].numpy()), ("adv", st["_adv"][j]), ("label", r["label"][i]),
                         ("clean_pred", r["clean_pred"][i]), ("adv_pred", r[rec.key(threat, "adv_pred")][i]),
                         ("clean_conf", r["clean_conf"][i]), ("adv_conf", r[rec.key(threat, "adv_conf")][i])):
                rows[k].append(v)
    out = {f"gallery_{k}": np.asarray(v) for k, v in rows.items()}
    if not rows["clean"]:
        empty = np.zeros((0, *ctx.x.shape[1:]), np.float32)
        out.update(gallery_clean=empty, gallery_adv=empty)
    out["gallery_threat"] = np.asarray(str(threat))
    return out


def adversarial_examples(ctx: Context) -> dict:
    """Per threat, the adversarial example of every sample an attack broke (from the attack that broke it
    first, i.e. ``broken_by``), for ``samples.npz``: ``{threat}/x_adv_found`` (bool, dataset order) and
    ``{threat}/x_adv``. With in-memory data ``x_adv`` has a row per sample (the clean input where none was
    found); with streamed data (memory bounded by the batch) it holds only the found rows, in dataset
    order, and ``{threat}/x_adv_index`` says whose they are."""
    out = {}
    dense = isinstance(ctx.x, torch.Tensor)
    for threat in ctx.spec.threats:
        by = ctx.records.get(rec.key(threat, "broken_by"))
        if by is None:
            continue
        found, rows = np.zeros(ctx.n, bool), {}
        for stage, st in ctx.stats.items():
            if not stage.startswith(f"{threat}/") or "_adv_index" not in st:
                continue
            name = stage[len(str(threat)) + 1:]
            idx = np.asarray(st["_adv_index"], np.int64)
            mine = (by[idx] == name) & ~found[idx]
            found[idx[mine]] = True
            rows.update(zip(idx[mine].tolist(), np.asarray(st["_adv"])[mine]))
        index = np.flatnonzero(found)
        if dense:
            x_adv = ctx.x.numpy().astype(np.float32, copy=True)
            if len(index):
                x_adv[index] = np.stack([rows[i] for i in index.tolist()])
        else:
            x_adv = (np.stack([rows[i] for i in index.tolist()]).astype(np.float32) if len(index)
                     else np.zeros((0, *tuple(ctx.x.shape[1:])), np.float32))
            out[rec.key(threat, "x_adv_index")] = index
        out[rec.key(threat, "x_adv")], out[rec.key(threat, "x_adv_found")] = x_adv, found
    return out
