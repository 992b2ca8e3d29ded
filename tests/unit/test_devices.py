"""--device / --mean / --std: one resolution rule and one normalisation helper for every command;
out-of-memory halving of attack batches (a mocked CUDA OOM)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advkit import devices
from advkit.attacks.fgsm import FGSM
from advkit.errors import BatchSizeReducedWarning, ConfigError
from advkit.evaluation import spec_from_dict
from advkit.model import Classifier
from advkit.threat import ThreatModel


def test_default_device_is_cpu_without_cuda_and_the_ranks_gpu_under_torchrun(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device(None) == devices.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert devices.resolve_device(None) == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert devices.resolve_device(None) == torch.device("cuda", 2)
    assert devices.resolve_device("cuda:3") == torch.device("cuda", 3)
    with pytest.raises(ConfigError, match="not available"):
        devices.resolve_device("cuda:4")


def test_unavailable_or_unknown_devices_are_config_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no usable CUDA"):
        devices.resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected cpu, cuda"):
        devices.resolve_device("tpu")
    with pytest.raises(ConfigError, match="device"):
        spec_from_dict({"device": "cuda:1"})


@pytest.mark.parametrize("argv", [
    ["inspect", "--device", "cuda:99"],
    ["evaluate", "--device", "cuda:99", "--n", "10"],
    ["attack", "fgsm", "--model", "zoo:mnist5k-standard", "--data", "digits", "--threat", "linf:0.1", "--device", "gpu"],
    ["certify", "--model", "zoo:mnist5k-standard", "--data", "digits", "--sigma", "0.25", "--out", "x", "--device", "cuda:99"],
    ["train", "--arch", "smallcnn", "--data", "digits", "--device", "cuda:99"],
    ["inspect", "--mean", "0.5,0.5", "--std", "0.5,0.5"],
])
def test_every_command_refuses_an_unavailable_device_or_bad_normalisation_with_exit_2(argv, tmp_path, monkeypatch,
                                                                                       capsys):
    from advkit.cli.main import main
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_mean_std_become_classifier_buffers_and_double_normalisation_is_refused():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x = torch.rand(5, 3, 2, 2)
    bare = Classifier(net)
    dev = devices.place(bare, device="cpu", mean="0.4914,0.4822,0.4465", std=devices.CIFAR10_STD, channels=3)
    assert dev == torch.device("cpu")
    ref = Classifier(net, mean=devices.CIFAR10_MEAN, std=devices.CIFAR10_STD)
    assert torch.equal(bare(x), ref(x)) and not torch.equal(bare(x), net(x))
    assert "mean" in dict(bare.named_buffers())  # part of the state dict, hence of the model hash
    with pytest.raises(ConfigError, match="already normalises"):
        devices.set_normalization(ref, (0.5,), (0.5,))
    with pytest.raises(ConfigError, match="1 or 3 values"):
        devices.set_normalization(Classifier(net), (0.5, 0.5), None, channels=3)
    with pytest.raises(ConfigError, match="positive"):
        devices.set_normalization(Classifier(net), None, (0.5, 0.0, 1.0), channels=3)
    with pytest.raises(ConfigError, match="comma-separated"):
        devices.parse_floats("0.5,x", "--mean")
    with pytest.raises(ConfigError, match="finite"):
        devices.parse_floats("nan", "--std")


def test_spec_keys_device_mean_std_and_the_device_is_not_part_of_the_protocol_hash():
    a = spec_from_dict({"mean": [0.5], "std": [0.25], "device": "cpu", "resize": 36, "crop": 32})
    assert (a.mean, a.std, a.device, a.resize, a.crop) == ((0.5,), (0.25,), "cpu", 36, 32)
    assert a.spec_hash() == spec_from_dict({"mean": [0.5], "std": [0.25], "resize": 36, "crop": 32}).spec_hash()
    assert a.spec_hash() != spec_from_dict({"mean": [0.4], "std": [0.25], "resize": 36, "crop": 32}).spec_hash()


class _OOMNet(nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than ``limit`` (a mocked small GPU)."""

    def __init__(self, limit: int):
        super().__init__()
        self.lin, self.limit, self.sizes = nn.Linear(16, 4), limit, []

    def forward(self, x):
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (mocked)")
        return self.lin(x.flatten(1))


def test_out_of_memory_halves_the_batch_continues_and_says_so():
    torch.manual_seed(0)  # test data only
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 4, (16,))
    net = _OOMNet(limit=5)
    clf = Classifier(net, accelerate=False)
    with pytest.warns(BatchSizeReducedWarning) as rec:
        res = FGSM(ThreatModel("linf", 0.1))(clf, x, y, batch_size=16)
    assert [str(w.message) for w in rec] == [f"fgsm: out of memory on cpu with a batch of {a}; continuing with "
                                             f"batches of {b}" for a, b in ((16, 8), (8, 4))]
    assert max(s for s in net.sizes[-6:]) <= 4  # the rest ran in batches of 4
    net2 = _OOMNet(limit=99)
    net2.load_state_dict(net.state_dict())
    ref = FGSM(ThreatModel("linf", 0.1))(Classifier(net2, accelerate=False), x, y, batch_size=16)
    assert torch.equal(res.x_adv, ref.x_adv) and torch.equal(res.success, ref.success)


def test_other_errors_and_single_sample_ooms_are_not_swallowed():
    x, y = torch.rand(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)
    from advkit.errors import ModelError
    # even one sample does not fit: raised (the model probe reports it as the model's error), never swallowed
    with pytest.raises((torch.cuda.OutOfMemoryError, ModelError), match="out of memory"):
        FGSM(ThreatModel("linf", 0.1))(Classifier(_OOMNet(limit=0), accelerate=False), x, y, batch_size=2)
    from advkit.batching import is_out_of_memory
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and is_out_of_memory(RuntimeError("CUDA out of memory"))


def test_plain_forward_passes_halve_on_out_of_memory_too(caplog):
    """Classifier.predict, the pre-flight check and the evaluation's clean-accuracy stage and confidences
    (advkit/batching.forward_in_batches) halve the batch like the attacks do, and say so."""
    from advkit.evaluation.stages import _confidence, clean
    torch.manual_seed(0)  # test data only
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 4, (12,))
    ref = Classifier(_OOMNet(limit=99), accelerate=False)
    clf = Classifier(_OOMNet(limit=3), accelerate=False)
    clf.load_state_dict(ref.state_dict())
    halvings = [(12, 6), (6, 3)]
    with pytest.warns(BatchSizeReducedWarning) as rec:
        assert torch.equal(clf.predict(x, batch_size=12, logits=True), ref.predict(x, batch_size=12, logits=True))
    assert [str(w.message) for w in rec] == [f"predict: out of memory on cpu with a batch of {a}; continuing with "
                                             f"batches of {b}" for a, b in halvings]
    with pytest.warns(BatchSizeReducedWarning, match="pre-flight check: out of memory"):
        clf.preflight(x, warn=False)

    class Ctx:  # the part of evaluation.context.Context that the clean stage uses
        def __init__(self, model):
            self.clf, self.x, self.y, self.index, self.records = model, x, y, np.arange(12), {}

        def run_batched(self, stage, fn, label=None):  # one batch of all 12 samples
            out = {k: np.asarray(v) for k, v in fn(slice(0, 12), None).items()}
            self.records.update({k: v for k, v in out.items() if not k.startswith("_")})
            return out
    ctx, want = Ctx(clf), Ctx(ref)
    caplog.set_level("WARNING", logger="advkit.batching")
    with pytest.warns(BatchSizeReducedWarning) as rec:
        got = clean(ctx)
    assert [str(w.message) for w in rec] == [f"clean accuracy: out of memory on cpu with a batch of {a}; "
                                             f"continuing with batches of {b}" for a, b in halvings]
    assert "clean accuracy: out of memory" in caplog.text  # in the log too
    expected = clean(want)
    for k in ("clean_pred", "clean_conf", "clean_correct", "top5_correct"):
        assert np.array_equal(got[k], expected[k]), k
    with pytest.warns(BatchSizeReducedWarning, match="confidence of adversarial examples"):
        assert np.array_equal(_confidence(ctx, x), _confidence(want, x))


def test_a_gpu_run_records_the_device_and_its_tf32_setting(monkeypatch):
    """GPU convolutions run in TF32 by default: result.json says so beside the device's name."""
    assert devices.describe("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    text = devices.describe("cuda")
    assert text.startswith("cuda:0 (NVIDIA H200, CUDA 13.0; TF32 convolutions on, float32 matmuls '")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert "TF32 convolutions off" in devices.describe("cuda:0")
