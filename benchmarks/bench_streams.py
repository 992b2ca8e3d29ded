"""Cost of per-sample random streams (advkit.rng.SampleStreams) against a torch.Generator in Square Attack,
the attack that draws every iteration.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_streams.py [--model zoo:mnist5k-pgdat] [--batch 100]

Two measurements per norm, each the median of ``--reps`` runs, the two kinds of randomness interleaved in
one process (so machine load affects both alike):

* a whole Square run (``--queries`` iterations on ``--batch`` images of an adversarially trained model, most
  of which stay active): seconds per iteration with each kind and their ratio;
* one Square step without the model (windows, signs, bump orientation and the candidate): the draws' own cost.
"""
from __future__ import annotations

import argparse
import time

import torch


def _median(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _pair(make_gen_fn, reps: int) -> tuple[float, float]:
    """Medians of fn(torch.Generator) and fn(SampleStreams), interleaved run by run."""
    a, b = [], []
    for _ in range(reps):
        a.append(_median(make_gen_fn("generator"), 1))
        b.append(_median(make_gen_fn("streams"), 1))
    return sorted(a)[len(a) // 2], sorted(b)[len(b) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zoo:mnist5k-pgdat")
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from advkit.attacks.square import Square
    from advkit.rng import SampleStreams
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model
    clf, data = load_model(args.model), load_data(args.data)
    x, y = data.x[:args.batch].contiguous(), data.y[:args.batch]
    rows = torch.arange(len(x))

    def gen(kind):
        return torch.Generator().manual_seed(0) if kind == "generator" else SampleStreams.for_samples(0, "b", rows)

    print(f"model {args.model}, {len(x)} images {tuple(x.shape[1:])}, {args.queries} queries, "
          f"{torch.get_num_threads()} thread(s), median of {args.reps}")
    print("| norm | run s/iter generator | run s/iter streams | ratio | step-only ms generator | "
          "step-only ms streams |")
    print("|---|---|---|---|---|---|")
    eps = {"linf": 0.3, "l2": 2.0, "l1": 10.0}
    for norm in ("linf", "l2", "l1"):
        sq = Square(f"{norm}:{eps[norm]}", n_queries=args.queries)
        run_g, run_s = _pair(lambda kind: (lambda: sq(clf, x, y, generator=gen(kind))), args.reps)
        step = {"linf": sq._step_linf, "l2": sq._step_l2, "l1": sq._step_l1}[norm]
        xb = sq._init_linf(x, gen("generator"), (0.0, 1.0)) if norm == "linf" else \
            {"l2": sq._init_l2, "l1": sq._init_l1}[norm](x, gen("generator"), (0.0, 1.0))
        side = sq._side(0, x)

        def steps(kind):
            g = gen(kind)
            return lambda: [step(x, xb, side, g, (0.0, 1.0)) for _ in range(20)]
        st_g, st_s = _pair(steps, args.reps)
        q = args.queries
        print(f"| {norm} | {run_g / q:.5f} | {run_s / q:.5f} | {run_s / run_g:.3f} | {st_g / 20 * 1e3:.3f} | "
              f"{st_s / 20 * 1e3:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
