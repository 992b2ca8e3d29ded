"""Lp geometry on batches: norms, projections onto balls, steepest-ascent directions, sampling.

All functions treat dimension 0 as the batch and flatten the rest.  The L1 projection is the
exact Euclidean projection onto the L1 ball (Duchi, Shalev-Shwartz, Singer & Chandra 2008,
"Efficient projections onto the l1-ball for learning in high dimensions").
"""
from __future__ import annotations

import math

import torch

from . import rng
from .sync import sync_free

_TINY = 1e-12


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample values (n,) shaped to broadcast against ``like`` (n, ...)."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def where_rows(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row i of ``a`` where ``mask[i]``, else row i of ``b``: a masked per-sample update with no host
    synchronisation (unlike ``b[mask] = a[mask]``; see :mod:`advkit.sync`)."""
    return torch.where(_view(mask, a), a, b)


def norm(delta: torch.Tensor, p: str) -> torch.Tensor:
    """Per-sample Lp norm of ``delta`` (p in linf/l2/l1)."""
    flat = delta.flatten(1)
    if p == "linf":
        return flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    if p == "l2":
        return flat.norm(p=2, dim=1)
    if p == "l1":
        return flat.abs().sum(1)
    raise ValueError(f"unknown norm {p!r}")


def project_linf(delta: torch.Tensor, eps) -> torch.Tensor:
    eps = _as_column(eps, delta)
    return torch.maximum(torch.minimum(delta, eps), -eps)


def project_l2(delta: torch.Tensor, eps) -> torch.Tensor:
    eps = _as_column(eps, delta)
    n = _view(norm(delta, "l2"), delta)
    factor = torch.where(n > eps, eps / n.clamp_min(_TINY), torch.ones_like(n))
    return delta * factor


def project_l1(delta: torch.Tensor, eps) -> torch.Tensor:
    """Exact Euclidean projection onto {‖δ‖₁ ≤ ε} by the sort-and-threshold rule of Duchi et al."""
    shape = delta.shape
    flat = delta.flatten(1)
    b, d = flat.shape
    eps_v = _as_column(eps, flat).view(-1).expand(b)
    u = flat.abs()
    outside = u.sum(1) > eps_v
    if not sync_free(delta.device) and not outside.any():  # a shortcut that reads the mask on the host
        return delta.clone()
    mu, _ = torch.sort(u, dim=1, descending=True)
    cssv = mu.cumsum(1) - eps_v.unsqueeze(1)
    idx = torch.arange(1, d + 1, device=flat.device, dtype=flat.dtype)
    cond = mu - cssv / idx > 0
    rho = d - cond.flip(1).to(torch.int64).argmax(1) - 1  # last index where cond holds
    theta = cssv.gather(1, rho.unsqueeze(1)) / (rho + 1).to(flat.dtype).unsqueeze(1)
    shrunk = flat.sign() * (u - theta.clamp_min(0)).clamp_min(0)
    # float rounding can leave the sum a few ulps above eps: scale those back onto the ball
    over = shrunk.abs().sum(1, keepdim=True)
    shrunk = shrunk * torch.where(over > eps_v.unsqueeze(1), eps_v.unsqueeze(1) / over, torch.ones_like(over))
    out = torch.where(outside.unsqueeze(1), shrunk, flat)
    return out.view(shape)


def project(delta: torch.Tensor, p: str, eps) -> torch.Tensor:
    """Project ``delta`` onto the Lp ball of radius ``eps`` (scalar or per-sample tensor)."""
    if p == "linf":
        return project_linf(delta, eps)
    if p == "l2":
        return project_l2(delta, eps)
    if p == "l1":
        return project_l1(delta, eps)
    raise ValueError(f"unknown norm {p!r}")


def steepest_ascent(grad: torch.Tensor, p: str) -> torch.Tensor:
    """Unit-norm direction maximising ⟨g, d⟩ over ‖d‖_p ≤ 1.

    L∞: sign(g); L2: g/‖g‖₂; L1: the signed coordinate(s) of largest |g| (ties split evenly).
    A zero gradient gives a zero direction.
    """
    if p == "linf":
        return grad.sign()
    if p == "l2":
        n = _view(norm(grad, "l2"), grad).clamp_min(_TINY)
        return grad / n
    if p == "l1":
        flat = grad.flatten(1)
        a = flat.abs()
        top = a.amax(1, keepdim=True)
        mask = (a == top) & (top > 0)
        count = mask.sum(1, keepdim=True).clamp_min(1)
        return (flat.sign() * mask / count).view_as(grad)
    raise ValueError(f"unknown norm {p!r}")


def dual_norm(grad: torch.Tensor, p: str) -> torch.Tensor:
    """Per-sample dual norm ‖g‖_q (q = 1 for L∞, 2 for L2, ∞ for L1)."""
    return norm(grad, {"linf": "l1", "l2": "l2", "l1": "linf"}[p])


def sample_ball(shape, p: str, eps, *, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Points drawn uniformly from the Lp ball of radius ``eps`` (per-sample or scalar); ``generator`` is a
    ``torch.Generator`` or per-sample streams (:mod:`advkit.rng`)."""
    b = shape[0]
    d = int(math.prod(shape[1:]))
    if p == "linf":
        u = rng.rand(generator, shape, device=device, dtype=dtype)
        return (2 * u - 1) * _as_column(eps, u)
    if p == "l2":
        g = rng.randn(generator, (b, d), device=device, dtype=dtype)
        g = g / g.norm(dim=1, keepdim=True).clamp_min(_TINY)
        r = rng.rand(generator, (b, 1), device=device, dtype=dtype) ** (1.0 / d)
        out = (g * r).view(shape)
        return out * _as_column(eps, out)
    if p == "l1":
        # Uniform in the L1 ball: |coords| ~ first d of a Dirichlet(1,...,1) over d+1 parts, random signs.
        e = -torch.log(rng.rand(generator, (b, d + 1), device=device, dtype=dtype).clamp_min(1e-30))
        mag = (e / e.sum(1, keepdim=True))[:, :d]
        sign = rng.randint(generator, 0, 2, (b, d), device=device).to(dtype) * 2 - 1
        out = (mag * sign).view(shape)
        return out * _as_column(eps, out)
    raise ValueError(f"unknown norm {p!r}")


def _as_column(eps, like: torch.Tensor) -> torch.Tensor:
    if isinstance(eps, torch.Tensor):
        eps = eps.to(device=like.device, dtype=like.dtype)
        if eps.dim() == 0:
            return eps
        return _view(eps, like)
    # a fill on the device, not torch.tensor(): copying a Python number to a GPU waits for its queue
    return torch.full((), float(eps), device=like.device, dtype=like.dtype)
