"""Hostile models and files for ``test_hostile_models.py`` (issue 24), generated in a second.

* ``flaky.py``: an 8×8 linear model that misbehaves from its k-th forward call on: NaN or inf logits
  (for all samples or some), an exception, ``sys.exit(0|1)``, the wrong number of logits or rows, a
  tuple, fp16 overflow; plus factories that call ``sys.exit`` while loading;
* ``defn.py`` + ``helper.py``: a factory whose definition lives partly in a sibling file (run identity);
* advkit model files with malformed or absurd metadata (bounds ``[0]``, a mean of strings, WRN-1000-40…);
* npz files with labels of 10⁹ and 2⁶⁴−1, non-UTF-8 spec and training-config files;
* history databases: one SQLite file that is not advkit's, and a copy of a finished run's database
  whose stored result JSON is corrupt.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import torch

FLAKY_PY = '''
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _lin():
    """Nearest class mean as a linear layer (z_k = mu_k . x - |mu_k|^2 / 2): ~90% on the digits."""
    mu = torch.from_numpy(np.load(Path(__file__).with_name("centroids.npy")))
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        net[1].weight.copy_(mu * 4)
        net[1].bias.copy_(-(mu * mu).sum(1) * 2)
    return net


CALLS = [0]  # a global counter: not scriptable, so attacks never use a compiled copy of the model


class Flaky(nn.Module):
    """The linear model, misbehaving (``mode``) from its ``after``-th forward call on."""

    def __init__(self, mode, after, rows="all"):
        super().__init__()
        self.net = _lin()
        self.mode, self.after, self.rows = mode, after, rows

    def forward(self, x):
        CALLS[0] += 1
        z = self.net(x)
        if CALLS[0] <= self.after:
            return z
        if self.mode in ("nan", "inf"):
            bad = float("nan") if self.mode == "nan" else float("inf")
            mask = torch.ones(len(z), dtype=torch.bool) if self.rows == "all" else x.flatten(1)[:, 10] > 0.5
            return torch.where(mask[:, None], torch.full_like(z, bad), z)
        if self.mode == "fp16":  # an fp16 model whose activations overflow
            return (z.half() * 60000).float() - (z.half() * 60000).float()
        if self.mode == "raise":
            raise RuntimeError("flaky model failed")
        if self.mode == "keyerror":
            raise KeyError("layer7")
        if self.mode == "exit0":
            sys.exit(0)
        if self.mode == "exit1":
            sys.exit(1)
        if self.mode == "width":
            return z[:, :5]
        if self.mode == "rows":
            return z[:-1]
        if self.mode == "tuple":
            return z, x
        raise ValueError(self.mode)


def _make(mode, after, rows="all"):
    return lambda: Flaky(mode, after, rows)


def good():
    return _lin()


def exit_in_factory():
    sys.exit(0)


nan_all = _make("nan", 1)
nan_some = _make("nan", 1, "some")
inf_some = _make("inf", 1, "some")
fp16 = _make("fp16", 1)
nan_after_2 = _make("nan", 2)
nan_after_6 = _make("nan", 6)
nan_after_7 = _make("nan", 7)
inf_after_2 = _make("inf", 2)
raise_after_1 = _make("raise", 1)
raise_after_2 = _make("raise", 2)
raise_after_6 = _make("raise", 6)
raise_after_7 = _make("raise", 7)
keyerror_after_2 = _make("keyerror", 2)
exit0_after_1 = _make("exit0", 1)
exit0_after_2 = _make("exit0", 2)
exit0_after_7 = _make("exit0", 7)
exit1_after_2 = _make("exit1", 2)
exit1_after_7 = _make("exit1", 7)
width_after_1 = _make("width", 1)
width_after_2 = _make("width", 2)
width_after_7 = _make("width", 7)
rows_after_2 = _make("rows", 2)
tuple_after_7 = _make("tuple", 7)
'''

DEFN_PY = '''
from helper import make


def net():
    return make()
'''

HELPER_PY = '''
import torch
from torch import nn


def make():
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(10, 64, generator=g) * 0.3)
    return net
'''

FAST_SPEC = """
model = {model}
data = {data}
n = 20
seed = 0
batch_size = 20
threats = ["linf:0.1"]
[stages.pgd]
steps = 2
restarts = 1
[stages.autoattack]
version = "off"
[stages.curve]
enabled = false
[stages.checks]
enabled = false
"""

#: metadata edits of a valid advkit model file: name → {key: raw metadata text}
BAD_METADATA = {
    "bounds-one": {"bounds": "[0]"},
    "bounds-text": {"bounds": '["a", "b"]'},
    "bounds-reversed": {"bounds": "[1.0, 0.0]"},
    "mean-text": {"mean": '["x"]'},
    "mean-wrong-length": {"mean": "[0.1, 0.2]"},
    "std-zero": {"std": "[0.0]"},
    "shape-null": {"input_shape": "null"},
    "shape-short": {"input_shape": "[1, 8]"},
    "shape-huge": {"input_shape": "[1, 100000, 100000]"},
    "kwargs-bad-type": {"arch_kwargs": '{"padding": "x"}'},
    "kwargs-unknown": {"arch_kwargs": '{"padding": 1, "colour": 3}'},
    "kwargs-list": {"arch_kwargs": "[1, 2]"},
    "classes-huge": {"num_classes": "1000000000"},
    "wrn-1000-40": {"arch": "wrn-1000-40", "arch_kwargs": "{}"},
    "wrn-huge-width": {"arch": "wrn-28-10", "arch_kwargs": '{"widen_factor": 100000}'},
}


def _digits(n: int = 40):
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[-n:] * 255 / 16).round().astype(np.uint8), d.target[-n:].astype(np.int64)


def _model_files(root: Path) -> None:
    """A valid advkit model file (smallcnn on 8×8) and one copy per BAD_METADATA entry."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from advkit.zoo.architectures import build
    from advkit.zoo.checkpoint import save_model

    net = build("smallcnn", num_classes=10, in_channels=1, input_size=8, padding=1)
    save_model(root / "ok.safetensors", net, arch="smallcnn", arch_kwargs={"padding": 1}, input_shape=(1, 8, 8),
               num_classes=10)
    with safe_open(str(root / "ok.safetensors"), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(root / "ok.safetensors"))
    for name, edit in BAD_METADATA.items():
        save_file(tensors, str(root / f"meta-{name}.safetensors"), metadata={**meta, **edit})


def _databases(root: Path, finished_db: str) -> None:
    with sqlite3.connect(root / "foreign.db") as con:  # somebody else's SQLite file
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        con.execute("INSERT INTO notes (text) VALUES ('keep me')")
    con.close()
    for name, text in (("badrow.db", '{"schema_version": 1, "clean": '), ("listrow.db", "[1, 2, 3]")):
        shutil.copy(finished_db, root / name)
        with sqlite3.connect(root / name) as con:
            con.execute("PRAGMA journal_mode = DELETE")
            con.execute("UPDATE runs SET result = ?", (text,))
        con.close()


def build_models(root: Path, finished_db: str) -> dict:
    """Write every input above under ``root``; returns {placeholder: path text} for the case table."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "flaky.py").write_text(FLAKY_PY)
    (root / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (root / "defn.py").write_text(DEFN_PY)
    (root / "helper.py").write_text(HELPER_PY)
    x, y = _digits()
    np.savez(root / "good.npz", x=x, y=y)
    from sklearn.datasets import load_digits
    d = load_digits()
    train_x, train_y = d.data[:1000] / 16, d.target[:1000]
    np.save(root / "centroids.npy", np.stack([train_x[train_y == k].mean(0) for k in range(10)]).astype(np.float32))
    for name, value, dtype in (("label1e9", 10 ** 9, np.int64), ("labelmax", 2 ** 64 - 1, np.uint64)):
        bad = y.astype(dtype)
        bad[3] = value
        np.savez(root / f"{name}.npz", x=x, y=bad)
    (root / "latin1.toml").write_bytes('n = 20\nmodel = "caf\xe9"\n'.encode("latin-1"))
    (root / "spec.toml").write_text(FAST_SPEC.format(model=json.dumps(f"{root}/flaky.py:good"),
                                                     data=json.dumps(f"npz:{root}/good.npz")))
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
    scripted.save(str(root / "net.pt"))
    _model_files(root)
    _databases(root, finished_db)
    return {"m": str(root)}
