"""A CIFAR-10-shaped workload end to end through ``advkit evaluate``: PreActResNet-18 on 3×32×32 that
expects normalised input (``--mean/--std``), data streamed from an image folder of generated PNGs with
a declared resize + centre crop.  Budgets are tiny: this proves the plumbing, not a robustness number."""
from __future__ import annotations

import json

import numpy as np
import pytest

FACTORY = '''
import torch
from advkit.zoo.architectures import build


def net():
    torch.manual_seed(0)  # user code: a fixed random initialisation stands in for a checkpoint
    return build("preact-resnet18", num_classes=10, in_channels=3, input_size=32).eval()
'''
MEAN, STD = "0.4914,0.4822,0.4465", "0.2471,0.2435,0.2616"
SPEC = """
n = 4
batch_size = 2
threats = ["linf:8/255"]
resize = 36
crop = 32
[stages.pgd]
steps = 2
restarts = 1
[stages.autoattack]
steps = 2
n_targets = 1
square_queries = 4
[stages.curve]
enabled = false
[stages.checks]
gradient_samples = 2
unbounded_samples = 2
unbounded_steps = 2
blackbox_queries = 4
"""


@pytest.mark.slow
def test_preact_resnet18_with_mean_std_on_a_streamed_image_folder(tmp_path):
    from PIL import Image

    from advkit.cli.main import main
    from advkit.devices import place
    from advkit.sources.data import load_data
    from advkit.sources.models import load_model

    factory = tmp_path / "cifar_factory.py"
    factory.write_text(FACTORY)
    raw = tmp_path / "raw" / "c0"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(raw / f"img{i}.png")
    # label every image with the model's own prediction, so that the attacks have correct samples to attack
    clf = load_model(f"{factory}:net")
    place(clf, device="cpu", mean=MEAN, std=STD, channels=3)
    images = load_data(f"imagefolder:{tmp_path / 'raw'}?resize=36&crop=32")
    pred = clf.predict(images.x)
    folder = tmp_path / "cifar"
    for c in range(10):
        (folder / f"c{c}").mkdir(parents=True)
    for i, p in enumerate(pred.tolist()):
        (raw / f"img{i}.png").rename(folder / f"c{p}" / f"img{i}.png")
    spec = tmp_path / "spec.toml"
    spec.write_text(f'model = "{factory}:net"\ndata = "imagefolder:{folder}"\n' + SPEC)
    out = tmp_path / "run"
    code = main(["evaluate", str(spec), "--mean", MEAN, "--std", STD, "--db", str(tmp_path / "h.db"),
                 "--out", str(out), "--quiet", "--device", "cpu"])
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["n"] == 4 and result["spec"]["mean"] == [float(v) for v in MEAN.split(",")]
    assert result["clean"]["accuracy"] == 1.0  # the labels are the normalised model's predictions
    t = result["threats"]["linf:8/255"]
    assert {"fgsm", "pgd"} <= set(t["attacks"])
    with np.load(out / "samples.npz") as z:
        assert z["index"].tolist() == [0, 1, 2, 3]
        assert z["gallery_clean"].shape[1:] == (3, 32, 32)
    # without --mean/--std the same network sees different inputs: the model hash differs
    assert result["model_hash"] != _hash_without_normalisation(factory)


def _hash_without_normalisation(factory) -> str:
    from advkit.sources.models import load_model, model_hash
    return model_hash(load_model(f"{factory}:net"))
