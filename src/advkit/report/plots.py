"""Report figures, drawn with matplotlib's Agg canvas (no pyplot state); each returns PNG bytes.

Every figure reads the result dict (or the gallery arrays of ``samples.npz``) and nothing else.
A function returns ``None`` when the result has nothing to draw (e.g. no curve was run).  Figures over
several runs (the history trend, the clean/robust trade-off) are in :mod:`advkit.report.history_plots`.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..threat import ThreatModel
from . import (NOT_CERTIFIABLE, attack_table, certified, certify_ceiling, class_names, clean_accuracy,
               curve, per_class, threats)

__all__ = ["robustness_curve", "robustness_curve_figure", "per_class_bars", "per_class_figure", "attack_contribution",
           "contribution_counts", "gallery", "certified_curve"]

PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4b5563"]
BAD, OK, GREY, GOOD = "#dc2626", "#2563eb", "#9ca3af", "#16a34a"
# One colour per attack in every figure (never the blue of the curve, the green of "robust" or grey).
ATTACK_COLORS = {"fgsm": "#f59e0b", "pgd": "#8b5cf6", "autoattack": "#be185d", "autoattack-rand": "#be185d",
                 "apgd-ce": "#ea580c", "apgd-dlr": "#c2410c", "apgd-t": "#db2777", "fab": "#0891b2",
                 "fab-t": "#0e7490", "square": "#64748b", "cw-l2": "#854d0e", "combined": "#1f2937"}
_SPARE = ["#a16207", "#7c3aed", "#0f766e", "#9f1239", "#475569", "#b45309"]


def attack_color(name: str) -> str:
    """The colour of attack ``name`` in every figure (stable across runs)."""
    return ATTACK_COLORS.get(name) or _SPARE[sum(map(ord, name)) % len(_SPARE)]
DPI = 110


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _style(ax, *, ylabel: str = "accuracy", pct: bool = True) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_ylabel(ylabel)
    if pct:
        ax.set_ylim(-0.02, 1.04)
        ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")


def robustness_curve(result: dict) -> bytes | None:
    """Robust accuracy vs ε for each threat, with the headline points (each attack and the worst case)."""
    fig = robustness_curve_figure(result)
    return None if fig is None else _png(fig)


def robustness_curve_figure(result: dict) -> Figure | None:
    """The figure of :func:`robustness_curve` (for layout checks).

    One panel per threat, each with its legend in its own strip under the panel (constrained layout
    keeps them apart); the attacks' markers stand beside the worst-case star so that none hides another;
    a threat given as k/255 gets its ε axis in k/255."""
    ts = [(t, s) for t, s in threats(result).items() if curve(result, t)[0] or s.get("robust_accuracy") is not None]
    if not ts:
        return None
    fig = Figure(figsize=(5.2 * len(ts), 4.2), layout="constrained")
    for i, (t, sec) in enumerate(ts):
        ax = fig.add_subplot(1, len(ts), i + 1)
        eps, acc, method = curve(result, t)
        if eps:
            ax.plot(eps, acc, "-o", color=PALETTE[0], ms=3.5, lw=1.8, label=f"curve ({method or 'attack'})")
        span = max(eps) if eps else 1.25 * ThreatModel.parse(t).eps or 1.0
        _headline_points(ax, t, sec, span)
        if not eps:  # headline points only: show them against ε from 0
            ax.set_xlim(0, span)
        _eps_axis(ax, t)
        ax.set_title(t, fontsize=11)
        _style(ax, ylabel="robust accuracy")
        ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=1, numpoints=1)
    return fig


def _eps_axis(ax, threat: str) -> None:
    """ε in the units the threat was written in: k/255 ticks for "linf:8/255", plain numbers otherwise."""
    norm = threat.split(":")[0]
    if "/255" not in threat:
        ax.set_xlabel(f"\u03b5 ({norm})")
        return
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    lo, hi = ax.get_xlim()
    ks = MaxNLocator(nbins=6, integer=True).tick_values(max(lo, 0) * 255, hi * 255)
    ax.set_xticks([k / 255 for k in ks if lo * 255 - 1e-9 <= k <= hi * 255 + 1e-9])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{round(v * 255, 2):g}"))
    ax.set_xlabel(f"\u03b5 ({norm}, in 1/255)")


def _headline_points(ax, threat: str, sec: dict, span: float) -> None:
    """Each attack's robust accuracy dodged left of ε by a fixed distance on the page (so that none hides
    under another or under the star), joined to ε by a thin line, and the worst case (a star) at ε."""
    from matplotlib.transforms import offset_copy

    eps = ThreatModel.parse(threat).eps
    pts = [(name, att["robust_accuracy"]) for name, att in attack_table(sec, components=False)
           if att.get("robust_accuracy") is not None]
    for j, (name, ra) in enumerate(pts):
        shift = offset_copy(ax.transData, fig=ax.figure, x=-DODGE_PT * (len(pts) - j), units="points")
        ax.plot([eps], [ra], "D", ms=6, color=attack_color(name), label=f"{name}: {100 * ra:.1f}%", zorder=4,
                transform=shift)
        ax.annotate("", (eps, ra), xytext=(-DODGE_PT * (len(pts) - j), 0), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "color": attack_color(name), "lw": 0.8, "alpha": 0.6})
    if sec.get("robust_accuracy") is not None:
        ax.plot([eps], [sec["robust_accuracy"]], "*", ms=14, color=BAD,
                label=f"worst case: {100 * sec['robust_accuracy']:.1f}%", zorder=5)
        ax.axvline(eps, color=GREY, lw=0.8, ls="--")


#: how far apart (in points) the headline markers of one threat stand
DODGE_PT = 11


def per_class_bars(result: dict, threat: str, floor: float | None = None) -> bytes | None:
    """Clean and robust accuracy per class (:func:`per_class_figure`) as PNG bytes."""
    fig = per_class_figure(result, threat, floor)
    return None if fig is None else _png(fig)


def per_class_figure(result: dict, threat: str, floor: float | None = None) -> Figure | None:
    """Clean and robust accuracy per class; robust bars under ``floor`` are drawn red; a class without
    test samples gets a "no samples" label instead of a bar (an empty bar would read as 0%)."""
    names = class_names(result)
    robust = per_class(threats(result).get(threat, {}), names, keep_empty=True)
    if not any(a is not None for _, a in robust):
        return None
    clean = dict(per_class(result.get("clean") or {}, names))
    labels = [lab for lab, _ in robust]
    x = np.arange(len(labels))
    fig = Figure(figsize=(max(5.0, 0.55 * len(labels) + 2), 3.4))
    ax = fig.add_subplot(1, 1, 1)
    if clean:
        ax.bar(x - 0.2, [clean.get(lab, np.nan) for lab in labels], 0.4, color="#cbd5e1", label="clean")
    colors = [BAD if floor is not None and a is not None and a < floor else OK for _, a in robust]
    ax.bar(x + (0.2 if clean else 0), [np.nan if a is None else a for _, a in robust], 0.4 if clean else 0.7,
           color=colors, label=f"robust ({threat})")
    for i, (_, a) in enumerate(robust):
        if a is None:
            ax.text(i, 0.03, "no samples", rotation=90, ha="center", va="bottom", fontsize=7, color=GREY)
    if floor is not None:
        ax.axhline(floor, color=BAD, lw=1, ls="--", label=f"minimum {100 * floor:.0f}%")
    ax.set_xticks(x, labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right" if
                  max(map(len, labels)) > 3 else "center", fontsize=8)
    ax.set_xlabel("class")
    _style(ax)
    ax.legend(fontsize=8, frameon=False, ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def contribution_counts(result: dict, threat: str) -> tuple[list[tuple[str, int]], bool]:
    """``([(segment, samples)], exact)``: misclassified clean, broken by each attack, still robust.

    Exact when the threat records ``broken_by`` counts (the per-sample attribution); otherwise an
    estimate from the per-attack robust accuracies taken as a cascade in the order the attacks ran.
    """
    sec, n = threats(result).get(threat, {}), int(result.get("n") or 0)
    clean = clean_accuracy(result) or 0.0
    robust = float(sec.get("robust_accuracy") or 0.0)
    segs = [("misclassified", int(round((1 - clean) * n)))]
    bb = sec.get("broken_by")
    if isinstance(bb, dict):
        if "clean" in bb:
            segs = [("misclassified", int(bb["clean"]))]
        segs += [(str(k), int(v)) for k, v in bb.items() if k not in (None, "none", "", "clean")]
        return segs + [("robust", int(round(robust * n)))], True
    level = clean
    for name, att in attack_table(sec):
        ra = att.get("robust_accuracy")
        if ra is not None and ra < level:
            segs.append((name, int(round((level - ra) * n))))
            level = float(ra)
    if robust < level - 1e-9:
        segs.append(("combined", int(round((level - robust) * n))))
    return segs + [("robust", int(round(robust * n)))], False


def attack_contribution(result: dict) -> bytes | None:
    """A stacked bar per threat: which attack broke how many samples (and how many stayed robust)."""
    ts = list(threats(result))
    if not ts or not result.get("n"):
        return None
    fig = Figure(figsize=(7.5, 0.75 * len(ts) + 1.4))
    ax = fig.add_subplot(1, 1, 1)
    seen: set[str] = set()
    exact_all = True
    for i, t in enumerate(ts):
        segs, exact = contribution_counts(result, t)
        exact_all &= exact
        left = 0
        for name, k in segs:
            c = {"misclassified": GREY, "robust": GOOD}.get(name) or attack_color(name)
            ax.barh(i, k, left=left, color=c, edgecolor="white", label=None if name in seen else name)
            seen.add(name)
            if k >= 0.04 * max(1, int(result.get("n") or 0)):
                ax.text(left + k / 2, i, str(k), ha="center", va="center", fontsize=8, color="white")
            left += k
    ax.set_yticks(range(len(ts)), ts)
    ax.invert_yaxis()
    ax.set_xlabel("samples" + ("" if exact_all else "  (estimated from per-attack accuracies)"))
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, ncols=min(6, len(seen)), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return _png(fig)


def _image(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.transpose(a, (1, 2, 0))
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def _label(i, names: Sequence[str] | None) -> str:
    i = int(i)
    return names[i] if names and 0 <= i < len(names) else str(i)


def gallery(samples: dict, class_names: Sequence[str] | None = None, max_items: int = 8) -> bytes | None:
    """Clean / amplified perturbation / adversarial, with true label, predictions and confidences."""
    if samples is None or "gallery_clean" not in samples or len(samples["gallery_clean"]) == 0:
        return None
    xc, xa = np.asarray(samples["gallery_clean"]), np.asarray(samples["gallery_adv"])
    k = min(max_items, len(xc))
    fig = Figure(figsize=(1.45 * k + 0.9, 5.0))
    get = lambda key, i, d=None: samples[key][i] if key in samples and len(samples[key]) > i else d  # noqa: E731
    for i in range(k):
        delta = xa[i] - xc[i]
        scale = float(np.abs(delta).max()) or 1.0
        tiles = [(_image(xc[i]), f"true {_label(get('gallery_label', i, -1), class_names)}\n"
                  f"pred {_label(get('gallery_clean_pred', i, -1), class_names)} "
                  f"({100 * float(get('gallery_clean_conf', i, np.nan)):.0f}%)"),
                 (_image(0.5 + delta / (2 * scale)), f"\u00d7{0.5 / scale:.1f}"),
                 (_image(xa[i]), f"pred {_label(get('gallery_adv_pred', i, -1), class_names)} "
                  f"({100 * float(get('gallery_adv_conf', i, np.nan)):.0f}%)")]
        for r, (img, title) in enumerate(tiles):
            ax = fig.add_subplot(3, k, r * k + i + 1)
            ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            color = BAD if r == 2 and get("gallery_adv_pred", i, -1) != get("gallery_label", i, -2) else "black"
            ax.set_title(title, fontsize=7, color=color)
            if i == 0:
                ax.set_ylabel(["clean", "perturbation", "adversarial"][r], fontsize=8)
    return _png(fig)


def certified_curve(result: dict) -> bytes | None:
    """Certified accuracy vs L2 radius (randomized smoothing), when the result has a certify section."""
    radii, accs, sec = certified(result)
    if not radii:
        return None
    fig = Figure(figsize=(5.2, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    fine = sec.get("curve") if isinstance(sec.get("curve"), dict) else {}
    pts = [(float(r), float(a)) for r, a in zip(fine.get("radius") or [], fine.get("certified_accuracy") or [])
           if a is not None]
    if pts:  # the whole curve, from every sample's certified radius
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=PALETTE[2], lw=1.8)
    else:
        ax.step(radii, accs, where="post", color=PALETTE[2], lw=2)
    top = certify_ceiling(sec)
    ok = [(r, a) for r, a in zip(radii, accs) if top is None or r <= top]
    ax.plot([p[0] for p in ok], [p[1] for p in ok], "o", color=PALETTE[2], ms=5)
    for r, a in ok:
        ax.annotate(f"{100 * a:.0f}%", (r, a), textcoords="offset points", xytext=(4, 5), fontsize=7)
    if top is not None:
        right = max([top, *radii]) * 1.08
        ax.axvspan(top, max(right, top * 1.15), color=GREY, alpha=0.18, lw=0)
        ax.axvline(top, color=GREY, lw=1, ls="--", label=f"largest certifiable radius {top:.3f} (n = {sec.get('n')})")
        beyond = [r for r in radii if r > top]
        if beyond:
            ax.plot(beyond, [0.5] * len(beyond), "x", color=GREY, ms=6, label=NOT_CERTIFIABLE)
        ax.legend(fontsize=7, frameon=False, loc="upper right")
    ax.set_xlabel("L2 radius")
    ax.set_title(f"certified accuracy (\u03c3 = {sec.get('sigma', '?')})", fontsize=11)
    _style(ax, ylabel="certified accuracy")
    return _png(fig)
