"""Benchmark: randomized-smoothing CERTIFY speed and the sequential mode's sample savings.

For each model (the zoo noise models ``mnist5k-noise0.25`` / ``mnist5k-noise0.5`` when shipped, else an
untrained SmallCNN), on the first ``--images`` mnist5k test images:

* ``floor``: the time of the n forward passes alone (random inputs, best batch size of a sweep);
* ``advkit``: ``SmoothedClassifier.certify`` (noise drawn on the device, bincount, inference mode);
* ``reference``: a straightforward per-image implementation of CERTIFY in the style of the paper's
  code (per image: repeat the image into a batch, ``randn_like`` noise, forward, count predictions in a
  Python loop, statsmodels' Clopper–Pearson), at the same batch size;
* ``sequential``: ``certify_sequential`` at the same α for the standard radii; mean samples per image
  and the saving against fixed-n (n0 + n).

Usage:  OMP_NUM_THREADS=2 python benchmarks/bench_certify.py --threads 2 --images 2 --ns 10000,100000
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from advkit.smoothing import SmoothedClassifier, certify_sequential, image_generators

RADII = {0.25: (0.25, 0.5, 0.75, 1.0), 0.5: (0.5, 1.0, 1.5, 2.0)}


def load_models(refs: list[str], sigmas: list[float]) -> list[tuple[str, float, object]]:
    if refs:
        from advkit.sources.models import load_model
        return [(ref, s, load_model(ref)) for ref, s in zip(refs, sigmas)]
    from advkit.zoo import CHECKPOINT_DIR, load
    out = []
    for name, sigma in (("mnist5k-noise0.25", 0.25), ("mnist5k-noise0.5", 0.5)):
        if (Path(CHECKPOINT_DIR) / f"{name}.safetensors").exists():
            out.append((name, sigma, load(name)))
    if not out:
        from advkit.model import Classifier
        from advkit.zoo.architectures import build
        torch.manual_seed(0)  # benchmark script, not library code
        out.append(("smallcnn (untrained)", 0.25, Classifier(build("smallcnn").eval(), num_classes=10)))
    return out


def floor_rate(clf, shape, batch_sizes=(250, 500, 1000, 2000, 4000)) -> tuple[float, int]:
    """Best forward-pass throughput (samples/s) over a batch-size sweep, and the batch size."""
    best = (0.0, batch_sizes[0])
    with clf.inference(), torch.inference_mode():
        for bs in batch_sizes:
            x = torch.rand(bs, *shape)
            clf(x)
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 1.0 or reps < 2:
                clf(x).argmax(1)
                reps += 1
            rate = reps * bs / (time.perf_counter() - t0)
            best = max(best, (rate, bs))
    return best


def reference_certify(clf, x, sigma, n0, n, alpha, batch_size, num_classes=10):
    """Per-image CERTIFY as research code writes it (one image at a time, Python counting)."""
    from statsmodels.stats.proportion import proportion_confint
    from scipy.stats import norm
    out = []
    for img in x:
        with torch.no_grad():
            c0 = _ref_counts(clf, img, n0, sigma, batch_size, num_classes).argmax()
            counts = _ref_counts(clf, img, n, sigma, batch_size, num_classes)
        p_lower = proportion_confint(counts[c0], n, alpha=2 * alpha, method="beta")[0]
        out.append((-1, 0.0) if p_lower < 0.5 else (int(c0), sigma * norm.ppf(p_lower)))
    return out


def _ref_counts(clf, img, num, sigma, batch_size, num_classes):
    counts = np.zeros(num_classes, dtype=int)
    remaining = num
    while remaining > 0:
        b = min(batch_size, remaining)
        remaining -= b
        batch = img.unsqueeze(0).repeat((b, 1, 1, 1))
        noise = torch.randn_like(batch) * sigma
        for p in clf(batch + noise).argmax(1).cpu().numpy():
            counts[p] += 1
    return counts


def bench_model(name, sigma, clf, x, ns, alpha, n0) -> list[dict]:
    rate, bs = floor_rate(clf, x.shape[1:])
    sm = SmoothedClassifier(clf, sigma, 10)
    rows = []
    for n in ns:
        t0 = time.perf_counter()
        sm.certify(x, n0, n, alpha, image_generators(0, range(len(x))), bs)
        t_adv = (time.perf_counter() - t0) / len(x)
        t0 = time.perf_counter()
        with clf.inference():
            reference_certify(clf, x, sigma, n0, n, alpha, bs)
        t_ref = (time.perf_counter() - t0) / len(x)
        t0 = time.perf_counter()
        seq = certify_sequential(sm, x, n0, n, alpha, RADII[sigma], image_generators(0, range(len(x))), bs)
        t_seq = (time.perf_counter() - t0) / len(x)
        floor = (n0 + n) / rate
        rows.append({"model": name, "sigma": sigma, "n": n, "images": len(x), "batch_size": bs,
                     "floor_s": floor, "advkit_s": t_adv, "reference_s": t_ref, "ratio_to_floor": t_adv / floor,
                     "speedup_vs_reference": t_ref / t_adv, "sequential_s": t_seq,
                     "sequential_samples": float(seq.samples.double().mean()),
                     "sample_savings": (n0 + n) / float(seq.samples.double().mean())})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--seq-images", type=int, default=0, help="extra images for the sequential savings (0: same)")
    ap.add_argument("--ns", default="10000,100000")
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--model", action="append", default=[], help="model REF (repeatable; default: zoo noise models)")
    ap.add_argument("--sigma", action="append", type=float, default=[], help="σ of each --model")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from advkit.sources.data import load_data
    data = load_data("mnist5k", "test")
    ns = [int(v) for v in args.ns.split(",")]
    rows = []
    for name, sigma, clf in load_models(args.model, args.sigma):
        rows += bench_model(name, sigma, clf, data.x[:args.images], ns, args.alpha, args.n0)
        if args.seq_images:
            rows += sequential_only(name, sigma, clf, data.x[:args.seq_images], max(ns), args.alpha, args.n0)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def sequential_only(name, sigma, clf, x, n, alpha, n0) -> list[dict]:
    sm = SmoothedClassifier(clf, sigma, 10)
    t0 = time.perf_counter()
    seq = certify_sequential(sm, x, n0, n, alpha, RADII[sigma], image_generators(1, range(len(x))), 1000)
    mean = float(seq.samples.double().mean())
    return [{"model": name, "sigma": sigma, "n": n, "images": len(x), "sequential_s": (time.perf_counter() - t0) / len(x),
             "sequential_samples": mean, "sample_savings": (n0 + n) / mean}]


def table(rows) -> str:
    cols = ["model", "sigma", "n", "images", "batch_size", "floor_s", "advkit_s", "reference_s", "ratio_to_floor",
            "speedup_vs_reference", "sequential_samples", "sample_savings"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
