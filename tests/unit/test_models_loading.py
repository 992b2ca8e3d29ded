"""Model REFs: factories, weights (safe and unsafe), TorchScript, advkit files, model hashes."""
from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from advkit.errors import ConfigError, ModelError, UnsafeCheckpointError
from advkit.model import Classifier
from advkit.sources.models import load_model, model_hash
from advkit.zoo.architectures import build
from advkit.zoo.checkpoint import save_model

FACTORY_SRC = textwrap.dedent("""
    import torch
    from torch import nn
    from helper_layers import width
    from advkit.model import Classifier

    def make():
        return nn.Sequential(nn.Flatten(), nn.Linear(16, width()), nn.ReLU(), nn.Linear(width(), 3))

    def make_classifier():
        return Classifier(make(), mean=[0.5], std=[0.5], num_classes=3, input_shape=(1, 4, 4))

    def make_wrong():
        return 42

    def make_failing():
        raise RuntimeError("no GPU here")
""")


@pytest.fixture
def factory_file(tmp_path):
    (tmp_path / "helper_layers.py").write_text("def width():\n    return 8\n")
    path = tmp_path / "mymodel.py"
    path.write_text(FACTORY_SRC)
    return path


def _reference_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # test only
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def test_file_factory_imports_siblings_and_names_the_model(factory_file):
    ref = f"{factory_file}:make"
    clf = load_model(ref)
    assert isinstance(clf, Classifier) and clf.name == ref
    assert clf(torch.rand(2, 1, 4, 4)).shape == (2, 3)
    wrapped = load_model(f"{factory_file}:make_classifier")
    assert wrapped.num_classes == 3 and wrapped.mean is not None


def test_module_factory():
    clf = load_model("torch.nn:Identity")
    x = torch.rand(2, 5)
    assert torch.equal(clf(x), x) and clf.name == "torch.nn:Identity"


def test_factory_errors(factory_file, tmp_path):
    with pytest.raises(ModelError, match="must return a torch.nn.Module"):
        load_model(f"{factory_file}:make_wrong")
    with pytest.raises(ModelError, match="raised RuntimeError: no GPU here"):
        load_model(f"{factory_file}:make_failing")
    with pytest.raises(ModelError, match="no callable 'absent'"):
        load_model(f"{factory_file}:absent")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"{tmp_path / 'nope.py'}:make")
    with pytest.raises(ModelError, match="cannot import module"):
        load_model("no_such_pkg_xyz.models:make")
    with pytest.raises(ConfigError, match="zoo:NAME"):
        load_model("just-a-name")
    with pytest.raises(ConfigError, match="non-empty"):
        load_model("")


def test_safetensors_weights(factory_file, tmp_path):
    from safetensors.torch import save_file

    ref_net = _reference_net(3)
    save_file(ref_net.state_dict(), str(tmp_path / "w.safetensors"))
    clf = load_model(f"{factory_file}:make", weights=str(tmp_path / "w.safetensors"))
    x = torch.rand(4, 1, 4, 4)
    assert torch.equal(clf(x), ref_net(x))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "ddp"])
def test_pt_weights_with_weights_only(factory_file, tmp_path, wrap):
    ref_net = _reference_net(4)
    sd = ref_net.state_dict()
    obj = {"plain": sd, "state_dict": {"state_dict": sd, "epoch": 3},
           "ddp": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    torch.save(obj, tmp_path / "w.pt")
    clf = load_model(f"{factory_file}:make", weights=str(tmp_path / "w.pt"))
    x = torch.rand(4, 1, 4, 4)
    assert torch.equal(clf(x), ref_net(x))


def test_weights_mismatch_is_a_model_error(factory_file, tmp_path):
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="do not match"):
        load_model(f"{factory_file}:make", weights=str(tmp_path / "bad.pt"))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"{factory_file}:make", weights=str(tmp_path / "absent.pt"))


class _Evil:
    """Pickling this stores a call to exec(...) that creates a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_malicious_pickle_is_refused_without_trust(factory_file, tmp_path):
    marker = tmp_path / "code-ran"
    sd = dict(_reference_net().state_dict())
    torch.save({"state_dict": sd, "payload": _Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        load_model(f"{factory_file}:make", weights=str(tmp_path / "evil.pt"))
    assert not marker.exists()
    # with explicit trust the pickle is loaded (and its code does run: that is what trust means)
    clf = load_model(f"{factory_file}:make", weights=str(tmp_path / "evil.pt"), trust_pickle=True)
    assert marker.exists()
    assert torch.equal(clf.net[1].weight, sd["1.weight"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript(tmp_path):
    net = _reference_net(5).eval()
    torch.jit.script(net).save(str(tmp_path / "m.pt"))
    clf = load_model(f"torchscript:{tmp_path / 'm.pt'}")
    x = torch.rand(2, 1, 4, 4)
    assert torch.allclose(clf(x), net(x))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"torchscript:{tmp_path / 'absent.pt'}")
    with pytest.raises(ConfigError, match="weights can only be given"):
        load_model(f"torchscript:{tmp_path / 'm.pt'}", weights="w.pt")


def test_advkit_file_ref_and_device(tmp_path):
    net = build("lenet").eval()
    path = save_model(tmp_path / "lenet.safetensors", net, arch="lenet", input_shape=(1, 28, 28), num_classes=10)
    clf = load_model(str(path), device="cpu")
    assert clf.name == str(path) and clf.device == torch.device("cpu")
    assert model_hash(clf) == model_hash(load_model(str(path)))


def test_model_hash_tracks_weights():
    a, b = _reference_net(0), _reference_net(0)
    assert model_hash(a) == model_hash(b)
    assert len(model_hash(a)) == 64
    with torch.no_grad():
        b[1].bias[0] += 1e-6
    assert model_hash(a) != model_hash(b)
    # a different shape with the same bytes must hash differently
    c, d = nn.Linear(4, 2, bias=False), nn.Linear(2, 4, bias=False)
    with torch.no_grad():
        d.weight.copy_(c.weight.reshape(4, 2))
    assert model_hash(c) != model_hash(d)


def test_onnx_without_converter_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_onnx2torch(name, *args, **kwargs):
        if name.startswith("onnx2torch"):
            raise ImportError("No module named 'onnx2torch'")
        return real_import(name, *args, **kwargs)

    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    monkeypatch.setattr(builtins, "__import__", no_onnx2torch)
    with pytest.raises(ModelError, match="pip install onnx2torch"):
        load_model(f"onnx:{tmp_path / 'm.onnx'}")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(f"onnx:{tmp_path / 'absent.onnx'}")
