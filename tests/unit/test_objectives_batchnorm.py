"""TRADES and MART on a BatchNorm network in train mode: equal to the references' separate passes.

The reference implementations (Zhang et al. 2019, TRADES; Wang et al. 2020, MART) run the clean and the
adversarial batch through the network in separate forward passes, so BatchNorm normalises each kind of
input with its own batch statistics.  One pass on the concatenated batch mixes them and changes the loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advkit.model import Classifier
from advkit.training import MART, TRADES


def _bn_model() -> Classifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(64, 4))
    clf = Classifier(net, num_classes=4)
    clf.train()
    return clf


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 1, 4, 4, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    # a strongly shifted "adversarial" batch so that mixed statistics would show
    x_adv = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1) * 0.5
    return x, y, x_adv


def _kl(z_clean, z_adv):
    return F.kl_div(F.log_softmax(z_adv, 1), F.softmax(z_clean, 1), reduction="none").sum(1)


def test_trades_equals_two_pass_reference_on_batchnorm_net():
    x, y, x_adv = _batch()
    m = _bn_model()
    got = TRADES(beta=6.0).loss(m, x, y, x_adv).loss
    z_nat = m(x)                      # reference: model(x_natural) for the CE term
    z_adv = m(x_adv)                  # model(x_adv)
    z_nat2 = m(x)                     # model(x_natural) again for the KL target
    want = F.cross_entropy(z_nat, y) + 6.0 * _kl(z_nat2, z_adv).mean()
    assert abs(got.item() - want.item()) < 1e-6


def test_mart_equals_two_pass_reference_on_batchnorm_net():
    x, y, x_adv = _batch()
    m = _bn_model()
    got = MART(beta=6.0).loss(m, x, y, x_adv).loss
    z, za = m(x), m(x_adv)            # reference: logits = model(x_natural); logits_adv = model(x_adv)
    pa, p = F.softmax(za, 1), F.softmax(z, 1)
    idx = torch.arange(len(y))
    other = pa.scatter(1, y.view(-1, 1), 0.0).amax(1)
    # the reference code's smoothed logarithms and weight (advkit.training.mart)
    bce = F.cross_entropy(za, y, reduction="none") - torch.log(1.0001 - other + 1e-12)
    kl = (p * (p.log() - torch.log(pa + 1e-12))).sum(1)
    want = (bce + 6.0 * kl * (1.0000001 - p[idx, y])).mean()
    assert abs(got.item() - want.item()) < 1e-6
