"""AutoAttack standard per norm: advkit's preset vs the official code (pyautoattack), same model and images.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_autoattack_norms.py --n 100 --seeds 0 1 2 \\
        --cases digits:l1 pgdat:l1 --out aa_norms.jsonl

Both sides run the reference composition for the norm (L∞/L2: APGD-CE, APGD-T 9, FAB-T 9, Square 5000;
L1: APGD-CE 5 restarts and APGD-T 5 targets with the 3ε→2ε→ε schedule, FAB-T, Square-L1) on the first
``--n`` test images, once per seed (advkit: ``torch.Generator().manual_seed(seed)``; official: ``seed=seed``).
Robust accuracy is re-checked here on the model (misclassified and inside the ε-ball ∩ box, tolerance
1e-4).  Models (``--cases MODEL:NORM``):

* ``digits``: the test suite's CNN on scikit-learn's 8×8 digits (trained here, seed 0, ~15 s);
* ``pgdat``, ``trades``, ``standard``: the zoo's SmallCNNs (``zoo:mnist5k-pgdat`` …) on ``mnist5k``, at the
  MNIST budgets (L∞ 0.3, L2 2, L1 10); the digits-based models at the digits' (0.1, 1, 1);
* ``rounding``: ``digits`` behind input rounding to 8 levels (``torch.round``: zero input gradients);
* ``saturated``: ``digits`` with logits ×1000 (softmax saturates: the CE gradient is 0).

Prints one row per (case, seed) and a summary per case: robust accuracy of both, the difference in
samples, and time advkit / official measured in this process.  Times are wall-clock and only their ratio
within one row means anything, more so on a loaded machine.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

EPS = {("digits", "linf"): 0.1, ("digits", "l2"): 1.0, ("digits", "l1"): 1.0,
       ("pgdat", "linf"): 0.3, ("pgdat", "l2"): 2.0, ("pgdat", "l1"): 10.0}
ZOO = {"pgdat": "zoo:mnist5k-pgdat", "trades": "zoo:mnist5k-trades", "standard": "zoo:mnist5k-standard"}


def eps_for(model: str, norm: str) -> float:
    """The case's ε: MNIST budgets for the zoo models, the digits' for the digits CNN and its variants."""
    return EPS[("pgdat" if model in ZOO else "digits", norm)]


OFFICIAL_NORM = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def train_digits(seed: int = 0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    torch.manual_seed(seed)  # benchmark script, not the library
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        order = torch.randperm(1400, generator=g)
        for i in range(0, 1400, 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval(), x[1400:], y[1400:]


class Round(nn.Module):
    def forward(self, x):
        return torch.round(x * 8) / 8


class Scale(nn.Module):
    def forward(self, z):
        return z * 1000.0


def load_case(model: str, n: int):
    if model in ZOO:
        from advkit.sources.data import load_data
        from advkit.sources.models import load_model
        clf = load_model(ZOO[model])
        data = load_data("mnist5k", "test")
        net, x, y = clf.net.eval(), data.x[:n], data.y[:n]
    else:
        net, x, y = train_digits()
        x, y = x[:n], y[:n]
        if model == "rounding":
            net = nn.Sequential(Round(), net).eval()
        elif model == "saturated":
            net = nn.Sequential(net, Scale()).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, x.contiguous(), y


def robust(net, x_adv, x, y, norm: str, eps: float) -> float:
    from advkit.threat import ThreatModel
    with torch.no_grad():
        wrong = net(x_adv).argmax(1) != y
    inside = ThreatModel(norm, eps).contains(x_adv, x, tol=1e-4)
    return float((~(wrong & inside)).float().mean())


def run_advkit(net, x, y, norm, eps, seed, only=None):
    from advkit.attacks import presets
    from advkit.attacks.ensemble import Ensemble
    from advkit.model import Classifier
    clf = Classifier(net, num_classes=10)
    aa = presets.autoattack_standard(f"{norm}:{eps}", 10)
    if only:
        aa = Ensemble(tuple(a for n, a in zip(aa.names, aa.attacks) if n in only), label="autoattack-part")
    start = time.perf_counter()
    res = aa(clf, x, y, generator=torch.Generator().manual_seed(seed), batch_size=len(x))
    return res.x_adv, time.perf_counter() - start


def run_official(net, x, y, norm, eps, seed, only=None):
    import logging

    from pyautoattack import AutoAttack
    logging.getLogger("auto-attack").setLevel(logging.ERROR)
    aa = AutoAttack(net, norm=OFFICIAL_NORM[norm], eps=eps, version="standard", seed=seed, device="cpu")
    aa.verbose = False
    if only:  # keep the standard version's settings (L1: restarts, targets, large-eps schedule)
        aa.attacks_to_run = [a for a in aa.attacks_to_run if a in only]
    start = time.perf_counter()
    x_adv = aa.run_standard_evaluation(x.clone(), y.clone(), batch_size=len(x))[0]
    return x_adv, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cases", nargs="+", default=["digits:l1", "pgdat:l1"])
    ap.add_argument("--eps", type=float, default=None, help="ε for every case (default: EPS per model and norm).")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default=None, help="Comma-separated subset of the cascade, e.g. apgd-ce,apgd-t.")
    ap.add_argument("--out", default=None, help="Append one JSON line per (case, seed).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import warnings
    warnings.filterwarnings("ignore")
    for case in args.cases:
        model, norm = case.split(":")
        eps = args.eps if args.eps is not None else eps_for(model, norm)
        net, x, y = load_case(model, args.n)
        rows = []
        for seed in args.seeds:
            only = args.only.split(",") if args.only else None
            xa, ta = run_advkit(net, x, y, norm, eps, seed, only)
            xo, to = run_official(net, x, y, norm, eps, seed, only)
            row = {"case": case, "only": args.only, "eps": eps, "n": len(x), "seed": seed,
                   "advkit": robust(net, xa, x, y, norm, eps), "official": robust(net, xo, x, y, norm, eps),
                   "advkit_s": round(ta, 1), "official_s": round(to, 1), "time_ratio": round(ta / to, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
        k = len(rows)
        ma, mo = sum(r["advkit"] for r in rows) / k, sum(r["official"] for r in rows) / k
        print(f"# {case} eps={eps} n={len(x)} seeds={args.seeds}: advkit {ma:.3f} official {mo:.3f} "
              f"(advkit − official = {round((ma - mo) * len(x), 1)} samples), time ratio "
              f"{sum(r['time_ratio'] for r in rows) / k:.2f}", flush=True)


if __name__ == "__main__":
    main()
