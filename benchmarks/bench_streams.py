"""Cost of per-sample random streams (advkit.rng.SampleStreams) against a torch.Generator in Square Attack,
the attack that draws every iteration.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_streams.py [--model zoo:mnist5k-pgdat] [--batch 100]

Two measurements per norm, each the median of ``--reps`` runs, the two kinds of randomness interleaved in
one process (so machine load affects both alike):

* a whole Square run (``--queries`` iterations on ``--batch`` images of an adversarially trained model, at
  budgets so small that no image breaks, so both runs do the same work every iteration): seconds per
  iteration with each kind and their ratio;
* one Square step without the model (windows, signs, bump orientation and the candidate);
* the random draws of one step alone (two window corners, or four for L2/L1, the bump's coin and the
  signs), the only work that differs: ``overhead`` = their extra cost over a whole iteration's cost.
"""
from __future__ import annotations

import argparse
import time

import torch
from bench_passes import _median_seconds  # run as a script: benchmarks/ is on sys.path


def _pair(make_gen_fn, reps: int) -> tuple[float, float]:
    """Medians of fn(torch.Generator) and fn(SampleStreams), interleaved run by run."""
    a, b = [], []
    for _ in range(reps):
        a.append(_median_seconds(make_gen_fn("generator"), 1))
        b.append(_median_seconds(make_gen_fn("streams"), 1))
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
    from advkit import rng
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
    print("| norm | run ms/iter generator | run ms/iter streams | ratio | step-only ms generator | "
          "step-only ms streams | draws ms generator | draws ms streams | overhead |")
    print("|---|---|---|---|---|---|---|---|---|")
    n, c = len(x), x.shape[1]
    eps = {"linf": 0.01, "l2": 0.05, "l1": 0.2}  # nothing breaks: every iteration works on every image
    for norm in ("linf", "l2", "l1"):
        sq = Square(f"{norm}:{eps[norm]}", n_queries=args.queries)
        broken = [int(sq(clf, x, y, generator=gen(kind)).success.sum()) for kind in ("generator", "streams")]
        run_g, run_s = _pair(lambda kind: (lambda: sq(clf, x, y, generator=gen(kind))), args.reps)
        step = {"linf": sq._step_linf, "l2": sq._step_l2, "l1": sq._step_l1}[norm]
        xb = sq._init_linf(x, gen("generator"), (0.0, 1.0)) if norm == "linf" else \
            {"l2": sq._init_l2, "l1": sq._init_l1}[norm](x, gen("generator"), (0.0, 1.0))
        side = sq._side(0, x)

        def steps(kind):
            g = gen(kind)
            return lambda: [step(x, xb, side, g, (0.0, 1.0)) for _ in range(20)]
        st_g, st_s = _pair(steps, args.reps)

        def draws(kind, corners=2 if norm == "linf" else 4):
            g = gen(kind) if kind == "generator" else rng.take(gen(kind), rows)  # Square draws for a subset

            def one_step():
                if rng.is_stream(g):  # as Square does: the step's words in one draw
                    g.prefetch(corners + (norm != "linf") + c)
                for _ in range(corners):
                    rng.randint(g, 0, 20, (n, 1, 1, 1))
                if norm != "linf":
                    g.coin() if rng.is_stream(g) else torch.rand(1, generator=g).item()
                rng.randint(g, 0, 2, (n, c, 1, 1))
            return lambda: [one_step() for _ in range(20)]
        dr_g, dr_s = _pair(draws, args.reps)
        q = args.queries
        print(f"| {norm} (broken {broken[0]}/{broken[1]}) | {run_g / q * 1e3:.2f} | {run_s / q * 1e3:.2f} | "
              f"{run_s / run_g:.3f} | {st_g / 20 * 1e3:.3f} | {st_s / 20 * 1e3:.3f} | {dr_g / 20 * 1e3:.3f} | "
              f"{dr_s / 20 * 1e3:.3f} | {(dr_s - dr_g) / 20 / (run_g / q):+.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
