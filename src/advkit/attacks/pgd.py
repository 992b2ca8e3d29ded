"""PGD: projected gradient ascent on the loss inside the ε-ball ∩ box.

Madry, Makelov, Schmidt, Tsipras & Vladu (2018), "Towards deep learning models resistant to
adversarial attacks":  x⁰ ~ U(B_ε(x)) (``random_start``), x^{t+1} = Π_{B_ε(x)∩[lo,hi]}(x^t + α·s(∇ₓL(x^t, y))).
Symbols: L → ``loss`` ("ce", "margin" = C&W f₆, "dlr"), α → ``step_size`` (default 2.5·ε/``steps``,
Madry et al.'s choice), s → the steepest-ascent direction of the threat norm, Π → ``threat.project``.

Steepest-ascent step per norm:
  * L∞: sign(g)  (the classic PGD step);
  * L2: g / ‖g‖₂;
  * L1: a *sparse top-k* step in the style of SLIDE (Tramèr & Boneh 2019, "Adversarial training and
    robustness for multiple perturbations") with the box-aware coordinate selection of Croce & Hein
    (2021, "Mind the box: l1-APGD"): among the coordinates that can still move in the gradient's
    direction without leaving the box, take the k of largest |g| and step sign(g_i)/k on each (unit
    L1 norm).  k decays linearly from ``ceil(l1_sparsity·d)`` at the first step to 1 at the last, so
    early steps explore many pixels and late steps concentrate the budget on the best coordinates
    (a fixed k > 1 cannot reach the L1 ball's vertices; the plain one-coordinate step stalls at the box).

The per-sample best iterate is kept (``keep_best``): a successful iterate always beats an
unsuccessful one, then the larger loss wins; a sample's best point is final once it has succeeded (it
leaves the working batch at once on CPU, at the next compaction point on accelerators: :mod:`advkit.sync`).
With ``keep_best=False`` the last iterate is returned and every sample runs every step (the
behaviour of torchattacks/foolbox PGD).  Targeted attacks (``targets``) descend the loss of the
target class.  ``eot`` > 1 averages the gradient over that many passes (Athalye et al. 2018).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import geometry, losses, sync
from ..errors import ConfigError
from .base import BudgetedAttack, require_int


def check_gradient_config(attack, loss: str, num_classes: int, targets) -> None:
    """Shared validation of the loss/EOT fields of gradient attacks (expected vs got)."""
    losses.get(loss)
    need = 4 if (loss == "dlr" and targets is not None) else 3 if loss == "dlr" else 2
    if num_classes < need:
        raise ConfigError(f"{attack.name}: loss {loss!r} needs at least {need} classes, got {num_classes}")


def validate_eot(eot) -> None:
    if not isinstance(eot, int) or isinstance(eot, bool) or eot < 1:
        raise ConfigError(f"eot must be an integer >= 1, got {eot!r}")


@dataclass(frozen=True)
class PGD(BudgetedAttack):
    name: ClassVar[str] = "pgd"
    steps: int = 40
    step_size: float | None = None
    random_start: bool = True
    loss: str = "ce"
    keep_best: bool = True
    l1_sparsity: float = 0.05
    eot: int = 1

    def __post_init__(self):
        super().__post_init__()
        require_int(self, "steps")
        if self.step_size is not None and not (self.step_size > 0 and math.isfinite(self.step_size)):
            raise ConfigError(f"step_size must be a positive number or None (2.5·eps/steps), got {self.step_size!r}")
        if not 0 < self.l1_sparsity <= 1:
            raise ConfigError(f"l1_sparsity must lie in (0, 1], got {self.l1_sparsity!r}")
        losses.get(self.loss)
        validate_eot(self.eot)

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return self.random_start

    @property
    def alpha(self) -> float:
        """The step size α actually used."""
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def _validate(self, num_classes, targets) -> None:
        check_gradient_config(self, self.loss, num_classes, targets)

    # ------------------------------------------------------------------ the math
    def _run(self, oracle, x, y, targets, generator):
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        loss_fn = losses.get(self.loss)
        x_cur = self.threat.sample(x, generator, bounds) if self.random_start else x.clone()
        best_x, best_l = x_cur.clone(), torch.full((len(x),), -math.inf, device=x.device, dtype=x.dtype)
        best_s = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        active = torch.arange(len(x), device=x.device)
        for t in range(self.steps):
            if self.keep_best and t > 0 and sync.compacts_at(t, x.device):  # advkit/sync.py
                active = (~best_s).nonzero().flatten()
                if not len(active):
                    break
            xa, ya = x_cur[active], y[active]
            ta = None if targets is None else targets[active]
            l, g, z = oracle.value_and_grad(xa, lambda zz: loss_fn(zz, ya, ta))
            self._update_best(best_x, best_l, best_s, active, xa, l, self._is_success(z, ya, ta))
            step = self._direction(g, xa, bounds, t) * self.alpha
            x_cur[active] = self.threat.project(xa + step, x[active], bounds)
        if not self.keep_best:
            return x_cur
        active = (~best_s).nonzero().flatten()
        if len(active):
            xa, ya = x_cur[active], y[active]
            ta = None if targets is None else targets[active]
            z = oracle.logits(xa)
            self._update_best(best_x, best_l, best_s, active, xa, loss_fn(z, ya, ta), self._is_success(z, ya, ta))
        return best_x

    @staticmethod
    def _update_best(best_x, best_l, best_s, idx, xa, l, s) -> None:
        """In place: a success beats a failure, then the larger loss wins; a sample's first success is
        final (rows already broken wait, frozen, for the next compaction: sync.py).  No host sync."""
        bs, bl = best_s[idx], best_l[idx]
        better = ~bs & (s | (l > bl))
        best_x[idx] = geometry.where_rows(better, xa, best_x[idx])
        best_l[idx] = torch.where(better, l, bl)
        best_s[idx] = bs | (better & s)

    def _direction(self, g, xa, bounds, t: int) -> torch.Tensor:
        if self.norm != "l1":
            return geometry.steepest_ascent(g, self.norm)
        k0 = math.ceil(self.l1_sparsity * g[0].numel())
        k = max(1, round(k0 * (1 - t / max(1, self.steps - 1))))
        return sparse_l1_direction(g, xa, bounds, k)


def sparse_l1_direction(g: torch.Tensor, x: torch.Tensor, bounds, k: int) -> torch.Tensor:
    """Unit-L1 step on the top-``k`` |g| coordinates that can move without leaving the box."""
    flat, xf = g.flatten(1), x.flatten(1)
    movable = ((flat > 0) & (xf < bounds[1])) | ((flat < 0) & (xf > bounds[0]))
    score = torch.where(movable, flat.abs(), torch.zeros_like(flat))
    top = score.topk(k, dim=1).indices
    mask = torch.zeros_like(flat).scatter(1, top, 1.0) * (score > 0)
    count = mask.sum(1, keepdim=True).clamp_min(1)
    return (flat.sign() * mask / count).view_as(g)
