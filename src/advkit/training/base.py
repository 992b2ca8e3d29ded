"""The contract of a training objective, and the inner maximisation shared by the adversarial ones.

An objective turns a batch ``(x, y)`` into a scalar loss to minimise over the parameters θ.
Adversarial objectives first *perturb* the batch (an inner maximisation that never touches
parameter gradients), then compute the outer loss on the perturbed points.  The loop calls
``objective(model, x, y, generator=..., eps_scale=..., attack_model=...)``.

Batch-norm choice (documented, applied identically by every objective): the inner maximisation
runs with the model in **eval** mode by default (``attack_mode="eval"``, as in the reference TRADES
and MART code), so the attack neither uses nor updates batch statistics; the outer loss runs in
train mode.  ``attack_mode="train"`` keeps train mode for the attack (Rice et al. 2020's code).
For networks without BatchNorm/Dropout the two choices are identical.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import geometry
from ..errors import ConfigError

ATTACK_MODES = ("eval", "train")


@dataclass
class StepOutput:
    """The outer loss (with graph) and detached logits for train-accuracy reporting.

    ``clean_logits`` are f(x); ``perturbed_logits`` are f(x') on the points the loss was computed on
    (adversarial or noisy); either is ``None`` when the objective has no such forward pass.
    """

    loss: torch.Tensor
    clean_logits: torch.Tensor | None = None
    perturbed_logits: torch.Tensor | None = None


def bounds_of(model: nn.Module) -> tuple[float, float]:
    return tuple(getattr(model, "bounds", (0.0, 1.0)))  # type: ignore[return-value]


@contextlib.contextmanager
def mode(model: nn.Module, train: bool):
    """Set train/eval mode on every submodule inside; restore each one's mode on exit."""
    saved = {m: m.training for m in model.modules()}
    try:
        model.train(train)
        yield model
    finally:
        for m, t in saved.items():
            m.training = t


def pgd_maximize(model: nn.Module, x: torch.Tensor, start: torch.Tensor,
                 loss_fn: Callable[[torch.Tensor], torch.Tensor], *, norm: str, eps: float, steps: int,
                 step_size: float) -> torch.Tensor:
    """k steps of projected steepest ascent on ``loss_fn(model(x'))`` from ``start``.

    x'ₜ₊₁ = Π_{B(x,ε) ∩ box}(x'ₜ + α·d(∇ₓ' L)) with d the steepest-ascent direction of ``norm``
    (sign for L∞).  Gradients are taken w.r.t. the input only: parameter ``.grad`` is untouched.
    """
    lo, hi = bounds_of(model)
    x_adv = start.detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            total = loss_fn(model(x_adv)).sum()
        grad, = torch.autograd.grad(total, x_adv)
        x_adv = x_adv.detach() + step_size * geometry.steepest_ascent(grad, norm)
        x_adv = (x + geometry.project(x_adv - x, norm, eps)).clamp(lo, hi).detach()
    return x_adv


def ce_to(y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda z: F.cross_entropy(z, y, reduction="none")


@dataclass(frozen=True)
class Objective:
    """Base of every objective: ``perturb`` (inner maximisation, may be None) then ``loss``."""

    name: ClassVar[str] = "objective"
    #: True when ``perturb`` produces adversarial (not just noisy) points.
    adversarial: ClassVar[bool] = False
    #: True when ``loss`` already runs f(x) and returns ``clean_logits``.
    clean_in_loss: ClassVar[bool] = False
    attack_mode: str = "eval"

    def __post_init__(self):
        if self.attack_mode not in ATTACK_MODES:
            raise ConfigError(f"attack_mode must be one of {ATTACK_MODES}, got {self.attack_mode!r}")

    @property
    def threat_eps(self) -> float:
        """The budget the objective trains against (0 for non-adversarial objectives)."""
        return float(getattr(self, "eps", 0.0)) if self.adversarial else 0.0

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None = None,
                 eps_scale: float = 1.0, attack_model: nn.Module | None = None, track_clean: bool = True) -> StepOutput:
        """Perturb with ``attack_model`` (default ``model``), then compute the loss through ``model``.

        ``eps_scale`` ∈ [0, 1] scales ε and the step size (the ε warm-up).  Under DDP, ``model`` is the
        DistributedDataParallel wrapper and ``attack_model`` the plain module.  With ``track_clean``,
        objectives whose loss does not see f(x) get a no-grad clean forward in eval mode (so batch
        statistics are not updated by it) for the clean train accuracy.
        """
        if not 0.0 <= eps_scale <= 1.0:
            raise ConfigError(f"eps_scale must lie in [0, 1], got {eps_scale}")
        attacker = attack_model if attack_model is not None else model
        with mode(attacker, self.attack_mode == "train"):
            x_pert = self.perturb(attacker, x, y, generator=generator, eps_scale=eps_scale)
        clean = None
        if track_clean and not self.clean_in_loss:
            with mode(attacker, False), torch.no_grad():
                clean = attacker(x).detach()
        out = self.loss(model, x, y, x_pert)
        if out.clean_logits is None:
            out.clean_logits = clean
        return out

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None,
                eps_scale: float) -> torch.Tensor | None:
        return None

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_pert: torch.Tensor | None) -> StepOutput:
        raise NotImplementedError

    def describe(self) -> dict:
        import dataclasses
        return {"method": self.name, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}


@dataclass(frozen=True)
class InnerMaxObjective(Objective):
    """Base of the objectives whose inner maximisation is k steps of PGD in B(x, ε) (α default 2.5·ε/k)."""

    adversarial: ClassVar[bool] = True
    eps: float = 0.3
    norm: str = "linf"
    steps: int = 10
    step_size: float | None = None

    def __post_init__(self):
        super().__post_init__()
        check_budget(self.norm, self.eps, self.steps, self.step_size)

    @property
    def alpha(self) -> float:
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps


@dataclass(frozen=True)
class KLRegularisedObjective(InnerMaxObjective):
    """Base of TRADES and MART: an outer loss with a β-weighted KL(p(x) ‖ p(x')) term, computed together
    with f(x), and an inner maximisation that starts from x + ``init_std``·N(0, I) (not clipped)."""

    clean_in_loss: ClassVar[bool] = True
    beta: float = 6.0
    init_std: float = 0.001

    def __post_init__(self):
        super().__post_init__()
        if not self.beta >= 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")

    def noisy_start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x + self.init_std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def check_budget(norm: str, eps: float, steps: int | None = None, step_size: float | None = None) -> None:
    """Validate the shared adversarial fields (messages say expected vs got)."""
    if norm not in ("linf", "l2"):
        raise ConfigError(f"norm must be 'linf' or 'l2' for adversarial training, got {norm!r}")
    if not eps >= 0:
        raise ConfigError(f"eps must be >= 0, got {eps}")
    if steps is not None and steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    if step_size is not None and not step_size > 0:
        raise ConfigError(f"step_size must be > 0 (or None for the default), got {step_size}")
