"""``advkit certify``: randomized-smoothing certification of a model on a data set.

Writes ``OUT/samples.csv`` (one row per image, appended and fsync'ed as images finish, so a killed run
resumes where it stopped), ``OUT/certify.json`` (the summary), ``OUT/certified_accuracy.png`` and
``OUT/config.json`` (the settings a resumed run must match).  Under ``torchrun`` each rank certifies
its share (``advkit.distributed.shard_indices``) into ``OUT/parts/rank<R>.csv``; rank 0 gathers and
writes the merged files.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click
import numpy as np
import torch

from .. import distributed as dist
from ..atomic import atomic_path, atomic_write, check_writable
from ..errors import ConfigError
from ..identity import identity_mismatch
from ..model import resolve_classes
from .options import SEED, check_device, model_placement, place_model
from ..smoothing.stage import DEFAULT_RADII, FIELDS, certify_records, summarize
from .options import defense_option, model_arg_option, parse_defense_text, parse_model_args, with_defense
from ..sources.models import model_label

HEADER = ",".join(FIELDS)
_INT_FIELDS = ("index", "label", "prediction", "correct", "samples")
_RESUME_KEYS = ("model", "data", "split", "sigma", "n0", "n", "alpha", "seed", "mode")


def parse_radii(text: str) -> tuple[float, ...]:
    try:
        radii = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--radii must be comma-separated numbers like 0.25,0.5,1, got {text!r}") from None
    if not radii or any(r < 0 for r in radii):
        raise ConfigError(f"--radii needs at least one radius >= 0, got {text!r}")
    return tuple(sorted(set(radii)))


# ------------------------------------------------------------------ CSV records (resumable)
def _format(rec: dict) -> str:
    return ",".join([*(str(int(rec[f])) for f in ("index", "label", "prediction")), repr(float(rec["radius"])),
                     str(int(rec["correct"])), str(int(rec["samples"])), f"{float(rec['seconds']):.6f}"])


def read_rows(path: Path) -> dict[int, dict]:
    """Complete rows of a samples CSV by index; a torn last line (killed mid-write) is ignored."""
    rows: dict[int, dict] = {}
    if not path.exists():
        return rows
    with open(path, newline="") as fh:
        for line in fh.read().split("\n")[1:]:
            parts = line.split(",")
            if len(parts) != len(FIELDS):
                continue
            try:
                rec = {f: (int(v) if f in _INT_FIELDS else float(v)) for f, v in zip(FIELDS, parts)}
            except ValueError:
                continue
            rows[rec["index"]] = rec
    return rows


class RowWriter:
    """Append rows to a CSV with flush + fsync after each; repairs a torn last line first."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size:
            data = path.read_bytes()
            if not data.endswith(b"\n"):
                with open(path, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        new = not path.exists() or path.stat().st_size == 0
        self.fh = open(path, "a", newline="")
        if new:
            self._write(HEADER)

    def _write(self, line: str) -> None:
        self.fh.write(line + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def __call__(self, rec: dict) -> None:
        self._write(_format(rec))

    def close(self) -> None:
        self.fh.close()


def write_rows(path: Path, rows: list[dict]) -> None:
    """Atomically replace ``path`` with ``rows`` sorted by index."""
    lines = [HEADER] + [_format(rec) for rec in sorted(rows, key=lambda r: r["index"])]
    atomic_write(path, "\n".join(lines) + "\n")


def _prior_rows(out: Path) -> dict[int, dict]:
    rows = read_rows(out / "samples.csv")
    for part in sorted((out / "parts").glob("rank*.csv")) if (out / "parts").exists() else []:
        rows.update(read_rows(part))
    return rows


def _checked_rows(out: Path, labels: torch.Tensor) -> dict[int, dict]:
    """The rows already in ``out``, each checked against the data it claims to certify: an index outside
    the data set or a label other than the image's is an edited or foreign file (ConfigError)."""
    rows = _prior_rows(out)
    for i, rec in rows.items():
        if not 0 <= i < len(labels) or rec["label"] != int(labels[i]):
            want = f"label {int(labels[i])}" if 0 <= i < len(labels) else f"an index below {len(labels)}"
            raise ConfigError(f"{out}: expected row {i} of its samples to have {want} (the data's), got label "
                              f"{rec['label']}; the rows were not written by this run: use another --out directory")
    return rows


def _check_config(out: Path, config: dict) -> None:
    """Refuse an ``out`` holding rows of another run (another identity or settings, or rows whose run is
    not recorded); write ``config.json`` for a new run."""
    path = out / "config.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: expected the JSON settings of an earlier certify run, got unreadable "
                              f"content ({e}); use another --out directory") from None
        if not isinstance(old, dict):
            raise ConfigError(f"{path}: expected the JSON settings of an earlier certify run (an object), got a "
                              f"JSON {type(old).__name__}; use another --out directory")
        changed = identity_mismatch(old, config)
        if changed:
            raise ConfigError(f"{out} holds rows of another run: {changed}; adding rows would mix two runs: "
                              "use another --out directory")
        diff = {k: (old.get(k), config[k]) for k in _RESUME_KEYS if old.get(k) != config[k]}
        if diff:
            raise ConfigError(f"{out} holds a run with different settings (saved vs now: {diff}); "
                              "use another --out directory")
    elif _prior_rows(out):
        raise ConfigError(f"{out} holds certify rows but no config.json saying which run wrote them; adding rows "
                          "could mix two runs: use another --out directory")
    elif dist.is_main():
        atomic_write(path, json.dumps(config, indent=2))


def _check_options(*, sigma, n0, n, alpha, skip, n_images, batch_size) -> None:
    for flag, value in (("--n", n), ("--n0", n0), ("--skip", skip), ("--batch-size", batch_size),
                        ("--n-images", 1 if n_images is None else n_images)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"--sigma must be a noise level > 0 in pixel units, got {sigma}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must lie in (0, 1), got {alpha}")


# ------------------------------------------------------------------ outputs
def plot(summary: dict, path: Path) -> None:
    """The report's certified-accuracy figure (with the largest certifiable radius) as a PNG file."""
    from ..report.plots import certified_curve
    png = certified_curve({"certify": summary})
    if png:
        atomic_write(path, png)


def _render(summary: dict, out: Path, as_json: bool) -> None:
    from .render import console, pct, print_json, table
    if as_json:
        print_json({k: v for k, v in summary.items() if k not in ("records", "curve")})
        return
    from ..report import NOT_CERTIFIABLE
    top = summary["max_certifiable_radius"]
    rows = [(f"{r:g}", NOT_CERTIFIABLE if r > top else pct(summary["certified_accuracy"][f"{r:g}"]))
            for r in summary["radii"]]
    console.print(table(f"Certified accuracy ({summary['count']} images, σ={summary['sigma']:g}, "
                        f"{summary['mode']})", ["radius", "certified accuracy"], rows))
    console.print(f"largest certifiable radius at n = {summary['n']}, \u03b1 = {summary['alpha']:g}: "
                  f"{top:.3f} (\u03c3\u00b7\u03a6\u207b\u00b9(\u03b1^(1/n)))")
    acr = summary["average_radius"]
    console.print(f"average certified radius {acr:.4f} · abstain {pct(summary['abstain_rate'])} · "
                  f"{summary['samples_mean']:.0f} samples/image (fixed-n: {summary['samples_fixed']}) · "
                  f"results in {out}")


def _identity(clf, data) -> dict:
    """Content hashes of the weights, of the model's definition and of the data set (all of it: --n-images
    may grow on resume), and the code version (:mod:`advkit.identity`)."""
    from ..identity import code_version, data_digest
    from ..sources.models import model_hash
    # the definition digest (sources/definition.py) load_model set: factory sources, archive or file bytes
    return {"model_hash": model_hash(clf), "model_definition": getattr(clf, "definition", None),
            "data_hash": data_digest(data.x, data.y), "code_version": code_version()}


def _load(model_ref: str, weights, trust_pickle: bool, data_ref: str, split: str, args: dict):
    from ..sources.data import load_data
    from ..sources.models import load_model
    # streamed (image folders, torchvision files): only the selected images are decoded
    return (load_model(model_ref, weights=weights, trust_pickle=trust_pickle, args=args),
            load_data(data_ref, split, stream=True))


@click.command("certify")
@click.option("--model", "model_ref", required=True, help="Model REF (zoo:NAME, FILE.safetensors, file.py:factory).")
@click.option("--weights", default=None, help="Weights file for a factory model REF.")
@model_arg_option
@click.option("--trust-pickle", is_flag=True, help="Allow pickled weights that run code (trusted files only).")
@click.option("--data", "data_ref", required=True, help="Data REF (mnist5k, digits, npz:F, ...).")
@click.option("--split", default="test", show_default=True)
@click.option("--sigma", type=float, required=True, help="Noise level σ in pixel units.")
@click.option("--n0", type=int, default=100, show_default=True, help="Selection samples.")
@click.option("--n", "n", type=int, default=100_000, show_default=True, help="Estimation samples (maximum when sequential).")
@click.option("--alpha", type=float, default=0.001, show_default=True, help="Failure probability α.")
@click.option("--radii", default=",".join(f"{r:g}" for r in DEFAULT_RADII), show_default=True)
@click.option("--sequential", is_flag=True, help="Stop sampling once every radius is decided (same α).")
@click.option("--n-images", type=int, default=None, help="Certify only the first N images.")
@click.option("--skip", type=int, default=1, show_default=True, help="Use every SKIP-th image (Cohen et al. used 20).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Noisy inputs per forward pass.")
@click.option("--no-progress", is_flag=True)
@defense_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@model_placement
def certify(model_ref, weights, model_args, trust_pickle, data_ref, split, sigma, n0, n, alpha, radii, sequential, n_images, skip, seed,
            out, batch_size, no_progress, defense, as_json, device, mean, std):
    """Certify L2 robustness by randomized smoothing (Cohen et al. 2019); resumable."""
    radii = parse_radii(radii)
    args = parse_model_args(model_args)
    _check_options(sigma=sigma, n0=n0, n=n, alpha=alpha, skip=skip, n_images=n_images, batch_size=batch_size)
    check_device(device)
    check_writable(out / "certify.json")  # fail before hours of sampling, not after
    dist.init_from_env()
    mode = "sequential" if sequential else "fixed"
    config = _config(model_label(model_ref, args), data_ref, split, sigma, n0, n, alpha, seed, mode, defense)
    base, data = _load(model_ref, weights, trust_pickle, data_ref, split, args)
    place_model(base, device, mean, std, data)
    clf, _ = with_defense(base, defense, seed)
    indices = np.arange(0, len(data), skip)[:n_images]
    # the classes are the model's outputs; a label outside them is refused, never counted as wrong
    num_classes, _ = resolve_classes(clf, data.x[indices].to(clf.device), data.y[indices])
    clf.check_inputs(data.x[indices], data.y[indices])
    config.update(_identity(base, data))
    _check_config(out, config)
    dist.barrier()
    prior = _checked_rows(out, data.y)
    mine = indices[dist.shard_indices(len(indices)).numpy()]
    todo = torch.tensor([int(i) for i in mine if int(i) not in prior], dtype=torch.long)
    from .render import progress_bar
    name = "samples.csv" if not dist.is_distributed() else f"parts/rank{dist.rank()}.csv"
    writer = RowWriter(out / name)
    try:
        with progress_bar(not no_progress and dist.is_main()) as bar:
            new = certify_records(clf, data.x[todo], data.y[todo], todo.tolist(), sigma=sigma, n0=n0, n=n,
                                  alpha=alpha, radii=radii, batch_size=batch_size, seed=seed, mode=mode,
                                  num_classes=num_classes, progress=bar, on_record=writer)
    finally:
        writer.close()
    dist.barrier()
    gathered = dist.gather_records({f: np.asarray([r[f] for r in new]) for f in FIELDS} if new
                                   else {f: np.zeros(0) for f in FIELDS})
    if not dist.is_main():
        return
    _finish(out, prior, gathered, indices, config, radii, as_json)


def _config(model_ref, data_ref, split, sigma, n0, n, alpha, seed, mode, defense) -> dict:
    """The run's settings as config.json records them (a resume must match them)."""
    # the base classifier is the model behind the defense; the chain is part of the run's identity
    return {"model": model_ref, "data": data_ref, "split": split, "sigma": sigma, "n0": n0, "n": n,
            "alpha": alpha, "seed": seed, "mode": mode,
            "defense": parse_defense_text(defense) if defense is not None else None}


def _finish(out: Path, prior: dict, gathered: dict, indices, config: dict, radii, as_json: bool) -> None:
    rows = dict(prior)
    for j in range(len(gathered["index"])):
        rec = {f: gathered[f][j].item() for f in FIELDS}
        rows[int(rec["index"])] = rec
    write_rows(out / "samples.csv", list(rows.values()))
    if (out / "parts").exists():
        for part in (out / "parts").glob("rank*.csv"):
            part.unlink()
        if not any((out / "parts").iterdir()):
            (out / "parts").rmdir()
    wanted = set(int(i) for i in indices)
    recs = [r for i, r in sorted(rows.items()) if i in wanted]
    summary = summarize(recs, radii=radii, sigma=config["sigma"], n0=config["n0"], n=config["n"],
                        alpha=config["alpha"], mode=config["mode"])
    body = {**config, **{k: v for k, v in summary.items() if k != "records"}}
    atomic_write(out / "certify.json", json.dumps(body, indent=2))
    plot(summary, out / "certified_accuracy.png")
    _render(summary, out, as_json)
