"""``advkit inspect``: pre-flight checks only (no attacks)."""
from __future__ import annotations

import click

from ..errors import EvaluationAborted
from . import render
from .options import (defense_option, model_arg_option, model_placement, parse_model_args, place_model,
                      with_defense)


@click.command("inspect")
@click.option("--model", "model_ref", default=None, help="Model REF (default: the built-in default model).")
@click.option("--weights", default=None, help="Weights file for a factory REF (safetensors or torch.load-able).")
@model_arg_option
@click.option("--trust-pickle", is_flag=True, help="Allow checkpoints that need arbitrary code to load (unsafe).")
@click.option("--data", "data_ref", default=None, help="Data REF (default: the built-in data).")
@click.option("--n", type=click.IntRange(min=1), default=256, show_default=True, help="Number of test samples to check.")
@click.option("--seed", default=0, show_default=True, help="Seed of a randomized --defense.")
@defense_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@model_placement
def inspect(model_ref, weights, model_args, trust_pickle, data_ref, n, seed, defense, as_json, device, mean, std):
    """Run the pre-flight model checks: input range, train mode, probability outputs, randomness."""
    from .. import zoo
    from ..model import resolve_classes
    from ..sources.data import load_data
    from ..sources.models import load_model, model_hash

    clf = load_model(model_ref or f"zoo:{zoo.DEFAULT_MODEL}", weights=weights, trust_pickle=trust_pickle,
                     args=parse_model_args(model_args))
    ref = model_ref or f"zoo:{zoo.DEFAULT_MODEL}"
    own = zoo.entry(ref[4:]) if ref.startswith("zoo:") and data_ref is None else None
    # streamed (image folders, torchvision files): only the first n images are decoded
    data = load_data(data_ref or (own.data if own else zoo.DEFAULT_DATA), split="test", stream=True)
    x, y = data.x[:n], data.y[:n]
    dev = place_model(clf, device, mean, std, data)
    resolve_classes(clf, x.to(dev), y, data.classes)
    clf, chain = with_defense(clf, defense, seed)
    findings = clf.preflight(x, warn=False)
    acc = float((clf.predict(x) == y).float().mean())
    info = {"model": clf.name, "model_hash": model_hash(clf), "data": data.name, "n": len(x),
            "input_shape": list(x.shape[1:]), "bounds": list(clf.bounds), "device": str(dev), "num_classes": clf.num_classes,
            "defense": chain.name if chain is not None else None,
            "clean_accuracy": acc, "findings": [f.to_dict() for f in findings]}
    if as_json:
        render.print_json(info)
    else:
        rows = render.metric_rows({k: v for k, v in info.items() if k != "findings"})
        render.console.print(render.table("Model", ["property", "value"], rows))
        if findings:
            render.console.print(render.table("Findings", ["code", "severity", "message"],
                                              [(f.code, f.severity, f.message) for f in findings]))
        else:
            render.console.print("[green]no pre-flight findings[/green]")
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise EvaluationAborted("; ".join(f.message for f in errors), findings)
