"""Square as the official code runs it vs advkit's per-sample/flip variant: robust counts (issue 23).

For each seed: the official ``pyautoattack`` SquareAttack (seed s), advkit's default Square (fed the official
code's numbers: the same seed), and ``Square(per_sample_flip=True)`` (per-sample streams keyed by seed s), on
the first N clean-correct test images of a zoo model.  Counts only (no timings).

    PYTHONPATH=src python benchmarks/bench_square_variants.py [model] [threat] [n] [queries] [seeds]
"""
from __future__ import annotations

import sys

import torch

from advkit.attacks.oracle import Oracle
from advkit.attacks.square import Square
from advkit.rng import SampleStreams
from advkit.sources.data import load_data
from advkit.sources.models import load_model


def robust(clf, x, y) -> int:
    with torch.no_grad():
        return int((clf(x).argmax(1) == y).sum())


def main(model="zoo:mnist5k-pgdat", threat="linf:0.3", n=100, queries=5000, seeds=3) -> None:
    from pyautoattack.square import SquareAttack
    torch.set_num_threads(1)
    clf = load_model(model)
    data = load_data("mnist5k", split="test")
    x, y = data.x[:2 * n], data.y[:2 * n]
    with torch.no_grad():
        keep = (clf(x).argmax(1) == y).nonzero().flatten()[:n]
    x, y = x[keep], y[keep]
    norm, eps = threat.split(":")
    pnorm = {"linf": "Linf", "l2": "L2", "l1": "L1"}[norm]
    print(f"{model} {threat} {len(x)} clean-correct images, {queries} queries: robust counts")
    print("seed  official  advkit-default  advkit-per-sample-flip", flush=True)
    for seed in range(int(seeds)):
        official = SquareAttack(clf, norm=pnorm, eps=float(eps), n_queries=queries, p_init=0.8, seed=seed,
                                device="cpu", resc_schedule=False)
        theirs = robust(clf, official.perturb(x, y), y)
        default = Square(threat, n_queries=queries, rescale_schedule=False)
        ours = robust(clf, default._run(Oracle(clf), x, y, None, torch.Generator().manual_seed(seed)), y)
        variant = Square(threat, n_queries=queries, rescale_schedule=False, per_sample_flip=True)
        streams = SampleStreams.for_samples(seed, "square", range(len(x)))
        var = robust(clf, variant._run(Oracle(clf), x, y, None, streams), y)
        print(f"{seed:4d}  {theirs:8d}  {ours:14d}  {var:22d}", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*(args[:2]), *(int(a) for a in args[2:]))
