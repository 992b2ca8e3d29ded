"""Run-time guidance for the README: CPU seconds per image of the costly parts of an evaluation.

Measures, in one process with one thread, the CPU time (``time.process_time``) per image of
  * AutoAttack standard (APGD-CE → APGD-T → FAB-T → Square, reference budgets) on a robust zoo model,
  * CERTIFY (randomized smoothing) with n = 10,000 noise samples on the smoothing zoo model,
  * PGD-20 × 5 restarts (the evaluation's PGD stage),
and extrapolates to the workloads users ask about.  CPU time, not wall time, so that other jobs on a
shared machine inflate the numbers less (they still do, through caches): on an idle machine with one
thread per process, wall time ≈ CPU time.

    OMP_NUM_THREADS=1 python benchmarks/bench_runtimes.py [--images 8]
"""
from __future__ import annotations

import argparse
import os
import time

import torch


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from advkit import ThreatModel
    from advkit.attacks import registry
    from advkit.attacks.pgd import PGD
    from advkit.attacks.restarts import BestOf
    from advkit.smoothing.stage import run_certify_stage
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model

    data = load_data("mnist5k", "test")
    k = args.images
    gen = torch.Generator().manual_seed(0)
    robust = load_model("zoo:mnist5k-pgdat")
    x, y = data.x[:k], data.y[:k]
    threat = ThreatModel.parse("linf:0.3")
    aa = registry.build("autoattack", threat, num_classes=10)
    t_aa = cpu_seconds(lambda: aa(robust, x, y, generator=gen))
    pgd = BestOf(PGD(threat, steps=20), restarts=5)
    t_pgd = cpu_seconds(lambda: pgd(robust, x, y, generator=gen))
    noisy = load_model("zoo:mnist5k-noise0.25")
    t_cert = cpu_seconds(lambda: run_certify_stage(noisy, x, y, sigma=0.25, n0=100, n=10_000, generator=gen))
    rows = [("AutoAttack standard, mnist5k-pgdat, linf:0.3", t_aa / k, 500),
            ("PGD-20 x 5 restarts, mnist5k-pgdat, linf:0.3", t_pgd / k, 500),
            ("CERTIFY n=10,000, mnist5k-noise0.25", t_cert / k, 1000)]
    print(f"CPU seconds per image ({k} images, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f})")
    for name, per, n in rows:
        print(f"{name:48s} {per:7.2f} s/image   x{n}: {per * n / 60:6.1f} min")


if __name__ == "__main__":
    main()
