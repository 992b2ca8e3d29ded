"""Shared helpers of the evaluation-pipeline tests: model/data files for the CLI and tiny specs."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

FACTORY = '''
from safetensors.torch import load_file
from torch import nn
from advkit.model import Classifier

WEIGHTS = {weights!r}


def arch():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))


def build():
    net = arch()
    net.load_state_dict(load_file(WEIGHTS))
    return Classifier(net, num_classes=10, input_shape=(1, 8, 8), name="digits-cnn")


def probs():
    return Classifier(nn.Sequential(build().net, nn.Softmax(dim=1)), num_classes=10, name="digits-softmax")
'''

# Small budgets: the whole pipeline on 40 samples in a few seconds.
TINY_SPEC = """
n = {n}
seed = 0
batch_size = {batch_size}
threats = ["linf:0.1"]
[stages.pgd]
steps = 5
restarts = 2
[stages.autoattack]
steps = 10
square_queries = 40
n_targets = 2
[stages.curve]
points = 3
steps = 5
[stages.checks]
gradient_samples = 20
unbounded_samples = 10
unbounded_steps = 10
blackbox_queries = 40
"""


def write_inputs(tmp_path: Path, digits_model, n: int = 200) -> dict:
    """Weights, factory file and npz data for the digits CNN; returns the REFs for ``advkit evaluate``."""
    clf, x, y = digits_model
    weights = tmp_path / "digits.safetensors"
    save_file({k: v.contiguous() for k, v in clf.net.state_dict().items()}, str(weights))
    factory = tmp_path / "digits_factory.py"
    factory.write_text(FACTORY.format(weights=str(weights)))
    data = tmp_path / "digits_test.npz"
    np.savez(data, x=x[:n].numpy(), y=y[:n].numpy())
    return {"model": f"{factory}:build", "probs": f"{factory}:probs", "arch": f"{factory}:arch",
            "weights": str(weights), "data": f"npz:{data}"}


def write_spec(path: Path, refs: dict, *, n: int = 40, batch_size: int = 20, extra: str = "") -> Path:
    head = f'model = {json.dumps(refs["model"])}\ndata = {json.dumps(refs["data"])}\n'
    path.write_text(head + textwrap.dedent(TINY_SPEC.format(n=n, batch_size=batch_size)) + extra)
    return path


def comparable(result: dict) -> dict:
    """A result without the fields that legitimately differ between two runs (ids, times, paths)."""
    drop = {"run_id", "created", "timings", "output", "wall_seconds", "resumed_batches", "gates", "environment",
            "spec"}
    out = {k: v for k, v in result.items() if k not in drop}
    return json.loads(json.dumps(out, default=str), object_hook=_strip_seconds)


def _strip_seconds(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds",)}
