"""The attacker's view of a model: logits and loss gradients, counted, with optional EOT.

Attacks express their math against an :class:`Oracle`, never against the module directly, so
that model calls are counted in one place, EOT (Athalye, Carlini & Wagner 2018, "Obfuscated
gradients give a false sense of security") applies to every gradient attack unchanged, and the
passes run through checked faster copies of the model where that is safe (``fastpath.py``).
``exact_logits`` always uses the original module.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable

import torch

from .fastpath import FastPaths, accelerate_allowed

Loss = Callable[[torch.Tensor], torch.Tensor]


class _NoOracle:
    @staticmethod
    def confirm(z, success, decide):
        return success


_CURRENT: contextvars.ContextVar = contextvars.ContextVar("advkit_oracle", default=_NoOracle())


def current_oracle():
    """The oracle of the attack running in this context (one that confirms nothing outside an attack)."""
    return _CURRENT.get()


class Oracle:
    """Counts forward passes (``calls``, in samples) and gradient passes (``grads``, in samples).

    ``eot`` > 1 averages the loss gradient over that many forward/backward passes (for randomized
    models); ``logits`` then averages the logits too.
    """

    def __init__(self, model: torch.nn.Module, eot: int = 1):
        if eot < 1:
            raise ValueError("eot must be >= 1")
        self.model = model
        self.eot = eot
        self.calls = 0
        self.grads = 0
        #: batched passes (invocations of ``logits``/``value_and_grad``): the iteration count that
        #: drives progress reports; ``on_pass`` (if set) is called after each one
        self.passes = 0
        self.on_pass: Callable[[], None] | None = None
        #: with ``eot`` > 1: logits and per-sample loss of the last single draw made by ``value_and_grad``
        self.last_draw: torch.Tensor | None = None
        self.last_loss: torch.Tensor | None = None
        self.paths = FastPaths(model, accelerate_allowed(model, eot))
        #: the last output a faster copy served, its input, and which of its rows are exact since
        self._unconfirmed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        #: successes re-checked on the module (rows) and the batched passes that took (the cost of ``confirm``)
        self.confirmed_rows = 0
        self.confirm_passes = 0

    def _tick(self) -> None:
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits without a graph (averaged over ``eot`` draws)."""
        self._tick()
        if self.eot == 1:
            self.calls += len(x)
            return self._served(x, self.paths.logits(x))
        with torch.no_grad():
            out = self.model(x)
            for _ in range(self.eot - 1):
                out = out + self.model(x)
        self.calls += len(x) * self.eot
        return out / self.eot

    def draw(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of one forward pass of the original module (one draw of a randomized model), whatever
        ``eot``: success is decided on a single draw, as the official AutoAttack decides it, and never on a
        faster copy."""
        if self.eot == 1:
            self._tick()
        self.calls += len(x)
        with torch.no_grad():
            return self.model(x)

    def value_and_grad(self, x: torch.Tensor, loss: Loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(per-sample loss, ∂ sum(loss)/∂x, logits), each averaged over ``eot`` draws.  With ``eot`` > 1
        the logits and loss of the last single draw are kept in ``last_draw`` and ``last_loss`` (the official
        AutoAttack decides success, and scores x_best and the step-size checkpoints, inside APGD-EOT on that draw)."""
        self._tick()
        if self.eot == 1:
            self.calls += len(x)
            self.grads += len(x)
            l, g, z = self.paths.value_and_grad(x, loss)
            return l, g, self._served(x, z)
        total_l, total_g, total_z = None, None, None
        for _ in range(self.eot):
            xg = x.detach().requires_grad_(True)
            with torch.enable_grad():
                z = self.model(xg)
                l = loss(z)
                g, = torch.autograd.grad(l.sum(), xg)
            l, z = l.detach(), z.detach()
            total_l = l if total_l is None else total_l + l
            total_g = g if total_g is None else total_g + g
            total_z = z if total_z is None else total_z + z
        self.calls += len(x) * self.eot
        self.grads += len(x) * self.eot
        self.last_draw, self.last_loss = z, l
        return total_l / self.eot, total_g / self.eot, total_z / self.eot

    def exact_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the original module, never a faster copy (used to re-check decisions); counted."""
        self.calls += len(x)
        with torch.no_grad():
            return self.model(x)

    @contextlib.contextmanager
    def running(self):
        """Make this the current oracle (:func:`current_oracle`) while an attack runs on it."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def _served(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        exact = self.paths.last_exact
        self._unconfirmed = None if exact else (z, x, torch.zeros(len(x), dtype=torch.bool, device=z.device))
        return z

    def from_copy(self, z: torch.Tensor) -> bool:
        """Whether ``z`` is the last output, served by a faster copy of the model."""
        return self._unconfirmed is not None and self._unconfirmed[0] is z

    def mark_exact(self, z: torch.Tensor, rows: torch.Tensor) -> None:
        """Rows of ``z`` (the last output a copy served) now hold the module's logits."""
        if self._unconfirmed is not None and self._unconfirmed[0] is z:
            self._unconfirmed[2][rows] = True

    def confirm(self, z: torch.Tensor, success: torch.Tensor, decide: Callable) -> torch.Tensor:
        """``success`` decided on ``z``; when ``z`` is the last output a faster copy served, every success
        among its rows not yet exact is re-run on the original module (``z`` updated in place) and decided
        again by ``decide(z_rows, rows)``: a copy never decides a success alone."""
        pending = self._unconfirmed
        if pending is None or pending[0] is not z or not len(z):
            return success
        rows = (success & ~pending[2]).nonzero().flatten()
        if not len(rows):
            return success
        self.confirmed_rows += len(rows)
        self.confirm_passes += 1
        z[rows] = self.exact_logits(pending[1][rows]).to(z.dtype)
        pending[2][rows] = True
        success = success.clone()
        success[rows] = decide(z[rows], rows)
        return success

    def grad(self, x: torch.Tensor, loss: Loss) -> torch.Tensor:
        return self.value_and_grad(x, loss)[1]
