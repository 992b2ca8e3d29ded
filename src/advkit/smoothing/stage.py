"""The certification stage: CERTIFY (fixed-n or sequential) over a data set → JSON-ready summary.

Per-sample records (``index, label, prediction, radius, correct, samples, seconds``) are the source of
truth; certified accuracy at r is the fraction of images with ``correct`` and ``radius ≥ r``
(Cohen, Rosenfeld & Kolter 2019, §4), and the average certified radius (ACR, Zhai et al. 2020,
"MACER") is the mean of ``radius·correct``.  Image i draws its noise from a generator seeded by
(``seed``, i), so results do not depend on batching, sharding or where a resumed run stopped.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..progress import NULL, ProgressFn
from .sequential import LookSchedule, certify_sequential
from .smoothed import SmoothedClassifier, image_generators
from .stats import max_radius

FIELDS = ("index", "label", "prediction", "radius", "correct", "samples", "seconds")
DEFAULT_RADII = (0.25, 0.5, 0.75, 1.0)
MODES = ("fixed", "sequential")


def certify_records(clf, x: torch.Tensor, y: torch.Tensor, indices: Sequence[int], *, sigma: float, n0: int,
                    n: int, alpha: float, radii: Sequence[float], batch_size: int, seed: int,
                    mode: str = "fixed", num_classes: int | None = None, progress: ProgressFn = NULL,
                    on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """Certify ``x[j]`` (dataset index ``indices[j]``); one record per image, passed to ``on_record`` as done."""
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if len(x) != len(y) or len(x) != len(indices):
        raise ConfigError(f"x, y and indices need equal lengths, got {len(x)}, {len(y)}, {len(indices)}")
    k = num_classes or clf.num_classes or clf.infer_num_classes(x)
    smoothed = SmoothedClassifier(clf, sigma, k)
    # enough images per chunk to fill a forward pass (sequential mode's first look is small)
    per_chunk = max(1, math.ceil(batch_size / (n if mode == "fixed" else min(n, LookSchedule().first))))
    records: list[dict] = []
    progress("certify", 0, len(x))
    for start in range(0, len(x), per_chunk):
        sl = slice(start, start + per_chunk)
        idx = [int(i) for i in indices[sl]]
        gens = image_generators(seed, idx, clf.device)
        t0 = time.perf_counter()
        if mode == "fixed":
            cert = smoothed.certify(x[sl], n0, n, alpha, gens, batch_size)
        else:
            cert = certify_sequential(smoothed, x[sl], n0, n, alpha, radii, gens, batch_size)
        seconds = (time.perf_counter() - t0) / len(idx)
        for j, i in enumerate(idx):
            rec = _record(i, int(y[start + j]), cert, j, seconds)
            records.append(rec)
            if on_record is not None:
                on_record(rec)
        progress("certify", len(records), len(x))
    return records


def _record(index: int, label: int, cert, j: int, seconds: float) -> dict:
    pred = int(cert.prediction[j])
    return {"index": index, "label": label, "prediction": pred, "radius": float(cert.radius[j]),
            "correct": int(pred == label), "samples": int(cert.samples[j]), "seconds": float(seconds)}


def summarize(records: dict | list[dict], *, radii: Sequence[float], sigma: float, n0: int, n: int,
              alpha: float, mode: str) -> dict:
    """Certified accuracy per radius, ACR, abstain rate and sample use, from per-sample records."""
    cols = records if isinstance(records, dict) else {f: [r[f] for r in records] for f in FIELDS}
    cols = {f: np.asarray(cols[f]) for f in FIELDS}
    count = len(cols["index"])
    correct = cols["correct"].astype(bool)
    radius = cols["radius"].astype(np.float64)

    def acc(r: float) -> float | None:
        return float(np.mean(correct & (radius >= r))) if count else None

    samples = cols["samples"].astype(np.float64)
    fixed = n0 + n
    ceiling = max_radius(sigma, n, alpha)
    out = {
        "sigma": sigma, "n0": n0, "n": n, "alpha": alpha, "mode": mode, "count": count,
        "radii": [float(r) for r in radii],
        # σ·Φ⁻¹(α^(1/n)): no image can be certified beyond it with n samples, whatever the model
        "max_certifiable_radius": ceiling,
        "uncertifiable_radii": [float(r) for r in radii if r > ceiling],
        "certified_accuracy": {_key(r): acc(r) for r in radii},
        "accuracy": acc(0.0),
        "average_radius": float(np.mean(radius * correct)) if count else None,
        "abstain_rate": float(np.mean(cols["prediction"] == -1)) if count else None,
        "samples_mean": float(samples.mean()) if count else None,
        "samples_fixed": fixed,
        "sample_savings": float(fixed / samples.mean()) if count and samples.mean() > 0 else None,
        "seconds": float(cols["seconds"].astype(np.float64).sum()),
    }
    if mode == "fixed" and count:
        grid = np.round(np.linspace(0.0, max(float(radius.max()), max(radii, default=0.0)), 41), 6)
        out["curve"] = {"radius": grid.tolist(), "certified_accuracy": [acc(r) for r in grid]}
    out["records"] = {f: cols[f].tolist() for f in FIELDS}
    return out


def _key(r: float) -> str:
    return f"{float(r):g}"


def run_certify_stage(clf, x: torch.Tensor, y: torch.Tensor, *, sigma: float, n0: int = 100, n: int = 100_000,
                      alpha: float = 0.001, radii: Sequence[float] = DEFAULT_RADII, batch_size: int = 1000,
                      generator: torch.Generator | None = None, progress: ProgressFn = NULL,
                      mode: str = "fixed") -> dict:
    """Certify every image of ``(x, y)``; JSON-ready summary with per-sample ``records`` (columns)."""
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    recs = certify_records(clf, x, y, list(range(len(x))), sigma=sigma, n0=n0, n=n, alpha=alpha, radii=radii,
                           batch_size=batch_size, seed=seed, mode=mode, progress=progress)
    return summarize(recs, radii=radii, sigma=sigma, n0=n0, n=n, alpha=alpha, mode=mode)


__all__ = ["FIELDS", "DEFAULT_RADII", "certify_records", "summarize", "run_certify_stage", "LookSchedule"]
