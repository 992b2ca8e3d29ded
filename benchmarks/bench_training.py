"""Training cost: time to 90% with the defaults, each method's epoch vs standard training, Fast-AT vs PGD-AT.

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py [--part reach,costs,fast] [--data mnist5k]
        [--max-epochs 5] [--n 1000] [--robust-epochs 10] [--json out.json]

Part 0 (``reach``) trains with nothing but the defaults (``TrainConfig.for_task(data=..., method=...,
epochs=--max-epochs)``, exactly what ``advkit train --data D --method M --epochs E`` runs) and reports,
per method, the wall time and process CPU time until the held-out validation accuracy first reaches 90%
(and the epoch). The machine's load average is printed with the numbers: on a shared machine wall times
are inflated; the CPU times and the ratios between methods (same process) are the comparable numbers.

Part 1 trains the zoo's small CNN for one epoch on ``--n`` mnist5k images with each method (the
recipes' inner settings: 8 PGD/TRADES/MART steps) and reports CPU seconds per epoch and the ratio to
standard training.  Part 2 trains Fast-AT and PGD-AT (and standard) with the same epochs on sklearn
digits (L∞ ε = 0.1) and reports total CPU seconds, clean and PGD-20 test accuracy, and Fast-AT's
speedup over PGD-AT.  Timings are process CPU time (robust to a shared machine), one thread.
"""
from __future__ import annotations

import argparse
import json
import os
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
                          schedule="constant", keep="last", chance_patience=0)  # cost only: 1 epoch may sit at chance
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
                          keep="last", chance_patience=0, **extra)
        model, sec = _train(cfg, tr.x, tr.y)
        res = PGD(threat=threat, steps=20)(model, te.x, te.y, generator=torch.Generator().manual_seed(0))
        clean = float((model.predict(te.x) == te.y).float().mean())
        rows.append({"method": method, "epochs": epochs, "cpu_seconds": sec, "clean_accuracy": clean,
                     "pgd20_accuracy": res.robust_accuracy})
    return rows


def time_to_accuracy(data: str, max_epochs: int, target: float = 0.90) -> list[dict]:
    """Wall / CPU seconds until the validation clean accuracy first reaches ``target`` (defaults only)."""
    from advkit.errors import TrainingStalled
    from advkit.training.data import split_train_val
    from advkit.training.loop import derive_seed
    tr = load_data(data, "train")
    rows = []
    for method in ("standard", "pgd-at", "trades"):
        cfg = TrainConfig.for_task(data=data, method=method, epochs=max_epochs)
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, "split"))
        xtr, ytr, xva, yva = split_train_val(tr.x, tr.y, val_size=cfg.val_size, subset=cfg.train_subset, generator=g)
        model = build_model(cfg, tuple(tr.x.shape[1:]), tr.num_classes)
        row = {"method": method, "data": data, "epochs_run": max_epochs, "reached_epoch": None, "wall_seconds": None,
               "cpu_seconds": None, "val_clean_by_epoch": []}
        wall0, cpu0 = time.perf_counter(), time.process_time()

        def on_epoch(r, row=row, wall0=wall0, cpu0=cpu0):
            # validation runs inside fit before this callback: its time is included, as a user would see it
            row["val_clean_by_epoch"].append(r["val_clean_accuracy"])
            if row["reached_epoch"] is None and r["val_clean_accuracy"] >= target:
                row.update(reached_epoch=r["epoch"], wall_seconds=time.perf_counter() - wall0,
                           cpu_seconds=time.process_time() - cpu0)
        try:
            fit(model, xtr, ytr, cfg, val=(xva, yva), on_epoch=on_epoch)
        except TrainingStalled as e:
            row["stalled"] = str(e)
        rows.append(row)
    return rows


def defaults_table(data: str, epochs: int, overrides: dict) -> list[dict]:
    """Test clean and PGD-20 accuracy at the training ε of 3 methods trained with the defaults (+ overrides)."""
    from advkit.training.data import split_train_val
    from advkit.training.loop import derive_seed
    tr, te = load_data(data, "train"), load_data(data, "test")
    rows = []
    for method in ("standard", "pgd-at", "trades"):
        cfg = TrainConfig.for_task(data=data, method=method, epochs=epochs, **overrides)
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, "split"))
        xtr, ytr, xva, yva = split_train_val(tr.x, tr.y, val_size=cfg.val_size, subset=cfg.train_subset, generator=g)
        model = build_model(cfg, tuple(tr.x.shape[1:]), tr.num_classes)
        cpu0 = time.process_time()
        fit(model, xtr, ytr, cfg, val=(xva, yva))
        cpu = time.process_time() - cpu0
        res = PGD(threat=ThreatModel("linf", cfg.eps), steps=20)(model, te.x, te.y,
                                                                 generator=torch.Generator().manual_seed(0))
        rows.append({"method": method, "eps": cfg.eps, "cpu_seconds": cpu, "test_n": len(te.y),
                     "clean_accuracy": float((model.predict(te.x) == te.y).float().mean()),
                     "pgd20_accuracy": res.robust_accuracy})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="reach,costs,fast", help="comma-separated parts: reach, costs, fast, defaults")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a default in the 'defaults' part (repeatable), e.g. --set batch_size=8")
    ap.add_argument("--data", default="mnist5k", help="data set of the time-to-90%% part")
    ap.add_argument("--max-epochs", type=int, default=5, help="epochs of the time-to-90%% runs (the schedule's length)")
    ap.add_argument("--n", type=int, default=1000, help="mnist5k training images for the per-epoch costs")
    ap.add_argument("--robust-epochs", type=int, default=10, help="epochs of the Fast-AT vs PGD-AT comparison")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    parts = set(args.part.split(","))
    report: dict = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count()}
    if "reach" in parts:
        reach = report["time_to_90"] = time_to_accuracy(args.data, args.max_epochs)
        load = os.getloadavg()
        print(f"Time to 90% validation accuracy with the defaults on {args.data} ({args.max_epochs}-epoch schedule, "
              f"1 thread; MACHINE LOADED: load average {load[0]:.1f} on {os.cpu_count()} CPUs, wall times inflated):")
        print("| method | reached at epoch | wall s | CPU s | × standard (CPU) | val clean by epoch |\n|---|---|---|---|---|---|")
        base = reach[0]["cpu_seconds"]
        for r in reach:
            acc = " ".join(f"{100 * a:.1f}" for a in r["val_clean_by_epoch"])
            if r["reached_epoch"] is None:
                print(f"| {r['method']} | not within {r['epochs_run']} | — | — | — | {acc} |")
            else:
                ratio = f"{r['cpu_seconds'] / base:.1f}" if base else "—"
                print(f"| {r['method']} | {r['reached_epoch']} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | "
                      f"{ratio} | {acc} |")
    if "defaults" in parts:
        from advkit.cli.options import parse_key_values
        table = report["defaults"] = defaults_table(args.data, 3, parse_key_values(args.overrides, "--set"))
        print(f"3-epoch runs with the defaults on {args.data} {args.overrides or ''} (test split, PGD-20 at the "
              f"training ε; CPU seconds, 1 thread):")
        print("| method | ε | clean | PGD-20 | CPU s |\n|---|---|---|---|---|")
        for r in table:
            print(f"| {r['method']} | {r['eps']:g} | {100 * r['clean_accuracy']:.1f}% | "
                  f"{100 * r['pgd20_accuracy']:.1f}% | {r['cpu_seconds']:.0f} |")
    if "costs" in parts:
        costs = report["epoch_costs"] = epoch_costs(args.n)
        print(f"Per-epoch cost on {args.n} mnist5k images (small CNN, 1 thread):")
        print("| method | CPU s / epoch | × standard |\n|---|---|---|")
        for r in costs:
            print(f"| {r['method']} | {r['cpu_seconds']:.2f} | {r['ratio_to_standard']:.1f} |")
    if "fast" not in parts:
        _dump(args.json, report)
        return
    comp = report["fast_vs_pgd"] = fast_vs_pgd(args.robust_epochs)
    print(f"\nFast-AT vs PGD-AT on digits, L∞ ε=0.1, {args.robust_epochs} epochs:")
    print("| method | CPU s | clean | PGD-20 |\n|---|---|---|---|")
    for r in comp:
        print(f"| {r['method']} | {r['cpu_seconds']:.1f} | {100 * r['clean_accuracy']:.1f}% | "
              f"{100 * r['pgd20_accuracy']:.1f}% |")
    fast, pgd = comp[1], comp[2]
    print(f"\nFast-AT speedup over PGD-AT (7 steps): {pgd['cpu_seconds'] / fast['cpu_seconds']:.1f}×")
    _dump(args.json, report)


def _dump(path, report: dict) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
