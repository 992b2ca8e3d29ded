"""Report figures over several runs: the history trend and the clean-vs-robust trade-off of compared models,
drawn like :mod:`advkit.report.plots` (matplotlib Agg, PNG bytes, ``None`` when there is nothing to draw)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from . import accuracy_ci
from .plots import PALETTE, _png, _style

__all__ = ["trend", "trend_figure", "tradeoff_scatter"]


def trend(runs: Sequence[dict]) -> bytes | None:
    """The history trend (:func:`trend_figure`) as PNG bytes."""
    fig = trend_figure(runs)
    return None if fig is None else _png(fig)


def trend_figure(runs: Sequence[dict]) -> Figure | None:
    """Clean (dashed) and robust (solid) accuracy per run id: one line per model *and* spec (runs of
    different specs measure different things and are never joined); the x axis is the run id."""
    from matplotlib.ticker import MaxNLocator

    if not runs:
        return None
    fig = Figure(figsize=(8.0, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    groups: dict[tuple[str, str], list[dict]] = {}
    runs = [r if r.get("run_id") is not None else {**r, "run_id": i + 1}  # runs without ids: their order
            for i, r in enumerate(sorted(runs, key=lambda r: str(r.get("created"))))]
    for r in sorted(runs, key=lambda r: int(r["run_id"])):
        groups.setdefault((str(r.get("model")), str(r.get("spec_hash") or "")), []).append(r)
    threat_names = sorted({t for r in runs for t in (r.get("robust_accuracy") or {})})
    specs_per_model = {m: sum(1 for mm, _ in groups if mm == m) for m, _ in groups}
    styles = ["-", ":", "-.", (0, (5, 1, 1, 1))]
    for j, ((m, spec), rs) in enumerate(groups.items()):
        name = m + (f" (spec {spec[:6]})" if specs_per_model[m] > 1 else "")
        xs = [int(r["run_id"]) for r in rs]
        c = PALETTE[j % len(PALETTE)]
        ax.plot(xs, [r.get("clean_accuracy") for r in rs], "--o", color=c, ms=3, lw=1, alpha=0.7,
                label=f"{name} clean")
        for t in sorted({t for r in rs for t in (r.get("robust_accuracy") or {})}):
            ax.plot(xs, [(r.get("robust_accuracy") or {}).get(t, np.nan) for r in rs], marker="o", color=c,
                    ms=3.5, lw=1.8, ls=styles[threat_names.index(t) % len(styles)], label=f"{name} {t}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("run id")
    _style(ax)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def tradeoff_scatter(points: Sequence[tuple], *, threat: str = "", n: int | None = None) -> bytes | None:
    """Clean vs robust accuracy, one labelled point per model: ``(label, clean, robust[, n])``; with 95%
    intervals of the robust accuracy when the point's ``n`` (or the common ``n``) is known."""
    if not points:
        return None
    fig = Figure(figsize=(5.6, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    for j, (label, clean, robust, *rest) in enumerate(points):
        if clean is None or robust is None:
            continue
        n_j = rest[0] if rest and rest[0] else n
        ci = accuracy_ci(robust, n_j) if n_j else None
        yerr = [[robust - ci[0]], [ci[1] - robust]] if ci else None
        ax.errorbar([clean], [robust], yerr=yerr, fmt="o", ms=8, color=PALETTE[j % len(PALETTE)], capsize=3)
        ax.annotate(label, (clean, robust), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("clean accuracy")
    ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    _style(ax, ylabel=f"robust accuracy {threat}".strip())
    ax.grid(True, axis="x", color="#e5e7eb", linewidth=0.8)
    return _png(fig)
