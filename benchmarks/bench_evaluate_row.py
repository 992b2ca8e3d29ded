"""evaluate's AutoAttack row vs ``advkit attack autoattack`` vs the official code, same model and images.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_evaluate_row.py --n 200 --seeds 0 \\
        --cases digits:linf --out evaluate_row.jsonl

Per (case, seed), on the first ``--n`` test images (models and ε as in ``bench_autoattack_norms.py``; a case
``MODEL:rand`` is L∞ behind ``noise:0.1``, AutoAttack rand on both sides):

* *evaluate*: ``advkit.evaluate`` with the default stages (FGSM, PGD-20 × 5, AutoAttack standard at the
  reference budgets; curve and checks off), ``seed``; its AutoAttack row (``attacks.autoattack``) and the
  per-sample robust set from ``samples`` (clean-correct and no AutoAttack member succeeded);
* *attack*: what ``advkit attack autoattack --seed SEED`` runs (the registry's preset, the CLI's
  ``run_attack`` and its per-sample streams);
* *official*: ``pyautoattack``'s ``AutoAttack(model, norm, eps, version='standard', seed=seed)`` (``'rand'``
  on the noisy model for the rand cases).

Printed: robust counts of the three, samples where evaluate and attack disagree, the difference to the
official count, and the worst case over every attack (evaluate's headline).  It also counts the cost of
confirming the fast copies' successes on the module (``Oracle.confirm``): extra batched passes and
re-run rows against all passes of the run (counts, not times); ``--confirm-costs --n 40`` counts them per
attack (the table in docs/protocols.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_autoattack_norms import OFFICIAL_NORM, eps_for, load_case  # noqa: E402


class Counts:
    """Totals over every Oracle of the run: batched passes, rows, and what ``confirm`` added."""

    def __init__(self):
        from advkit.attacks.oracle import Oracle
        self.passes = self.confirm_passes = self.confirm_rows = 0
        tick, confirm = Oracle._tick, Oracle.confirm
        counts = self

        def counted_tick(o):
            counts.passes += 1
            tick(o)

        def counted_confirm(o, z, success, decide):
            before = (o.confirm_passes, o.confirmed_rows)
            out = confirm(o, z, success, decide)
            counts.confirm_passes += o.confirm_passes - before[0]
            counts.confirm_rows += o.confirmed_rows - before[1]
            return out
        Oracle._tick, Oracle.confirm = counted_tick, counted_confirm

    def take(self) -> dict:
        out = {"passes": self.passes, "confirm_passes": self.confirm_passes, "confirm_rows": self.confirm_rows}
        self.passes = self.confirm_passes = self.confirm_rows = 0
        return out


RAND_SIGMA = 0.1  # the rand cases: Gaussian noise σ in front of the model, AutoAttack rand
RAND_DEFENSE = f"noise:{RAND_SIGMA}"


def parse_case(case: str) -> tuple[str, str, float, str | None]:
    """``MODEL:NORM`` (or ``MODEL:rand``) → (model, norm, ε, defense chain or None)."""
    model, norm = case.split(":")
    if norm == "rand":
        return model, "linf", eps_for(model, "linf"), RAND_DEFENSE
    return model, norm, eps_for(model, norm), None


def run_evaluate(clf, x, y, threat: str, seed: int, defense: str | None) -> tuple[np.ndarray, float, float]:
    from advkit.evaluation import evaluate, spec_from_dict
    spec = {"n": len(y), "seed": seed, "threats": [threat], "profile": "none",
            "stages": {"curve": {"enabled": False}, "checks": {"enabled": False}}}
    if defense:
        spec["defense"] = {"chain": defense}
    res = evaluate(spec_from_dict(spec), model=clf, data=(x, y))
    t, s = res.result["threats"][threat], res.samples
    aa = t["attacks"]["autoattack"]
    robust = s["clean_correct"].astype(bool)
    for name in aa["components"]:
        robust &= ~s[f"{threat}/{name}/success"].astype(bool)
    return robust, aa["robust_accuracy"], t["robust_accuracy"]


def run_attack_cli(clf, x, y, threat: str, seed: int, defense: str | None) -> np.ndarray:
    from advkit.attacks import registry
    from advkit.cli.attack import run_attack, sample_streams
    from advkit.cli.options import with_defense
    name = "autoattack-rand" if defense else "autoattack"
    atk = registry.build(name, threat, num_classes=10)
    clf, _ = with_defense(clf, defense, seed, adaptive=True)
    streams = sample_streams(seed, threat, name, clf.device)
    return ~run_attack(atk, clf, x, y, generator=streams, batch_size=256)["success"].numpy()


class Noise(torch.nn.Module):
    """The official side's ``RAND_SIGMA`` Gaussian noise (from the global RNG, which the official code
    seeds), clipped to [0, 1]."""

    def forward(self, x):
        return (x + RAND_SIGMA * torch.randn_like(x)).clamp(0, 1)


def run_official(net, x, y, norm: str, eps: float, seed: int, rand: bool) -> np.ndarray:
    import logging

    from pyautoattack import AutoAttack
    logging.getLogger("auto-attack").setLevel(logging.ERROR)
    if rand:
        net = torch.nn.Sequential(Noise(), net).eval()
    aa = AutoAttack(net, norm=OFFICIAL_NORM[norm], eps=eps, version="rand" if rand else "standard", seed=seed,
                    device="cpu")
    aa.verbose = False
    # the official decision: y_adv is the clean prediction, replaced by the draw that fooled the model (rand:
    # one noisy forward each); re-running a randomized model on x_adv would draw again
    _, y_adv = aa.run_standard_evaluation(x.clone(), y.clone(), batch_size=len(x))
    return (y_adv == y).numpy()


def confirm_costs(n: int, counts: Counts) -> None:
    """Per attack on the digits CNN (L∞ 0.1, first ``n`` test images, seed 0): passes, the extra passes and
    rows ``Oracle.confirm`` added, model calls (rows)."""
    from advkit.attacks import FGSM, PGD, presets
    from advkit.attacks.restarts import BestOf
    from advkit.model import Classifier
    net, x, y = load_case("digits", n)
    clf = Classifier(net, num_classes=10)
    attacks = [("fgsm", FGSM("linf:0.1")), ("pgd-20x5", BestOf(PGD("linf:0.1", steps=20), restarts=5))]
    for name, attack in attacks + presets.components("linf:0.1", "standard", 10):
        counts.take()
        r = attack(clf, x, y, generator=torch.Generator().manual_seed(0))
        print(json.dumps({"attack": name, **counts.take(), "model_calls": r.model_calls}), flush=True)


MODEL_NAMES = {"digits": "digits CNN", "standard": "`zoo:mnist5k-standard`", "pgdat": "`zoo:mnist5k-pgdat`",
               "trades": "`zoo:mnist5k-trades`"}


def table(path: str) -> None:
    """A Markdown table of the JSON lines in ``path``: one row per case, the seeds' counts side by side."""
    rows: dict[str, list[dict]] = {}
    for line in open(path):
        rec = json.loads(line)
        rows.setdefault(rec["case"], []).append(rec)
    print("| model | threat | images | seeds | evaluate's AutoAttack row | `advkit attack` | differ | official "
          "| row − official (mean) | worst case |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case, recs in rows.items():
        model, norm, eps, defense = parse_case(case)
        threat = f"{norm.upper().replace('LINF', 'L∞')} {eps}" + (f" + {defense} (rand)" if defense else "")
        col = lambda k: ", ".join("–" if r[k] is None else str(r[k]) for r in recs)  # noqa: E731
        diffs = [r["evaluate_row"] - r["official"] for r in recs if r["official"] is not None]
        mean = f"{sum(diffs) / len(diffs):+.2f}" if diffs else "–"
        worst = ", ".join(str(round(r["worst_case"] * r["n"])) for r in recs)
        print(f"| {MODEL_NAMES[model]} | {threat} | {recs[0]['n']} | {col('seed')} | {col('evaluate_row')} "
              f"| {col('attack')} | {col('differ')} | {col('official')} | {mean} | {worst} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cases", nargs="+", default=["digits:linf"])
    ap.add_argument("--no-official", action="store_true")
    ap.add_argument("--no-attack", action="store_true", help="Skip the `advkit attack autoattack` run.")
    ap.add_argument("--confirm-costs", action="store_true", help="Only count Oracle.confirm's cost per attack.")
    ap.add_argument("--out", default=None, help="Append one JSON line per (case, seed).")
    ap.add_argument("--table", default=None, help="Only print the Markdown table of a --out file.")
    args = ap.parse_args()
    if args.table:
        return table(args.table)
    torch.set_num_threads(1)
    import warnings
    warnings.filterwarnings("ignore")
    from advkit.model import Classifier
    counts = Counts()
    if args.confirm_costs:
        return confirm_costs(args.n, counts)
    for case in args.cases:
        model, norm, eps, defense = parse_case(case)
        threat = f"{norm}:{eps}"
        net, x, y = load_case(model, args.n)
        clf = Classifier(net, num_classes=10)
        for seed in args.seeds:
            counts.take()
            ev, row, worst = run_evaluate(clf, x, y, threat, seed, defense)
            cost = counts.take()
            cli = None if args.no_attack else run_attack_cli(clf, x, y, threat, seed, defense)
            off = None if args.no_official else run_official(net, x, y, norm, eps, seed, defense is not None)
            rec = {"case": case, "seed": seed, "n": len(y), "evaluate_row": int(ev.sum()),
                   "attack": None if cli is None else int(cli.sum()),
                   "differ": None if cli is None else int((ev != cli).sum()),
                   "official": None if off is None else int(off.sum()),
                   "row_accuracy": row, "worst_case": worst, "evaluate_counts": cost}
            print(json.dumps(rec), flush=True)
            if args.out:
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
