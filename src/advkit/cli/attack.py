"""``advkit attack NAME``: run one registered attack on a model and data, print its numbers.

Prints robust accuracy, attack success rate among initially correct samples, median perturbation
norm of the successful adversarial examples, time and model calls; ``--save F.npz`` writes the
per-sample arrays (``x_adv``, ``success``, ``distance``, ``y``, ``predictions``, ``targets``) in input order.
The attack draws from per-sample random streams keyed by (``--seed``, ``THREAT/NAME``, the sample position),
the streams ``evaluate`` gives AutoAttack's members: ``advkit attack autoattack`` and evaluate's AutoAttack row
agree sample by sample on a deterministic model, at any batch size.
"""
from __future__ import annotations

import time

import click
import numpy as np
import torch

from ..atomic import atomic_path, check_writable
from ..errors import ConfigError
from ..model import resolve_classes
from ..progress import NULL, rescaled
from ..rng import SampleStreams, take
from ..threat import ThreatModel, check_budget
from . import render
from .options import (SEED, defense_option, model_arg_option, model_placement, parse_key_values, parse_model_args,
                      place_model, with_defense)



def random_targets(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random target class different from ``y`` for every sample."""
    if num_classes < 2:
        raise ConfigError(f"targeted attacks need at least 2 classes, got {num_classes}")
    shift = torch.randint(1, num_classes, (len(y),), generator=generator)
    return (y + shift) % num_classes


def sample_streams(seed: int, threat, name: str, device=None):
    """The random streams of ``advkit attack NAME``: per batch (a slice of the samples), a fresh family of
    per-sample streams keyed by (seed, ``THREAT/NAME``, sample position), as evaluate makes per batch, so that
    results do not depend on the batch size and AutoAttack's match evaluate's row (docs/protocols.md)."""
    return lambda sl, n: SampleStreams.for_samples(seed, f"{threat}/{name}", np.arange(n)[sl], device=device)


def run_attack(attack, clf, x, y, *, targets=None, generator=None, batch_size: int = 256, progress=None) -> dict:
    """Run ``attack`` batch by batch (driving ``progress``) and return per-sample arrays and totals;
    ``generator`` is one generator or streams for all batches, or ``f(slice, n)`` giving each batch's."""
    parts, calls, grads = [], 0, 0
    start = time.perf_counter()
    for i in range(0, len(x), batch_size):
        sl = slice(i, i + batch_size)
        inner = rescaled(progress, attack.name, i, len(x[sl]), len(x)) if progress is not None else NULL
        gen = generator(sl, len(x)) if callable(generator) else take(generator, sl)
        res = attack(clf, x[sl], y[sl], targets=None if targets is None else targets[sl], generator=gen, progress=inner)
        parts.append(res)
        calls, grads = calls + res.model_calls, grads + res.gradient_calls
        if progress is not None:
            progress(attack.name, min(i + batch_size, len(x)), len(x))
    cat = lambda key: torch.cat([getattr(p, key) for p in parts]) if parts else torch.zeros(0)  # noqa: E731
    return {"x_adv": cat("x_adv"), "success": cat("success").bool(), "distance": cat("distance"),
            "predictions": cat("predictions").long(), "seconds": time.perf_counter() - start,
            "model_calls": calls, "gradient_calls": grads, "config": parts[0].config if parts else attack.describe()}


def summarize(out: dict, y: torch.Tensor, clean_pred: torch.Tensor, targets) -> dict:
    correct = clean_pred == y
    success = out["success"]
    robust = (out["predictions"] == y) if targets is not None else ~success
    broken = success & correct
    dist = out["distance"][broken]
    return {
        "n": int(len(y)),
        "clean_accuracy": float(correct.float().mean()) if len(y) else float("nan"),
        "robust_accuracy": float(robust.float().mean()) if len(y) else float("nan"),
        "success_rate": float(success[correct].float().mean()) if correct.any() else None,
        "median_distance": float(dist.median()) if len(dist) else None,
        "seconds": out["seconds"], "model_calls": out["model_calls"], "gradient_calls": out["gradient_calls"],
    }


@click.command("attack")
@click.argument("name")
@click.option("--model", "model_ref", required=True, help="Model REF: zoo:NAME, FILE.safetensors, file.py:factory, ...")
@click.option("--weights", default=None, help="Weights file for a factory model REF.")
@model_arg_option
@click.option("--data", "data_ref", required=True, help="Data REF: mnist5k, digits, fashion-mnist, npz:F, ...")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]))
@click.option("--threat", "threat_text", default=None,
              help="Threat model, e.g. linf:0.3 or l2:1.5; linf / l2 alone or omitted: the profile's standard budget.")
@click.option("--profile", default=None, help="Domain profile for the default ε (default: the zoo model's or data's).")
@click.option("--targeted", is_flag=True, help="Random target != y per sample (drawn from --seed).")
@click.option("--n", "n", type=click.IntRange(min=1), default=None, help="Use the first N samples.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Override an attack parameter (repeatable).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False), default=None, help="Write per-sample arrays to F.npz.")
@click.option("--force-eps", is_flag=True, help="Accept an L∞ ε as large as the input range.")
@defense_option
@click.option("--naive", is_flag=True, help="With --defense: attack through autograd, without BPDA or EOT "
                                          "(default: adaptive, BPDA through rounding steps, EOT through random ones).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@model_placement
def attack(name, model_ref, weights, model_args, data_ref, split, threat_text, profile, targeted, n, batch_size, seed,
           params, save_path, force_eps, defense, naive, as_json, device, mean, std):
    """Run the registered attack NAME (see `advkit list attacks`) on a model and data."""
    from ..attacks import registry
    from ..sources.data import load_data

    threat = resolve_threat(threat_text, profile, model_ref, data_ref)
    overrides = parse_key_values(params, "--param")
    registry.get(name)  # an unknown name fails before any loading
    if save_path:
        check_writable(save_path)  # fail before the attack, not after it
    # image folders and torchvision files are read per image: only the --n selected ones are decoded
    ds = load_data(data_ref, split, stream=True).subset(n)
    clf, model_name = _model(model_ref, weights, model_args, ds, device, mean, std)
    check_budget(threat, clf.bounds, force=force_eps)
    x, y = (ds.x if not ds.streamed else ds.x.materialize()), ds.y
    if naive and defense is None:
        raise ConfigError("--naive needs --defense CHAIN (it says how to attack the defense)")
    num_classes, _ = resolve_classes(clf, x, y, ds.classes)
    clf.check_inputs(x, y)
    atk = registry.build(name, threat, num_classes=num_classes, **overrides)
    clf, chain = with_defense(clf, defense, seed, adaptive=not naive)
    atk = _eot_for(atk, chain, naive, overrides)
    targets = random_targets(y, num_classes, torch.Generator().manual_seed(seed)) if targeted else None
    clean_pred = clf.predict(x, batch_size=batch_size)
    with render.progress_bar(enabled=not as_json) as progress:
        out = run_attack(atk, clf, x, y, targets=targets, generator=sample_streams(seed, threat, name, clf.device),
                         batch_size=batch_size, progress=progress)
    summary = {"attack": name, "model": model_name, "data": data_ref, "threat": str(threat), "targeted": targeted,
               "seed": seed, **summarize(out, y, clean_pred, targets), "config": out["config"]}
    if chain is not None:
        summary["defense"] = {"chain": chain.name, "mode": "naive" if naive else "adaptive",
                              "method": "autograd, no EOT" if naive else chain.describe_adaptive(
                                  getattr(atk, "eot", 1))}
    if save_path:
        _save(save_path, out, y, targets)
        summary["saved"] = str(save_path)
    _render(summary, as_json)


def _model(model_ref, weights, model_args, ds, device, mean, std):
    """The model, placed (``--device``, ``--mean``/``--std``), and its name: the REF with its factory arguments."""
    from ..sources.models import load_model
    clf = load_model(model_ref, weights=weights, args=parse_model_args(model_args))
    place_model(clf, device, mean, std, ds)
    return clf, clf.name


def _eot_for(atk, chain, naive: bool, params: dict):
    """Adaptive attacks on a randomized defense average gradients over ``EOT_DRAWS`` draws (unless --param eot=K)."""
    from ..attacks.adaptive import supports_eot, with_eot
    if chain is None or naive or not chain.randomized or "eot" in params or not supports_eot(atk):
        return atk
    return with_eot(atk, EOT_DRAWS)


EOT_DRAWS = 20  # AutoAttack rand's EOT (Croce & Hein 2020)


def resolve_threat(text: str | None, profile: str | None, model_ref: str, data_ref: str) -> ThreatModel:
    """``--threat`` as given, a bare norm or nothing → the profile's standard budget (``--profile``, else the
    zoo model's or the data REF's profile)."""
    from ..errors import ConfigError
    from ..profiles import NONE, default_profile, load_profile

    name = profile or default_profile(model_ref, data_ref)
    prof = load_profile(name) if name and name.lower() != NONE else None
    if prof is None:
        if text is None:
            raise ConfigError("--threat is required when no profile applies (this model and data have none); "
                              "e.g. --threat linf:8/255, or --profile cifar10")
        return ThreatModel.parse(text)
    return prof.resolve_threat(text) if text is not None else prof.default_threats()[0]


def _save(path: str, out: dict, y: torch.Tensor, targets) -> None:
    arrays = {"x_adv": out["x_adv"].cpu().numpy(), "success": out["success"].cpu().numpy(),
              "distance": out["distance"].cpu().numpy(), "y": y.cpu().numpy(),
              "predictions": out["predictions"].cpu().numpy()}
    if targets is not None:
        arrays["targets"] = targets.cpu().numpy()
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _render(s: dict, as_json: bool) -> None:
    if as_json:
        render.print_json(s)
        return
    rows = [("clean accuracy", render.pct(s["clean_accuracy"])), ("robust accuracy", render.pct(s["robust_accuracy"])),
            ("attack success rate (of correct)", render.pct(s["success_rate"])),
            ("median perturbation norm", render.fmt(s["median_distance"])),
            ("time (s)", f"{s['seconds']:.2f}"), ("model calls", s["model_calls"]), ("gradient calls", s["gradient_calls"])]
    label = s.get("config", {}).get("name") or s["attack"]  # the attack's own name: variants say what they are
    title = f"{label} · {s['threat']}" + (" · targeted" if s["targeted"] else "")
    t = render.table(title, ["metric", "value"], rows)
    t.caption = f"model {s['model']} · data {s['data']} (n={s['n']}) · seed {s['seed']}"
    if s.get("defense"):
        d = s["defense"]
        t.caption += f" · defense {d['chain']} attacked {d['mode']} ({d['method']})"
    render.console.print(t)
    if s.get("saved"):
        render.console.print(f"saved per-sample arrays to {s['saved']}")
