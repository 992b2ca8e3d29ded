"""Zoo architectures: shapes, parameter counts, options, and safetensors round trips."""
from __future__ import annotations

import pytest
import torch

from advkit.errors import ConfigError, ModelError
from advkit.model import Classifier
from advkit.zoo.architectures import build, list_architectures
from advkit.zoo.checkpoint import load_model_file, read_metadata, save_model

CASES = [
    ("smallcnn", dict(in_channels=1, input_size=28)),
    ("smallcnn", dict(in_channels=1, input_size=8, padding=1)),
    ("smallcnn", dict(in_channels=3, input_size=32, num_classes=5, dropout=0.5)),
    ("lenet", dict(in_channels=1, input_size=28)),
    ("lenet", dict(in_channels=3, input_size=32)),
    ("preact-resnet18", dict(in_channels=3, input_size=32)),
    ("wrn-16-2", dict(in_channels=3, input_size=32)),
]


def _params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("arch, kw", CASES)
def test_forward_shape(arch, kw):
    torch.manual_seed(0)  # test only: deterministic init
    net = build(arch, **kw).eval()
    x = torch.rand(2, kw["in_channels"], kw["input_size"], kw["input_size"])
    out = net(x)
    assert out.shape == (2, kw.get("num_classes", 10)) and torch.isfinite(out).all()


def test_known_parameter_counts():
    # TRADES small CNN on 28×28: conv 1-32-32-64-64 (3×3), fc 1024-200-200-10
    convs = (1 * 32 * 9 + 32) + (32 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (64 * 64 * 9 + 64)
    fcs = (1024 * 200 + 200) + (200 * 200 + 200) + (200 * 10 + 10)
    assert _params(build("smallcnn")) == convs + fcs
    # LeNet-5: conv 1→6 (5×5), 6→16 (5×5), fc 400-120-84-10
    assert _params(build("lenet")) == (150 + 6) + (2400 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert 11.0e6 < _params(build("preact-resnet18", in_channels=3, input_size=32)) < 11.3e6


def test_wrn_28_10_parameter_count_and_forward():
    net = build("wrn-28-10", in_channels=3, input_size=32).eval()
    assert _params(net) == 36_479_194  # published WRN-28-10 size (≈36.5M)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_unknown_and_invalid_configs():
    with pytest.raises(ConfigError, match="smallcnn.*lenet.*preact-resnet18.*wrn-28-10"):
        build("resnet50")
    with pytest.raises(ConfigError, match="padding=1"):
        build("smallcnn", input_size=8)
    with pytest.raises(ConfigError, match="6n\\+4"):
        build("wrn-27-2", in_channels=3, input_size=32)
    with pytest.raises(ConfigError, match="invalid options"):
        build("lenet", widen=3)
    with pytest.raises(ConfigError, match="num_classes"):
        build("lenet", num_classes=0)
    assert [n for n, _ in list_architectures()] == ["smallcnn", "lenet", "preact-resnet18", "wrn-28-10"]


@pytest.mark.parametrize("arch, kw", CASES)
def test_safetensors_round_trip(tmp_path, arch, kw):
    torch.manual_seed(1)  # test only
    kw = dict(kw)
    c, s, k = kw.pop("in_channels"), kw.pop("input_size"), kw.pop("num_classes", 10)
    net = build(arch, num_classes=k, in_channels=c, input_size=s, **kw)
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()):
        net.train()
        with torch.no_grad():
            net(torch.rand(8, c, s, s))  # make BN running statistics non-trivial
    net.eval()
    mean, std = [0.5] * c, [0.25] * c
    path = save_model(tmp_path / "m.safetensors", net, arch=arch, arch_kwargs=kw, recipe={"data": "npz:x", "epochs": 1},
                      metrics={"clean_accuracy": 0.5}, mean=mean, std=std, input_shape=(c, s, s), num_classes=k,
                      name="round-trip", description="test model")
    clf = load_model_file(path)
    assert isinstance(clf, Classifier) and not clf.training
    assert clf.name == "round-trip" and clf.num_classes == k and clf.input_shape == (c, s, s)
    assert clf.metadata["recipe"] == {"data": "npz:x", "epochs": 1} and clf.metadata["data"] == "npz:x"
    sd_a, sd_b = net.state_dict(), clf.net.state_dict()
    assert sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[n], sd_b[n]) for n in sd_a)
    x = torch.rand(3, c, s, s)
    with torch.no_grad():
        assert torch.equal(clf(x), net((x - 0.5) / 0.25))


def test_save_from_classifier_keeps_normalisation(tmp_path):
    net = build("lenet").eval()
    clf = Classifier(net, mean=[0.1307], std=[0.3081], num_classes=10)
    path = save_model(tmp_path / "c.safetensors", clf, arch="lenet", input_shape=(1, 28, 28), num_classes=10)
    meta = read_metadata(path)
    assert meta["format"] == "advkit-model/1" and meta["name"] == "c"
    assert meta["mean"] == pytest.approx([0.1307]) and meta["std"] == pytest.approx([0.3081])
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(load_model_file(path)(x), clf(x))


def test_load_rejects_foreign_and_mismatched_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelError, match="advkit-model/1"):
        load_model_file(tmp_path / "plain.safetensors")
    path = save_model(tmp_path / "m.safetensors", build("lenet"), arch="lenet", input_shape=(1, 28, 28), num_classes=10)
    raw = read_metadata(path)
    # rewrite the file claiming a different architecture: strict loading must fail
    from safetensors.torch import load_file

    meta = {k: str(v) for k, v in raw.items() if isinstance(v, str)}
    meta.update(arch="smallcnn", num_classes="10", arch_kwargs="{}", input_shape="[1, 28, 28]", bounds="[0, 1]",
                mean="null", std="null", recipe="{}", metrics="{}")
    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match="do not match architecture 'smallcnn'"):
        load_model_file(tmp_path / "bad.safetensors")
    with pytest.raises(ModelError, match="does not exist"):
        load_model_file(tmp_path / "none.safetensors")
    with pytest.raises(ModelError, match=r"input_shape must be \(C, H, W\), got None"):
        save_model(tmp_path / "x.safetensors", build("lenet"), arch="lenet", input_shape=None, num_classes=10)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_model_file(tmp_path / "junk.safetensors")
