"""The screening protocol (APGD-CE → MALT-targeted APGD-T) against AutoAttack standard: passes and robust accuracy.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_screening.py --n 500 --norms linf \\
        --models standard pgdat trades digits --seeds 0 --out screening.jsonl

Both protocols are advkit's presets (``screening_malt`` and ``autoattack_standard``), on the same first
``--n`` test images with the same generator seed.  Models: ``standard``, ``pgdat``, ``trades`` are
``zoo:mnist5k-*`` on ``mnist5k`` (L∞ 0.3, L2 2.0); ``digits`` is the test suite's CNN on scikit-learn's
8×8 digits (trained here, seed 0; its test split has 397 images; L∞ 0.1, L2 1.0).  A *pass* is one
sample through the model forward or backward: passes = ``model_calls`` + ``gradient_calls`` of the
attacks (MALT's ranking counts one forward and one backward per ranked class).  ``weaker`` counts the
images AutoAttack breaks and the screening protocol does not; ``stronger`` the reverse.  Targets of
issue 22: AutoAttack passes / screening passes ≥ 4 and screening robust ≤ AutoAttack robust + n/500.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_autoattack_norms import train_digits  # noqa: E402

EPS = {"linf": {"mnist": 0.3, "digits": 0.1}, "l2": {"mnist": 2.0, "digits": 1.0}}


def load(model: str, n: int):
    from advkit.model import Classifier
    if model == "digits":
        net, x, y = train_digits()
        return Classifier(net, num_classes=10, input_shape=(1, 8, 8)), x[:n], y[:n]
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model
    clf = load_model(f"zoo:mnist5k-{model}")
    data = load_data("mnist5k", "test")
    return clf, data.x[:n], data.y[:n]


def run(preset, clf, x, y, seed: int):
    res = preset(clf, x, y, generator=torch.Generator().manual_seed(seed))
    return res.success, res.model_calls, res.gradient_calls


def one(model: str, norm: str, seed: int, n: int) -> dict:
    from advkit.attacks.presets import autoattack_standard, screening_malt
    clf, x, y = load(model, n)
    eps = EPS[norm]["digits" if model == "digits" else "mnist"]
    threat = f"{norm}:{eps}"
    aa_ok, aa_f, aa_b = run(autoattack_standard(threat, 10), clf, x, y, seed)
    sc_ok, sc_f, sc_b = run(screening_malt(threat, 10), clf, x, y, seed)
    return {"model": model, "threat": threat, "seed": seed, "n": len(x),
            "aa_robust": int((~aa_ok).sum()), "screening_robust": int((~sc_ok).sum()),
            "weaker": int((aa_ok & ~sc_ok).sum()), "stronger": int((sc_ok & ~aa_ok).sum()),
            "aa_passes": aa_f + aa_b, "screening_passes": sc_f + sc_b,
            "aa_forward": aa_f, "aa_backward": aa_b, "screening_forward": sc_f, "screening_backward": sc_b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--models", nargs="+", default=["standard", "pgdat", "trades", "digits"])
    ap.add_argument("--norms", nargs="+", default=["linf", "l2"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=None, help="append one JSON line per row")
    args = ap.parse_args()
    print("| model | threat | seed | n | AutoAttack robust | screening robust | weaker | stronger | "
          "AutoAttack passes | screening passes | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for norm in args.norms:
        for model in args.models:
            for seed in args.seeds:
                r = one(model, norm, seed, args.n)
                ok = r["screening_robust"] <= r["aa_robust"] + r["n"] / 500
                print(f"| {model} | {r['threat']} | {seed} | {r['n']} | {r['aa_robust']} | {r['screening_robust']}"
                      f"{'' if ok else ' (weaker)'} | {r['weaker']} | {r['stronger']} | {r['aa_passes']:,} | "
                      f"{r['screening_passes']:,} | {r['aa_passes'] / r['screening_passes']:.1f}× |", flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
