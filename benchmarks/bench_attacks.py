"""Side-by-side attack benchmark: advkit vs torchattacks, ART, foolbox and the official AutoAttack.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attacks.py --n 500 [--threads 2] [--only fgsm,pgd20]
    .venv/bin/python benchmarks/bench_attacks.py --n 500 --device cuda      # the same table on a GPU

Same model (a zoo SmallCNN on MNIST; AutoAttack on the PGD-AT zoo model when it exists), the same first
``--n`` test images of ``mnist5k``, the same budgets for every library.  Every library calls the model
through one counting wrapper, so "model calls" (per-sample forward passes) are comparable.

Columns: robust accuracy (checked by advkit: misclassified *and* inside the ε-ball ∩ box), seconds,
model calls, ratio to the floor and ratio to the fastest peer.  The floor is the measured time of the
passes the attack's nominal budget needs over the whole batch (FGSM: 1 forward+backward; PGD-20: 20;
APGD-CE: 101; C&W: binary steps × iterations; Square: n_queries forwards; AutoAttack: the passes advkit
counted).  A ratio below 1 means the attack did less work than its nominal budget (early stopping).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn


class Counter(nn.Module):
    """Counts per-sample forward passes of the wrapped model."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += len(x)
        return self.model(x)


@dataclass
class Setup:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    name: str


DEVICE = torch.device("cpu")


def load_setup(ref: str, n: int, weights: str | None = None, user_params: bool = False) -> Setup:
    """The model, its first ``n`` test images.  Parameters are frozen (``requires_grad=False``) for every
    library unless ``user_params``: then the peers get the model as a user loads it (parameters requiring
    gradients, as after ``load_state_dict``); advkit freezes them itself during an attack either way."""
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model
    data = load_data("mnist5k", "test")
    try:
        clf = load_model(ref, weights=weights, device=DEVICE)
    except Exception as e:  # noqa: BLE001 - benchmark fallback
        print(f"# {ref} unavailable ({e}); falling back to zoo:mnist5k-standard", file=sys.stderr)
        ref, clf = "zoo:mnist5k-standard", load_model("zoo:mnist5k-standard", device=DEVICE)
    clf.eval()
    for p in clf.parameters():
        p.requires_grad_(user_params)
    x, y = data.x[:n].contiguous().to(DEVICE), data.y[:n].to(DEVICE)
    floor_seconds(clf, x, y, fb=1, fwd=1, reps=2)  # warm-up: the first library must not pay for cold caches
    return Setup(clf, x, y, ref)


def floor_seconds(model, x, y, fb: int = 0, fwd: int = 0, reps: int = 3) -> float:
    """Measured time of ``fb`` forward+backward and ``fwd`` forward passes over the batch."""
    def one_fb():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(nn.functional.cross_entropy(model(xg), y), xg)  # the input gradient only

    def one_f():
        with torch.no_grad():
            model(x)
    t_fb = min(_timed(one_fb) for _ in range(reps)) if fb else 0.0
    t_f = min(_timed(one_f) for _ in range(reps)) if fwd else 0.0
    return fb * t_fb + fwd * t_f


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn) -> float:
    _sync()
    t = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - t


def robust_accuracy(model, x, x_adv, y, norm, eps) -> float:
    from advkit.threat import ThreatModel
    x_adv = torch.as_tensor(x_adv, dtype=torch.float32).to(x.device).view_as(x)
    with torch.no_grad():
        wrong = model(x_adv).argmax(1) != y
    inside = ThreatModel(norm, eps).contains(x_adv, x, tol=1e-4)
    return float((~(wrong & inside)).float().mean())


# ---------------------------------------------------------------------------- runners per library
def run_advkit(name, model, x, y, eps, cfg):
    from advkit.attacks import apgd, cw, fgsm, pgd, presets, square
    t, e = ("l2", cfg["cw_max_eps"]) if name == "cw-l2" else ("linf", eps)
    atk = {
        "fgsm": lambda: fgsm.FGSM(f"linf:{eps}"),
        "pgd20": lambda: pgd.PGD(f"linf:{eps}", steps=20, step_size=2.5 * eps / 20),
        "apgd-ce": lambda: apgd.APGD(f"linf:{eps}", steps=100),
        "autoattack": lambda: presets.autoattack_standard(f"linf:{eps}", 10),
        "cw-l2": lambda: cw.CarliniWagnerL2(binary_search_steps=cfg["cw_bs"], max_iterations=cfg["cw_steps"]),
        "square": lambda: square.Square(f"linf:{eps}", n_queries=cfg["square_q"]),
    }[name]()
    res = atk(model.model, x, y, generator=torch.Generator().manual_seed(0))  # unwrapped: see bench()
    model.calls = res.model_calls
    cfg["advkit_counts"] = (res.gradient_calls, res.model_calls - res.gradient_calls)
    return res.x_adv, t, e


def run_torchattacks(name, model, x, y, eps, cfg):
    import torchattacks as ta
    atk = {
        "fgsm": lambda: ta.FGSM(model, eps=eps),
        "pgd20": lambda: ta.PGD(model, eps=eps, alpha=2.5 * eps / 20, steps=20, random_start=True),
        "apgd-ce": lambda: ta.APGD(model, eps=eps, steps=100, n_restarts=1, loss="ce", seed=0),
        "autoattack": lambda: _torchattacks_reference_aa(ta, model, eps),
        "cw-l2": lambda: ta.CW(model, c=1.0, kappa=0, steps=cfg["cw_steps"] * cfg["cw_bs"], lr=0.01),
        "square": lambda: ta.Square(model, eps=eps, n_queries=cfg["square_q"], n_restarts=1, p_init=0.8, seed=0),
    }[name]()
    t, e = ("l2", cfg["cw_max_eps"]) if name == "cw-l2" else ("linf", eps)
    return atk(x, y), t, e


def _torchattacks_reference_aa(ta, model, eps):
    """torchattacks' AutoAttack components at the reference budgets (its ``AutoAttack`` class runs 10
    APGD/FAB iterations instead of 100): APGD-CE, APGD-T and FAB-T (9 targets) at 100 steps, Square 5000."""
    kw = dict(eps=eps, norm="Linf", seed=0, n_restarts=1)
    return ta.MultiAttack([ta.APGD(model, loss="ce", steps=100, **kw),
                           ta.APGDT(model, steps=100, n_classes=10, **kw),
                           ta.FAB(model, steps=100, multi_targeted=True, n_classes=10, **kw),
                           ta.Square(model, n_queries=5000, p_init=0.8, **kw)])


def run_official(name, model, x, y, eps, cfg):
    from pyautoattack import AutoAttack
    from pyautoattack.autopgd_base import APGDAttack
    from pyautoattack.square import SquareAttack
    if name == "apgd-ce":
        return APGDAttack(model, n_iter=100, n_restarts=1, eps=eps, norm="Linf", seed=0, device=DEVICE).perturb(x, y), \
            "linf", eps
    if name == "square":
        sq = SquareAttack(model, norm="Linf", eps=eps, n_queries=cfg["square_q"], p_init=0.8, seed=0, device=DEVICE,
                          resc_schedule=False)
        return sq.perturb(x, y), "linf", eps
    if name == "autoattack":
        aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0, device=DEVICE)
        aa.verbose = False
        return aa.run_standard_evaluation(x, y, batch_size=len(x))[0], "linf", eps
    raise KeyError(name)


def _art_classifier(model):
    from art.estimators.classification import PyTorchClassifier
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                             clip_values=(0.0, 1.0), device_type="gpu" if DEVICE.type == "cuda" else "cpu")


def run_art(name, model, x, y, eps, cfg):
    from art.attacks import evasion as ev
    c = _art_classifier(model)
    bs = len(x)
    atk = {
        "fgsm": lambda: ev.FastGradientMethod(c, eps=eps, batch_size=bs),
        "pgd20": lambda: ev.ProjectedGradientDescent(c, eps=eps, eps_step=2.5 * eps / 20, max_iter=20,
                                                     num_random_init=1, batch_size=bs, verbose=False),
        "apgd-ce": lambda: ev.AutoProjectedGradientDescent(c, eps=eps, eps_step=2 * eps, max_iter=100, nb_random_init=1,
                                                           batch_size=bs, loss_type="cross_entropy", verbose=False),
        "cw-l2": lambda: ev.CarliniL2Method(c, binary_search_steps=cfg["cw_bs"], max_iter=cfg["cw_steps"],
                                           learning_rate=0.01, initial_const=1e-3, batch_size=bs, verbose=False),
        "square": lambda: ev.SquareAttack(c, eps=eps, max_iter=cfg["square_q"], p_init=0.8, nb_restarts=1,
                                          batch_size=bs, verbose=False),
    }[name]()
    t, e = ("l2", cfg["cw_max_eps"]) if name == "cw-l2" else ("linf", eps)
    return torch.from_numpy(atk.generate(x.cpu().numpy(), y=y.cpu().numpy())), t, e


def run_foolbox(name, model, x, y, eps, cfg):
    import foolbox as fb
    fm = fb.PyTorchModel(model, bounds=(0, 1), device=DEVICE)
    if name == "cw-l2":
        atk = fb.attacks.L2CarliniWagnerAttack(binary_search_steps=cfg["cw_bs"], steps=cfg["cw_steps"], stepsize=0.01,
                                               initial_const=1e-3)
        _, adv, _ = atk(fm, x, y, epsilons=None)
        return adv, "l2", cfg["cw_max_eps"]
    atk = {"fgsm": lambda: fb.attacks.LinfFastGradientAttack(random_start=False),
           "pgd20": lambda: fb.attacks.LinfPGD(steps=20, rel_stepsize=2.5 / 20, random_start=True)}[name]()
    _, adv, _ = atk(fm, x, y, epsilons=eps)
    return adv, "linf", eps


LIBS = {"advkit": run_advkit, "torchattacks": run_torchattacks, "pyautoattack": run_official, "art": run_art,
        "foolbox": run_foolbox}
COVERAGE = {
    "fgsm": ["advkit", "torchattacks", "art", "foolbox"],
    "pgd20": ["advkit", "torchattacks", "art", "foolbox"],
    "apgd-ce": ["advkit", "torchattacks", "art", "pyautoattack"],
    "autoattack": ["advkit", "pyautoattack", "torchattacks"],
    "cw-l2": ["advkit", "torchattacks", "art", "foolbox"],
    "square": ["advkit", "torchattacks", "pyautoattack", "art"],
}


def nominal_floor(name, model, x, y, cfg) -> float:
    if name == "autoattack":  # no nominal budget: the passes advkit counted (per sample) at this batch size
        if "advkit_counts" not in cfg:
            return float("nan")
        return _per_sample_floor(model, x, y, *cfg["advkit_counts"])
    passes = {"fgsm": (1, 0), "pgd20": (20, 0), "apgd-ce": (101, 0),
              "cw-l2": (cfg["cw_bs"] * cfg["cw_steps"], 0), "square": (0, cfg["square_q"])}[name]
    return floor_seconds(model, x, y, *passes)


def _per_sample_floor(model, x, y, grad_samples, fwd_samples) -> float:
    n = len(x)
    return floor_seconds(model, x, y, fb=1) * grad_samples / n + floor_seconds(model, x, y, fwd=1) * fwd_samples / n


def bench(setup: Setup, name: str, libs, eps: float, cfg: dict) -> list[dict]:
    """advkit gets the model itself, as a user would pass it (a Python-side counter around it would be
    copied into advkit's compiled copies, see ``advkit/attacks/fastpath.py``); its calls come from
    its own per-sample count, which counts exactly what ``Counter`` counts for the peers."""
    rows = []
    counter = Counter(setup.model)
    for lib in libs:
        counter.calls = 0
        torch.manual_seed(0)  # peers draw from the global RNG; advkit ignores it
        _sync()
        t = time.perf_counter()
        try:
            adv, norm, e = LIBS[lib](name, counter, setup.x, setup.y, eps, cfg)
            _sync()
            secs = time.perf_counter() - t
            ra = robust_accuracy(setup.model, setup.x, adv.detach(), setup.y, norm, e)
            rows.append({"attack": name, "lib": lib, "robust_accuracy": ra, "seconds": secs, "model_calls": counter.calls})
        except Exception as exc:  # noqa: BLE001 - a peer failing must not stop the benchmark
            rows.append({"attack": name, "lib": lib, "error": f"{type(exc).__name__}: {exc}"[:200]})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def table(rows) -> str:
    out = ["| attack | library | robust acc | seconds | model calls | × floor | × fastest peer |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['attack']} | {r['lib']} | error: {r['error'][:60]} | | | | |")
            continue
        out.append(f"| {r['attack']} | {r['lib']} | {r['robust_accuracy']:.3f} | {r['seconds']:.2f} | {r['model_calls']:,} "
                   f"| {r.get('x_floor', float('nan')):.2f} | {r.get('x_fastest_peer', float('nan')):.2f} |")
    return "\n".join(out)


def _warm_imports(libs) -> None:
    """Import every library before timing anything (imports are not attack time)."""
    import importlib
    mods = {"advkit": ["advkit.attacks.presets", "advkit.attacks.cw", "advkit.attacks.pgd"],
            "torchattacks": ["torchattacks"], "pyautoattack": ["pyautoattack"],
            "art": ["art.attacks.evasion", "art.estimators.classification"], "foolbox": ["foolbox"]}
    for lib in libs:
        for m in mods.get(lib, []):
            try:
                importlib.import_module(m)
            except ImportError as e:
                print(f"# {lib} unavailable: {e}", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--model", default="zoo:mnist5k-standard")
    ap.add_argument("--aa-model", default="zoo:mnist5k-pgdat")
    ap.add_argument("--aa-weights", default=None, help="weights for a .py-factory --aa-model "
                    "(benchmarks/models: trades_smallcnn.py:build with export_weights.py's file)")
    ap.add_argument("--only", default=",".join(COVERAGE))
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--cw-steps", type=int, default=100)
    ap.add_argument("--cw-bs", type=int, default=5)
    ap.add_argument("--cw-max-eps", type=float, default=2.0)
    ap.add_argument("--cw-n", type=int, default=100, help="C&W runs on the first N of the images (ART's is slow)")
    ap.add_argument("--user-params", action="store_true",
                    help="AutoAttack's model as a user loads it: parameters require gradients (the official FAB's "
                         ".backward() then also computes parameter gradients); default: frozen for every library")
    ap.add_argument("--square-queries", type=int, default=5000)
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (model, data and every library on it)")
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    cfg = {"cw_steps": args.cw_steps, "cw_bs": args.cw_bs, "cw_max_eps": args.cw_max_eps,
           "square_q": args.square_queries}
    libs = set(args.libs.split(","))
    _warm_imports(libs)
    setups = {"main": load_setup(args.model, args.n)}
    rows = []
    for name in args.only.split(","):
        s = setups["main"]
        if name == "autoattack":
            s = setups.setdefault("aa", load_setup(args.aa_model, args.n, args.aa_weights, args.user_params))
        if name == "cw-l2":
            s = Setup(s.model, s.x[:args.cw_n], s.y[:args.cw_n], s.name)
        cfg.pop("advkit_counts", None)
        got = bench(s, name, [lib for lib in COVERAGE[name] if lib in libs], args.eps, cfg)
        floor = nominal_floor(name, s.model, s.x, s.y, cfg)
        ok = [r for r in got if "error" not in r]
        peers = [r["seconds"] for r in ok if r["lib"] != "advkit"]
        for r in ok:
            r["model"], r["floor_seconds"] = s.name, floor
            r["x_floor"] = r["seconds"] / floor if floor == floor and floor > 0 else float("nan")
            r["x_fastest_peer"] = r["seconds"] / min(peers) if peers else float("nan")
        rows += got
    meta = {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "threads": args.threads, "n": args.n, "eps": args.eps,
            "device": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu"}
    print(f"<!-- {json.dumps(meta)} -->")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
