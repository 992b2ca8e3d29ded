"""l1-APGD's large-ε schedule (official ``use_largereps``, Croce & Hein 2021)."""
from __future__ import annotations

import pytest
import torch

from advkit.attacks.apgd import APGD
from advkit.attacks.schedules import apgd_large_eps
from advkit.errors import ConfigError


def test_schedule_is_3_2_1_eps_over_30_30_40_percent():
    assert apgd_large_eps(100) == ((3, 30), (2, 30), (1, 40))
    assert apgd_large_eps(10) == ((3, 3), (2, 3), (1, 4))
    assert sum(k for _, k in apgd_large_eps(7)) == 7


def test_large_eps_is_l1_only():
    with pytest.raises(ConfigError, match="l1"):
        APGD("linf:0.1", large_eps=True)


def test_large_eps_successes_lie_in_the_eps_ball(digits_model):
    clf, x, y = digits_model
    x, y = x[:40], y[:40]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    big = APGD("l1:1.5", steps=30, large_eps=True)(clf, x, y, generator=gen())
    assert APGD("l1:1.5").threat.contains(big.x_adv, x).all()
    assert (big.x_adv - x).flatten(1).abs().sum(1).max() <= 1.5 + 1e-4
    assert big.success.sum() > 5  # success at ε is found (points broken only at 2ε or 3ε do not count)
    assert (clf.predict(big.x_adv[big.success]) != y[big.success]).all()
