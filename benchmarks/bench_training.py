"""Training cost: each method's epoch as a multiple of standard training, and Fast-AT vs PGD-AT.

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--n 1000] [--robust-epochs 10] [--json out.json]

Part 1 trains the zoo's small CNN for one epoch on ``--n`` mnist5k images with each method (the
recipes' inner settings: 8 PGD/TRADES/MART steps) and reports CPU seconds per epoch and the ratio to
standard training.  Part 2 trains Fast-AT and PGD-AT (and standard) with the same epochs on sklearn
digits (L∞ ε = 0.1) and reports total CPU seconds, clean and PGD-20 test accuracy, and Fast-AT's
speedup over PGD-AT.  Timings are process CPU time (robust to a shared machine), one thread.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from advkit.attacks.pgd import PGD
from advkit.sources.data import load_data
from advkit.threat import ThreatModel
from advkit.training import TrainConfig, fit
from advkit.training.run import build_model

METHODS = ("standard", "gaussian", "fast-at", "pgd-at", "trades", "mart")


def _train(cfg: TrainConfig, x, y):
    model = build_model(cfg, tuple(x.shape[1:]), 10)
    start = time.process_time()
    fit(model, x, y, cfg)
    return model, time.process_time() - start


def epoch_costs(n: int, repeats: int = 2) -> list[dict]:
    data = load_data("mnist5k", "train")
    x, y = data.x[:n], data.y[:n]
    rows = []
    _train(TrainConfig(epochs=1), x[:256], y[:256])  # warm-up (kernel selection, allocator)
    for method in METHODS:
        cfg = TrainConfig(method=method, epochs=1, eps=0.3, steps=8, step_size=0.05, sigma=0.25, batch_size=64,
                          schedule="constant", keep="last")
        sec = min(_train(cfg, x, y)[1] for _ in range(repeats))
        rows.append({"method": method, "cpu_seconds": sec})
    base = rows[0]["cpu_seconds"]
    for r in rows:
        r["ratio_to_standard"] = r["cpu_seconds"] / base
    return rows


def fast_vs_pgd(epochs: int) -> list[dict]:
    tr, te = load_data("digits", "train"), load_data("digits", "test")
    threat = ThreatModel("linf", 0.1)
    rows = []
    for method, extra in (("standard", {}), ("fast-at", {}), ("pgd-at", {"steps": 7})):
        cfg = TrainConfig(arch="smallcnn", arch_kwargs={"padding": 1}, method=method, eps=0.1, epochs=epochs,
                          batch_size=64, optimizer="adam", lr=2e-3, weight_decay=0.0, schedule="cyclic",
                          keep="last", **extra)
        model, sec = _train(cfg, tr.x, tr.y)
        res = PGD(threat=threat, steps=20)(model, te.x, te.y, generator=torch.Generator().manual_seed(0))
        clean = float((model.predict(te.x) == te.y).float().mean())
        rows.append({"method": method, "epochs": epochs, "cpu_seconds": sec, "clean_accuracy": clean,
                     "pgd20_accuracy": res.robust_accuracy})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="mnist5k training images for the per-epoch costs")
    ap.add_argument("--robust-epochs", type=int, default=10, help="epochs of the Fast-AT vs PGD-AT comparison")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    costs = epoch_costs(args.n)
    print(f"Per-epoch cost on {args.n} mnist5k images (small CNN, 1 thread):")
    print("| method | CPU s / epoch | × standard |\n|---|---|---|")
    for r in costs:
        print(f"| {r['method']} | {r['cpu_seconds']:.2f} | {r['ratio_to_standard']:.1f} |")
    comp = fast_vs_pgd(args.robust_epochs)
    print(f"\nFast-AT vs PGD-AT on digits, L∞ ε=0.1, {args.robust_epochs} epochs:")
    print("| method | CPU s | clean | PGD-20 |\n|---|---|---|---|")
    for r in comp:
        print(f"| {r['method']} | {r['cpu_seconds']:.1f} | {100 * r['clean_accuracy']:.1f}% | "
              f"{100 * r['pgd20_accuracy']:.1f}% |")
    fast, pgd = comp[1], comp[2]
    print(f"\nFast-AT speedup over PGD-AT (7 steps): {pgd['cpu_seconds'] / fast['cpu_seconds']:.1f}×")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"epoch_costs": costs, "fast_vs_pgd": comp}, fh, indent=2)


if __name__ == "__main__":
    main()
