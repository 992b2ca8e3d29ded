"""The robustness curve: one FMN run + fixed-ε APGD-CE only where it can change a point, vs APGD-CE at every ε.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_curve.py --n 1000 --seeds 0 1 2 \\
        --models standard pgdat trades digits --out curve.jsonl

Both curves come from the evaluate pipeline's curve stage (every other stage off), ``stages.curve.method``
"per-point" (APGD-CE, 20 steps, at each ε, worst case per sample over the smaller ε: advkit's curve
before issue 22) and "fmn" (the default: FMN with ``fmn_steps`` = 10, then APGD-CE with
``probe_restarts`` = 2 random starts per sample downwards from the largest grid ε below its FMN
distance until it fails).  Models: ``zoo:mnist5k-{standard,pgdat,trades}`` on the first ``--n``
``mnist5k`` test images (L∞ 0.3, the mnist profile's grid 0 … 0.5, 11 points) and the test suite's
digits CNN (397 test images, L∞ 0.1, grid 0 … 0.2, 11 points).  Passes = ``model_calls`` +
``gradient_calls`` of the curve's attacks; one APGD-CE run's worth = 42 passes per clean-correct image
(20 forward + 20 backward + the contract's clean and check passes).  Targets of issue 22: every point
≤ per-point + 1 image per 1000, total ≤ 3 runs' worth.
"""
from __future__ import annotations

import argparse
import json
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_screening import load  # noqa: E402

THREAT = {"digits": "linf:0.1"}


def curve(clf, x, y, threat: str, method: str, seed: int) -> dict:
    from advkit.evaluation import evaluate, spec_from_dict
    spec = {"n": len(x), "seed": seed, "threats": [threat], "batch_size": 250,
            "stages": {"fgsm": {"enabled": False}, "pgd": {"enabled": False}, "autoattack": {"version": "off"},
                       "checks": {"enabled": False}, "curve": {"method": method}}}
    res = evaluate(spec_from_dict(spec), model=clf, data=(x, y)).result
    c = res["threats"][threat]["curve"]
    correct = round(res["clean"]["accuracy"] * len(x))
    return {"eps": c["eps"], "robust": [round(a * len(x)) for a in c["robust_accuracy"]],
            "passes": c["model_calls"] + c["gradient_calls"], "correct": correct}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--models", nargs="+", default=["standard", "pgdat", "trades", "digits"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=None, help="append one JSON line per row")
    args = ap.parse_args()
    for model in args.models:
        clf, x, y = load(model, args.n)
        threat = THREAT.get(model, "linf:0.3")
        for seed in args.seeds:
            old, new = curve(clf, x, y, threat, "per-point", seed), curve(clf, x, y, threat, "fmn", seed)
            run = 42 * new["correct"]
            worse = [n - o for n, o in zip(new["robust"], old["robust"])]
            print(f"{model} {threat} seed {seed} n={len(x)}: per-point {old['robust']} {old['passes']:,} passes "
                  f"({old['passes'] / run:.1f} runs); fmn {new['robust']} {new['passes']:,} passes "
                  f"({new['passes'] / run:.1f} runs); fmn - per-point {worse}", flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps({"model": model, "threat": threat, "seed": seed, "n": len(x), "old": old,
                                        "new": new, "run_passes": run}) + "\n")


if __name__ == "__main__":
    main()
