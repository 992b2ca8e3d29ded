"""Adversarial attacks: every attack is a frozen dataclass called as
``attack(model, x, y, *, targets=None, generator=None, batch_size=None) -> AttackResult``.

Build them by name with :func:`advkit.attacks.registry.build` (``advkit list attacks``).
"""
from __future__ import annotations

from .adaptive import BPDA, Expectation, with_eot
from .apgd import APGD
from .base import Attack, BudgetedAttack, MinNormAttack
from .cw import CarliniWagnerL2
from .ensemble import Ensemble, EnsembleResult
from .fab import FAB
from .fgsm import FGSM
from .fmn import FMN
from .pgd import PGD
from .presets import autoattack_rand, autoattack_standard
from .registry import build, list_attacks
from .restarts import BestOf
from .result import AttackResult
from .square import Square

__all__ = [
    "Attack", "AttackResult", "BudgetedAttack", "MinNormAttack",
    "FGSM", "PGD", "BestOf", "CarliniWagnerL2", "APGD", "Square", "FAB", "FMN", "Ensemble", "EnsembleResult",
    "autoattack_standard", "autoattack_rand", "BPDA", "Expectation", "with_eot", "build", "list_attacks",
]
