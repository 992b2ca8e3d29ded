import warnings

import pytest
import torch
from torch import nn

from advkit import Classifier
from advkit.errors import (InputError, ModelError, ProbabilityOutputWarning, RandomizedModelWarning,
                           TrainModeWarning)


def small_net(softmax=False, dropout=False):
    layers = [nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(8, 3))
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


@pytest.fixture
def clf():
    torch.manual_seed(0)
    net = small_net().eval()
    return Classifier(net, num_classes=3, input_shape=(1, 4, 4))


def x_ok(n=5):
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(1))


def test_normalisation_is_applied_inside():
    net = nn.Identity()
    c = Classifier(nn.Sequential(nn.Flatten()), mean=[0.5], std=[0.25])
    x = torch.full((1, 1, 2, 2), 0.75)
    torch.testing.assert_close(c(x), torch.full((1, 4), 1.0))
    assert "mean" in dict(c.named_buffers()) and "std" in dict(c.named_buffers())


@pytest.mark.parametrize("bad,match", [
    (torch.full((2, 1, 4, 4), float("nan")), "NaN"),
    (torch.full((2, 1, 4, 4), float("inf")), "NaN or inf"),
    (torch.full((2, 1, 4, 4), 2.0), "bounds"),
    (torch.full((2, 1, 4, 4), -0.1), "bounds"),
    (torch.rand(2, 16), r"\(N, C, H, W\)"),
    (torch.rand(2, 3, 4, 4), "per-sample shape"),
    (torch.rand(2, 1, 5, 5), "per-sample shape"),
    (torch.randint(0, 255, (2, 1, 4, 4)), "floating-point"),
])
def test_bad_inputs_get_their_own_error(clf, bad, match):
    with pytest.raises(InputError, match=match):
        clf.check_inputs(bad)


@pytest.mark.parametrize("y,match", [
    (torch.tensor([0, 1, 3, 0, 1]), r"\[0, 3\)"),
    (torch.tensor([0, 1, -1, 0, 1]), r"\[0, 3\)"),
    (torch.tensor([0, 1]), "2 entries but x has 5"),
    (torch.tensor([0.0, 1, 2, 0, 1]), "integer"),
    (torch.zeros(5, 1, dtype=torch.long), "1-D"),
    ([0, 1, 2, 0, 1], "torch.Tensor"),
])
def test_bad_labels(clf, y, match):
    with pytest.raises(InputError, match=match):
        clf.check_inputs(x_ok(), y)


def test_inference_restores_modes_and_grads():
    net = small_net(dropout=True)
    net.train()
    net[1].weight.requires_grad_(True)
    net[5].weight.requires_grad_(False)
    c = Classifier(net)
    with c.inference():
        assert not net.training and not any(m.training for m in net.modules())
        assert not any(p.requires_grad for p in net.parameters())
    assert net.training and all(m.training for m in net.modules())
    assert net[1].weight.requires_grad and not net[5].weight.requires_grad


def test_inference_restores_on_error():
    net = small_net().train()
    c = Classifier(net)
    with pytest.raises(RuntimeError):
        with c.inference():
            raise RuntimeError("boom")
    assert net.training


def test_predict_batches_match_full(clf):
    x = torch.rand(37, 1, 4, 4)
    full = clf.predict(x, batch_size=1000, logits=True)
    torch.testing.assert_close(clf.predict(x, batch_size=5, logits=True), full)
    assert torch.equal(clf.predict(x, batch_size=7), full.argmax(1))


def test_preflight_train_mode_warning():
    c = Classifier(small_net().train(), input_shape=(1, 4, 4))
    with pytest.warns(TrainModeWarning):
        findings = c.preflight(x_ok())
    assert [f.code for f in findings] == ["train-mode"]
    assert c.net.training  # preflight itself does not change the caller's mode


def test_preflight_probability_outputs():
    c = Classifier(small_net(softmax=True).eval())
    with pytest.warns(ProbabilityOutputWarning):
        findings = c.preflight(x_ok())
    assert any(f.code == "probability-outputs" and f.severity == "error" for f in findings)


def test_preflight_randomized_model():
    class Noisy(nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :3] + torch.randn(len(x), 3)
    c = Classifier(Noisy())
    with pytest.warns(RandomizedModelWarning):
        findings = c.preflight(x_ok())
    assert [f.code for f in findings] == ["randomized-model"]


def test_clean_model_has_no_findings(clf):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clf.preflight(x_ok()) == []


def test_model_errors():
    with pytest.raises(ModelError):
        Classifier("not a module")
    with pytest.raises(ModelError):
        Classifier(nn.Identity(), bounds=(1, 0))
    with pytest.raises(ModelError):
        Classifier(nn.Identity(), std=[0.0])
    with pytest.raises(ModelError):
        Classifier(Classifier(nn.Identity()))


class _Jitter(nn.Module):
    """A deterministic model whose logits jitter by ``scale`` between calls (non-deterministic kernels)."""

    def __init__(self, scale: float, seed: int = 0):
        super().__init__()
        self.scale, self.g = scale, torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(16, 3)

    def forward(self, x):
        z = self.lin(x.flatten(1)[:, :16]) * 5
        return z + self.scale * torch.randn(z.shape, generator=self.g)


def test_preflight_logit_jitter_is_not_randomness():
    torch.manual_seed(0)
    c = Classifier(_Jitter(1e-6).eval())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [f.code for f in c.preflight(x_ok())] == []


def test_preflight_small_but_real_noise_is_randomness():
    torch.manual_seed(0)
    c = Classifier(_Jitter(1e-2).eval())
    with pytest.warns(RandomizedModelWarning):
        assert [f.code for f in c.preflight(x_ok())] == ["randomized-model"]
