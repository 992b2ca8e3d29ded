"""Hostile inputs for the CLI suite: tiny models, broken data files, bad weights, broken databases.

Everything is generated into one folder per test session in a second or two: an 8×8 grayscale
linear "model" family (good, 1 output, 5 outputs, tuple outputs, a forward that raises, probabilities,
3-D outputs), npz data files (good, truncated, a renamed .npy, zero bytes, NaN pixels, empty, one
label value, labels beyond the model's width), weights (good, truncated, empty, a pickle named
.safetensors), training checkpoints (truncated, malicious), a history DB with corrupted pages, and
one finished evaluation run (its result.json and history DB) for gate/history/report.
"""
from __future__ import annotations

import io
import json
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import torch

MODELS_PY = '''
import torch
from torch import nn


def _lin(k):
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, k))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(k, 64, generator=g) * 0.3)
        net[1].bias.zero_()
    return net


def good():
    return _lin(10)


def arch():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def one():
    return _lin(1)


def five():
    return _lin(5)


def three():
    return _lin(3)


def probs():
    return nn.Sequential(_lin(10), nn.Softmax(dim=1))


class Tuple(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _lin(10)

    def forward(self, x):
        return self.net(x), x


class Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _lin(10)

    def forward(self, x):
        raise RuntimeError("boom inside the model's forward")


class ThreeD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = _lin(10)

    def forward(self, x):
        return self.net(x)[:, :, None]


def tuple_out():
    return Tuple()


def raises():
    return Boom()


def three_d():
    return ThreeD()


def not_a_module():
    return 42
'''

TINY_SPEC = """
model = {model}
data = {data}
n = 20
seed = 0
batch_size = 20
threats = ["linf:0.1"]
[stages.pgd]
steps = 3
restarts = 1
[stages.autoattack]
steps = 3
square_queries = 10
n_targets = 2
[stages.curve]
points = 2
steps = 2
[stages.checks]
gradient_samples = 5
unbounded_samples = 5
unbounded_steps = 3
blackbox_queries = 10
"""


class Malicious:
    """Unpickling it would create the marker file: the suite asserts it never appears."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _digits(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[-n:] * 255 / 16).round().astype(np.uint8)
    return x, d.target[-n:].astype(np.int64)


def build(root: Path) -> dict:
    """Write every hostile input under ``root``; returns {name: path text} for the case table."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    (root / "models.py").write_text(MODELS_PY)
    x, y = _digits()
    np.savez(root / "good.npz", x=x, y=y)
    np.savez(root / "train.npz", x_train=np.concatenate([x] * 3), y_train=np.concatenate([y] * 3), x_test=x, y_test=y)
    raw = (root / "good.npz").read_bytes()
    (root / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (root / "zero.npz").write_bytes(b"")
    np.save(root / "arr.npy", x)
    shutil.move(root / "arr.npy", root / "renamed.npz")
    xf = x.astype(np.float32) / 255
    xf[3, 2, 2] = np.nan
    np.savez(root / "nan.npz", x=xf, y=y)
    np.savez(root / "empty.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64))
    np.savez(root / "onelabel.npz", x=x, y=np.zeros_like(y))
    np.savez(root / "fewlabels.npz", x=x, y=y % 3)
    big = y.copy()
    big[5] = 12
    np.savez(root / "biglabel.npz", x=x, y=big)
    np.savez(root / "floatlabels.npz", x=x, y=y.astype(np.float32))
    np.savez(root / "badshape.npz", x=np.zeros((40, 5), np.uint8), y=y)
    np.savez(root / "big.npz", x=np.zeros((40, 28, 28), np.uint8), y=y)  # 28×28 images for an 8×8 model
    (root / "text.npz").write_text("x,y\n1,2\n")

    ns: dict = {}
    exec(compile(MODELS_PY, str(root / "models.py"), "exec"), ns)  # the same weights the CLI will build
    sd = {k: v.contiguous() for k, v in ns["good"]().state_dict().items()}
    save_file(sd, str(root / "w.safetensors"))
    wraw = (root / "w.safetensors").read_bytes()
    (root / "trunc.safetensors").write_bytes(wraw[: len(wraw) // 2])
    (root / "empty.safetensors").write_bytes(b"")
    torch.save(sd, root / "pickled.safetensors")
    torch.save({"0.weight": torch.zeros(3, 3)}, root / "wrongshape.pt")

    marker = root / "PAYLOAD_RAN"
    Malicious.marker = str(marker)
    (root / "ckpt-malicious").mkdir()
    with open(root / "ckpt-malicious" / "checkpoint.pt", "wb") as fh:
        pickle.dump({"epoch": Malicious()}, fh)
    (root / "ckpt-trunc").mkdir()
    buf = io.BytesIO()
    torch.save({"epoch": 1, "model": sd}, buf)
    (root / "ckpt-trunc" / "checkpoint.pt").write_bytes(buf.getvalue()[:100])

    (root / "list.json").write_text("[1, 2, 3]")
    (root / "notjson.json").write_text("{not json")
    (root / "minimal.json").write_text(json.dumps({"schema_version": 1}))
    (root / "afile").write_text("a regular file, used as a parent folder")
    (root / "notadb.db").write_text("this is not an SQLite database " * 200)
    (root / "spec.toml").write_text(TINY_SPEC.format(model=json.dumps(f"{root}/models.py:good"),
                                                     data=json.dumps(f"npz:{root}/good.npz")))
    return {"d": str(root), "marker": str(marker)}


def finished_run(root: Path, env: dict) -> dict:
    """One complete tiny evaluation (result.json, samples.npz, history DB) and a corrupted copy of its DB."""
    from advkit.cli.main import main

    code = main(["evaluate", f"{env['d']}/spec.toml", "--out", str(root / "run"), "--db", str(root / "h.db"),
                 "--quiet", "--no-autoattack"])
    if code not in (0, 1):
        raise RuntimeError(f"the fixture evaluation failed with exit code {code}")
    shutil.copy(root / "h.db", root / "corrupt.db")
    with sqlite3.connect(root / "corrupt.db") as con:
        page = con.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray((root / "corrupt.db").read_bytes())
    for off in range(page, len(data), page):  # every page but the header page
        data[off:off + 64] = b"\xa5" * 64
    (root / "corrupt.db").write_bytes(bytes(data))
    return {"run": str(root / "run"), "db": str(root / "h.db"), "corrupt_db": str(root / "corrupt.db")}
