"""MALT targeting: APGD-T on the classes whose linearised decision boundary is nearest.

Melamed, Yehudai & Shamir (2024), "MALT Powers Up Adversarial Attacks" (Mesoscopic Almost Linearity
Targeting).  APGD-T (Croce & Hein 2020) attacks the top non-true classes of the clean *logits* in
turn; MALT ranks the target classes t ≠ y by the distance to the boundary of a linearised model,

    s_t = (z_y − z_t) / ‖∇_x(z_y − z_t)‖_q      (q the dual norm of the threat's p: L∞ → L1, L2 → L2),

and runs APGD-T on the ``n_targets`` classes of smallest s_t, in that order.  As in the paper, the
scores are computed only for the ``candidates`` classes of largest logit (all classes when the model
has no more), so that a 1000-class model needs ``candidates`` gradients per sample, not 1000.  The
ranking costs one forward and min(K − 1, ``candidates``) backward passes per sample (counted in
``model_calls``/``gradient_calls``).  Everything else is :class:`~advkit.attacks.apgd.APGD`; with
``n_targets`` = 0 (explicit targets, or untargeted) it is plain APGD.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import geometry
from .apgd import APGD
from .base import require_int


def difference_gradients(oracle, x, y, cand):
    """(z_y − z_t, ∇_x(z_y − z_t) flattened) for the classes t in ``cand`` (n, c): one forward pass and
    c backward passes per sample, counted on ``oracle``."""
    n, c = cand.shape
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        z = oracle.model(xg)
        rows = torch.arange(n, device=x.device)
        outs = torch.zeros(c, *z.shape, device=z.device, dtype=z.dtype)
        outs[:, rows, y] = 1.0
        outs.scatter_(2, cand.t().unsqueeze(2), -1.0)
        try:
            g, = torch.autograd.grad(z, xg, grad_outputs=outs, is_grads_batched=True)
        except RuntimeError:  # modules without batched-gradient support
            g = torch.stack([torch.autograd.grad(z, xg, grad_outputs=outs[j], retain_graph=True)[0]
                             for j in range(c)])
    oracle.calls += n
    oracle.grads += n * c
    z = z.detach()
    return z.gather(1, y.view(-1, 1)) - z.gather(1, cand), g.transpose(0, 1).flatten(2)


def malt_ranking(oracle, x, y, n_targets: int, norm: str, candidates: int) -> torch.Tensor:
    """The ``n_targets`` classes of smallest MALT score s_t per sample (n, n_targets), nearest first."""
    with torch.no_grad():
        z = oracle.model(x)
    oracle.calls += len(x)
    k = z.shape[1]
    c = min(k - 1, max(candidates, n_targets))
    cand = z.scatter(1, y.view(-1, 1), float("-inf")).argsort(1, descending=True)[:, :c]
    dz, dg = difference_gradients(oracle, x, y, cand)
    score = dz.abs() / (geometry.dual_norm(dg.flatten(0, 1), norm).view(dz.shape) + 1e-12)
    return cand.gather(1, score.argsort(1)[:, :n_targets])


@dataclass(frozen=True)
class MaltAPGD(APGD):
    """APGD-T whose targets come from MALT's ranking instead of the clean logits."""

    loss: str = "dlr"
    n_targets: int = 5
    candidates: int = 100

    def __post_init__(self):
        super().__post_init__()
        require_int(self, "candidates")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "apgd-t-malt" if self.n_targets else super().name

    def _run(self, oracle, x, y, targets, generator):
        if not self.n_targets:  # explicit targets (or untargeted): plain APGD
            return super()._run(oracle, x, y, targets, generator)
        bounds = getattr(oracle.model, "bounds", (0.0, 1.0))
        out, found = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        ranked = malt_ranking(oracle, x, y, self.n_targets, self.norm, self.candidates)
        for k in range(self.n_targets):
            self._restarts(oracle, x, y, ranked[:, k], None, generator, bounds, out, found)
        return out
