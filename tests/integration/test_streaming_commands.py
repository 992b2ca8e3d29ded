"""``attack``, ``inspect`` and ``certify`` read image folders per image, like ``evaluate``: with ``--n`` (or
``--n-images``/``--skip``) on a large folder only the selected images are decoded, so an ImageNet
validation folder does not have to fit in memory to attack 100 of its images."""
from __future__ import annotations

import json

import numpy as np
import pytest

from advkit.cli.main import main

FACTORY = '''
import torch
from torch import nn
from advkit.model import Classifier


def build():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    return Classifier(net, num_classes=3, input_shape=(3, 8, 8))
'''


@pytest.fixture
def setup(tmp_path, monkeypatch):
    from PIL import Image

    from advkit.sources import streaming
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for c in ("a", "b", "c"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / c / f"{i:02d}.png")
    factory = tmp_path / "factory.py"
    factory.write_text(FACTORY)
    decoded = []
    real = streaming.read_file
    monkeypatch.setattr(streaming, "read_file", lambda path, *a: decoded.append(path) or real(path, *a))
    # the folder's documented order: round-robin over the classes, file names sorted within a class
    order = [root / c / f"{i:02d}.png" for i in range(10) for c in ("a", "b", "c")]
    return f"{factory}:build", f"imagefolder:{root}", decoded, order


def test_attack_decodes_only_the_selected_images(setup, capsys):
    model, data, decoded, order = setup
    assert main(["attack", "fgsm", "--model", model, "--data", data, "--n", "4", "--threat", "linf:0.03",
                 "--json", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 4 and 0 <= summary["robust_accuracy"] <= summary["clean_accuracy"]
    assert decoded and set(decoded) == set(order[:4])


def test_inspect_decodes_only_the_first_n_images(setup, capsys):
    model, data, decoded, order = setup
    assert main(["inspect", "--model", model, "--data", data, "--n", "5", "--json", "--device", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n"] == 5
    assert set(decoded) == set(order[:5])


def test_certify_decodes_only_the_selected_images(setup, tmp_path):
    model, data, decoded, order = setup
    assert main(["certify", "--model", model, "--data", data, "--sigma", "0.25", "--n0", "10", "--n", "50",
                 "--n-images", "3", "--skip", "4", "--out", str(tmp_path / "cert"), "--no-progress",
                 "--device", "cpu"]) == 0
    assert set(decoded) == {order[0], order[4], order[8]}
    rows = (tmp_path / "cert" / "samples.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header + the three selected images
