"""``advkit train``: train a classifier with a robust (or standard) objective and save a model file.

Options override the fields of an optional recipe file (``recipes/*.toml``), which override the
defaults (:mod:`advkit.training.defaults`).  A run that stays at chance level stops with exit code 5
and writes no model; an ε warm-up not shorter than the run is shortened to half the run, with a note.  Under
``torchrun --nproc_per_node N advkit train ...`` the same command trains with DistributedDataParallel.
"""
from __future__ import annotations

import click

from ..atomic import check_writable
from ..errors import ConfigError
from . import render
from .options import DEVICE_HELP, check_device, parse_key_values

_OVERRIDES = [
    ("--arch", str, "Architecture (smallcnn, lenet, preact-resnet18, wrn-28-10)."),
    ("--data", str, "Data REF; its train split is used (mnist5k, digits, fashion-mnist[:ROOT], ...)."),
    ("--method", click.Choice(["standard", "pgd-at", "trades", "fast-at", "mart", "gaussian"]), "Training objective."),
    ("--eps", str, "Perturbation budget for adversarial methods (0.3 or 8/255)."),
    ("--norm", click.Choice(["linf", "l2"]), "Threat norm of the adversarial methods."),
    ("--steps", int, "Inner-maximisation steps (PGD-AT, TRADES, MART; default 3)."),
    ("--step-size", float, "Inner step size (default: 2.5·eps/steps; Fast-AT: 1.25·eps)."),
    ("--beta", float, "TRADES β / MART λ."),
    ("--sigma", float, "Gaussian noise σ in pixel units (method gaussian)."),
    ("--warmup-epochs", float, "Ramp ε linearly from 0 over this many epochs (default 30% of the run, at most 5)."),
    ("--epochs", int, "Number of epochs (default 10)."),
    ("--batch-size", int, "Global batch size (DDP ranks split it; default 64)."),
    ("--optimizer", click.Choice(["sgd", "adam"]), "Optimizer (default adam)."),
    ("--lr", float, "Base learning rate (default: adam 1e-3, sgd 0.05)."),
    ("--weight-decay", float, "Weight decay (default: adam 0, sgd 5e-4)."),
    ("--schedule", click.Choice(["constant", "piecewise", "cyclic", "cosine"]),
     "Learning-rate schedule (default cosine)."),
    ("--lr-warmup-epochs", float, "Linear learning-rate warm-up (default 10% of the run, at most 1 epoch)."),
    ("--seed", int, "Seed of the run (initialisation, data order, attack noise)."),
    ("--val-size", int, "Train images held out for per-epoch validation."),
    ("--train-subset", int, "Train on a fixed random subset of this many images (0 = all)."),
    ("--augment-shift", int, "Random translations of up to this many pixels."),
    ("--keep", click.Choice(["best", "last"]), "Keep the best (robust validation) or the last epoch."),
    ("--mean", str, "Input normalisation built into the model: per-channel mean, e.g. 0.49,0.48,0.45 (digits: 0.305)."),
    ("--std", str, "Input normalisation built into the model: per-channel std (digits: 0.376)."),
    ("--chance-patience", int, "Stop (exit 5, no model) when accuracy has not left chance level after this many "
                               "epochs (default 2; 0 = never)."),
]

EPILOG = """\b
Defaults (measured on 3-epoch runs, docs/training.md; no step cuts, so longer
runs only decay the rate more slowly):
  adam, lr 1e-3, no weight decay, batches of 64, cosine decay after a
  learning-rate warm-up over 10% of the run; adversarial methods: 3 PGD steps
  of 2.5·eps/3, eps ramped up over the first 30% of the run, eps of the data
  set (mnist5k 0.3, digits 0.125, fashion-mnist 0.1, CIFAR-10 8/255). digits
  (1,437 training images): no validation split, batches of 4 at twice the
  rate, input normalisation mean 0.305 / std 0.376 built into the model;
  smallcnn on 8x8 inputs gets padding=1.
\b
Exit codes: 0 model written · 2 bad option or recipe, or a refused --resume ·
5 training stalled at chance level (the message names the likely cause; no
model is written).
"""


def _options(fn):
    for flag, typ, help_ in reversed(_OVERRIDES):
        fn = click.option(flag, type=typ, default=None, help=help_)(fn)
    return fn


@click.command("train", epilog=EPILOG)
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@_options
@click.option("--arch-kwarg", "arch_kwarg", multiple=True, metavar="KEY=VALUE",
              help="Architecture option (repeatable), e.g. padding=1 for 8×8 digits.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the model here (.safetensors).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None, help="Checkpoint every epoch here.")
@click.option("--resume", is_flag=True, help="Continue the run checkpointed in --checkpoint-dir (an error when there "
              "is none, or when its recipe, data contents, model or advkit code differ).")
@click.option("--resume-or-start", is_flag=True, help="Like --resume, but start a new run when --checkpoint-dir holds "
              "no checkpoint yet (jobs that may be preempted).")
@click.option("--name", default=None, help="Model name recorded in the file (default: the file name).")
@click.option("--description", default="", help="Description recorded in the file.")
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(config_file, arch_kwarg, out, checkpoint_dir, resume, resume_or_start, name, description, device, no_progress,
          as_json, **overrides):
    """Train ARCH on DATA with METHOD (standard, pgd-at, trades, fast-at, mart, gaussian)."""
    from .. import distributed
    from ..devices import resolve_device
    from ..training.config import recipe_meta
    from ..training.run import train_from_config

    config, note = _config(config_file, arch_kwarg, overrides)
    meta = recipe_meta(config_file)
    name, description = name or meta.get("name"), description or meta.get("description", "")
    resume = _check_outputs(out, checkpoint_dir, resume, resume_or_start, device)
    distributed.init_from_env()
    device = str(resolve_device(device))
    quiet = as_json or not distributed.is_main()
    if note and distributed.is_main():
        render.err_console.print(f"[yellow]note:[/yellow] {note}")
    rows: list[dict] = []
    with render.progress_bar(enabled=not (no_progress or quiet)) as bar:
        result = train_from_config(config, out=out, checkpoint_dir=checkpoint_dir, resume=resume, progress=bar,
                                   on_epoch=(lambda r: rows.append(r) or _epoch_line(r, quiet)), name=name,
                                   description=description, device=device)
    if not distributed.is_main():
        return
    payload = {"config": config.to_dict(), "metrics": result.metrics, "history": result.fit.history,
               "out": str(result.out) if result.out else None, "seconds": result.seconds}
    if as_json:
        render.print_json(payload)
        return
    render.console.print(render.table("Result", ["metric", "value"], render.metric_rows(dict(sorted(result.metrics.items())))))
    if result.out:
        render.console.print(f"model written to [bold]{result.out}[/bold] (use it as --model {result.out})")


def _config(config_file, arch_kwarg, overrides: dict):
    """The recipe (or the defaults) with the command's options and ``--arch-kwarg``s, its warm-up fitted to
    the run: ``(config, note)`` (the note says what was adjusted, None when nothing was)."""
    from ..threat import parse_eps
    from ..training.config import TrainConfig
    from ..training.defaults import fit_warmup

    if overrides.get("eps") is not None:
        overrides["eps"] = parse_eps(overrides["eps"])
    config = TrainConfig.from_toml(config_file, **overrides)
    if arch_kwarg:
        config = config.replace(arch_kwargs={**config.arch_kwargs, **parse_key_values(arch_kwarg, "--arch-kwarg")})
    return fit_warmup(config)


def _check_outputs(out, checkpoint_dir, resume: bool, resume_or_start: bool, device) -> bool | str:
    """Refuse bad output options before any data is read; the resume mode for ``fit``."""
    if out is not None and not str(out).endswith(".safetensors"):
        raise ConfigError(f"--out must name a .safetensors file, got {out!r}")
    if (resume or resume_or_start) and checkpoint_dir is None:
        flag = "--resume" if resume else "--resume-or-start"
        raise ConfigError(f"{flag} needs --checkpoint-dir (where the run was checkpointed)")
    check_device(device)
    if out is not None:
        check_writable(out)  # before training, not after it
    return "or-start" if resume_or_start else resume


def _epoch_line(r: dict, quiet: bool) -> None:
    if quiet:
        return
    parts = [f"epoch {r['epoch']}", f"loss {r['loss']:.4f}"]
    for key, label in (("train_clean_accuracy", "train clean"), ("train_perturbed_accuracy", "train pert."),
                       ("val_clean_accuracy", "val clean"), ("val_robust_accuracy", "val robust")):
        if r.get(key) is not None:
            parts.append(f"{label} {render.pct(r[key])}")
    parts.append(f"eps {r['eps']:.3g} lr {r['lr']:.3g} {r['seconds']:.1f}s")
    render.err_console.print(" · ".join(parts))



