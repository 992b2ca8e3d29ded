"""Models that mask gradients get the right findings and an honest (not inflated) robust accuracy.

Three masking defenses built on the digits CNN, each a classic from Athalye, Carlini & Wagner (2018):
vanishing gradients (logits scaled ×1000: softmax saturates, the CE gradient is exactly 0), shattered
gradients (input quantisation through ``torch.round``, whose gradient is 0) and stochastic gradients
(Gaussian input noise at test time).  The pipeline must flag each and report a worst-case robust
accuracy close to the undefended model's, although CE-PGD alone reports far more; a PGD-trained
model, robust for real, must get none of the masking findings.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advkit.evaluation import evaluate, spec_from_dict
from advkit.model import Classifier

THREAT = "linf:0.15"
MASKING = {"zero-gradients", "nan-gradients", "blackbox-beats-whitebox", "fgsm-beats-pgd", "unbounded-not-zero",
           "curve-not-monotone", "ce-autoattack-gap", "randomized-no-eot", "randomized-model"}


def _spec(queries=600, **aa):
    return spec_from_dict({
        "n": 100, "batch_size": 100, "threats": [THREAT],
        "stages": {"pgd": {"steps": 10, "restarts": 1},
                   "autoattack": {"steps": 20, "square_queries": queries, "n_targets": 3, "eot": 5, **aa},
                   "curve": {"points": 3, "steps": 10},
                   "checks": {"unbounded_samples": 30, "unbounded_steps": 20, "blackbox_queries": queries}}})


class Scale(nn.Module):
    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, z):
        return z * self.k


class Quantise(nn.Module):
    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * self.levels) / self.levels


class Noise(nn.Module):
    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x):
        return x + self.sigma * torch.randn_like(x)


def _wrap(*modules, name):
    return Classifier(nn.Sequential(*modules), num_classes=10, input_shape=(1, 8, 8), name=name)


def _run(model, data, spec=None):
    res = evaluate(spec or _spec(), model=model, data=data).result
    t = res["threats"][THREAT]
    return res, t, {f["code"] for f in res["findings"]}


@pytest.fixture(scope="module")
def undefended(digits_model):
    clf, x, y = digits_model
    res, t, codes = _run(clf, (x, y))
    assert not codes & MASKING, codes
    return t["robust_accuracy"]


def test_vanishing_gradients(digits_model, undefended):
    clf, x, y = digits_model
    _, t, codes = _run(_wrap(clf.net, Scale(1000.0), name="vanishing"), (x, y))
    assert {"zero-gradients", "ce-autoattack-gap"} <= codes
    assert t["attacks"]["pgd"]["robust_accuracy"] > undefended + 0.5  # CE-PGD is fooled...
    assert t["robust_accuracy"] <= undefended + 0.05  # ...the worst case is not


def test_shattered_gradients(digits_model, undefended):
    clf, x, y = digits_model
    _, t, codes = _run(_wrap(Quantise(32), clf.net, name="quantised"), (x, y), _spec(queries=1000))
    assert {"zero-gradients", "blackbox-beats-whitebox"} <= codes
    assert t["attacks"]["pgd"]["robust_accuracy"] > undefended + 0.5
    # the official Square (issue 23) never moves the last row and column, a quarter of an 8×8 image, so it
    # leaves more of the quantised model standing than advkit's per-sample variant did (+0.18 here, was ≤ +0.15);
    # with AutoAttack's members on the streams `advkit attack autoattack` uses (issue 23.1) Square's shared
    # draws are other random numbers: +0.21 at seed 0
    assert t["robust_accuracy"] <= undefended + 0.25
    assert t["broken_by"].get("square", 0) > 0.3 * t["n"]


def test_stochastic_gradients(digits_model, undefended):
    clf, x, y = digits_model
    noisy = _wrap(Noise(0.1), clf.net, name="noisy")
    res, t, codes = _run(noisy, (x, y))
    assert "randomized-model" in codes and "randomized-no-eot" not in codes
    assert t["autoattack_version"] == "rand" and "apgd-dlr" in t["attacks"]
    assert t["attacks"]["apgd-ce"]["config"]["eot"] == 5
    assert t["robust_accuracy"] <= undefended + 0.1
    # forcing the standard (no-EOT) AutoAttack on a randomized model is flagged
    _, _, codes = _run(noisy, (x, y), _spec(version="standard"))
    assert "randomized-no-eot" in codes


def _pgd_trained(digits_model, eps=0.15, epochs=4):
    """A quickly PGD-trained (Madry et al. 2018) digits CNN — robust without masking."""
    from advkit.attacks.pgd import PGD
    from sklearn.datasets import load_digits
    d = load_digits()
    xs = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    ys = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(xs), generator=g)
    xtr, ytr = xs[perm][:1400], ys[perm][:1400]
    torch.manual_seed(1)  # test-only model initialisation
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    clf = Classifier(net, num_classes=10, input_shape=(1, 8, 8), name="digits-pgdat")
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    attack = PGD(f"linf:{eps}", steps=3)
    for _ in range(epochs):
        for i in torch.randperm(len(xtr), generator=g).split(64):
            net.eval()
            xa = attack(clf, xtr[i], ytr[i], generator=g).x_adv
            net.train()
            opt.zero_grad()
            nn.functional.cross_entropy(net(xa), ytr[i]).backward()
            opt.step()
    net.eval()
    return clf


@pytest.mark.slow
def test_adversarially_trained_model_gets_no_masking_warning(digits_model, undefended):
    _, x, y = digits_model
    clf = _pgd_trained(digits_model)
    res, t, codes = _run(clf, (x, y), _spec(queries=400))
    assert not codes & MASKING, [f for f in res["findings"] if f["code"] in MASKING]
    assert res["clean"]["accuracy"] > 0.8
    assert t["robust_accuracy"] > undefended + 0.2  # robust for real, under the same worst case
