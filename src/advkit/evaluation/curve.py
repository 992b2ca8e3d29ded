"""The robustness curve from one minimum-norm run plus fixed-ε attacks only where they can change a point.

A sample broken at ε is broken at every larger ε (the curve takes the worst case per sample over the
smaller ε, :func:`advkit.evaluation.aggregate.curve_summary`).  So per sample the curve needs only the
smallest grid ε at which it is broken:

1. one FMN run (Pintor et al. 2021, :mod:`advkit.attacks.fmn`) on the clean-correct samples gives each a
   distance d (+∞ where it found nothing): the sample is broken at every grid ε ≥ d;
2. the fixed-ε attacks of the curve (``stages.curve.attacks``, APGD-CE by default; Croce & Hein 2020) then
   run per sample downwards from the largest grid ε below d: at each ε only the samples whose next
   probe is that ε are attacked; a break moves the sample's probe one grid point down, a failure
   ends its search (the samples robust at ε per FMN are attacked, the others never are).

Most samples need one fixed-ε attack (the one just below their FMN distance, which fails), so the
whole curve costs about one FMN run and one or two fixed-ε runs instead of one fixed-ε run per grid
point.  ``model_calls``/``gradient_calls`` of every attack are summed into the curve's pass count.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import rng
from ..attacks.fmn import FMN
from ..batching import forward_in_batches
from ..faults import check_finite
from ..results import records as rec
from ..threat import ThreatModel
from .context import Context, subset


def confidence(ctx: Context, x_adv: torch.Tensor) -> np.ndarray:
    """Top-1 softmax confidence of the model on ``x_adv``."""
    with ctx.clf.inference():
        z = forward_in_batches(ctx.clf, x_adv, what="confidence of adversarial examples")
    check_finite(z, ctx.clf.name, "the confidence pass on the curve's adversarial examples")
    return z.float().softmax(1).max(1).values.cpu().numpy()


def first_index(eps_list, d: torch.Tensor) -> torch.Tensor:
    """Per sample, the index of the first grid ε ≥ d (len(eps_list) where none is), compared in d's
    precision (a float32 distance equal to float32(ε) lies on the ε-ball)."""
    grid = torch.tensor([float(e) for e in eps_list], dtype=d.dtype)
    return torch.searchsorted(grid, d.contiguous().cpu(), right=False)


def curve_batch(clf, x, y, eps_list, norm: str, attacks_at, streams, fmn_steps: int, progress=None) -> dict:
    """The curve of one batch of clean-correct samples.  ``attacks_at(eps)`` gives the fixed-ε attacks;
    ``streams`` are per-sample random streams over the rows (or a generator).  Returns ``broken_at``
    (first grid index broken, len(eps_list) where robust everywhere), the adversarial points' ``pred``
    and ``x_adv``, the FMN ``distance`` and the pass counters."""
    p = len(eps_list)
    res = FMN(norm=norm, steps=fmn_steps)(clf, x, y, **({"progress": progress} if progress else {}))
    d = torch.where(res.success, res.distance, torch.full_like(res.distance, math.inf))
    broken_at = first_index(eps_list, d)
    x_adv, pred = res.x_adv.clone(), res.predictions.clone()
    calls, grads = res.model_calls, res.gradient_calls
    probe = broken_at - 1
    for j in range(p - 1, -1, -1):
        idx = (probe == j).nonzero().flatten()
        if not len(idx) or eps_list[j] <= 0:
            continue
        hit = torch.zeros(len(idx), dtype=torch.bool)
        for attack in attacks_at(eps_list[j]):
            rest = idx[~hit]
            if not len(rest):
                break
            r = attack(clf, x[rest], y[rest], generator=rng.take(streams, rest))
            calls, grads = calls + r.model_calls, grads + r.gradient_calls
            ok = r.success.cpu()
            x_adv[rest[ok]], pred[rest[ok]] = r.x_adv[ok], r.predictions[ok]
            hit[(~hit).nonzero().flatten()[ok]] = True
        broken_at[idx[hit]] = j
        probe[idx[hit]] = j - 1
        probe[idx[~hit]] = -1
    return {"broken_at": broken_at, "pred": pred, "x_adv": x_adv, "distance": d, "model_calls": calls,
            "gradient_calls": grads}


def one_run_curve(ctx: Context, threat: ThreatModel, attacks_at) -> dict:
    """The curve stage by :func:`curve_batch`; records ``{threat}/curve/{i}/success|pred|conf`` as the
    per-point stage does."""
    cs = ctx.spec.stages.curve
    eps_list = list(ctx.spec.curve_eps(threat))
    correct = ctx.mask("clean_correct")

    def batch(sl, streams):
        size = sl.stop - sl.start
        broken_at = np.full(size, len(eps_list))
        pred = ctx.records["clean_pred"][sl].copy()
        conf = ctx.records["clean_conf"][sl].copy()
        xb, yb, pos = subset(ctx, sl, correct)
        calls = grads = 0
        if len(pos):
            dev = ctx.clf.device
            out = curve_batch(ctx.clf, xb.to(dev), yb.to(dev), eps_list, threat.norm, attacks_at,
                              streams.subset(pos), cs.fmn_steps, ctx.batch_progress)
            broken_at[pos], pred[pos] = out["broken_at"].numpy(), out["pred"].cpu().numpy()
            conf[pos] = confidence(ctx, out["x_adv"])
            calls, grads = out["model_calls"], out["gradient_calls"]
        payload = {"_model_calls": [calls], "_gradient_calls": [grads]}
        clean_pred, clean_conf = ctx.records["clean_pred"][sl], ctx.records["clean_conf"][sl]
        for i in range(len(eps_list)):
            hit = broken_at <= i
            payload[rec.key(threat, f"curve/{i}", "success")] = hit | ~correct[sl]
            payload[rec.key(threat, f"curve/{i}", "pred")] = np.where(hit, pred, clean_pred)
            payload[rec.key(threat, f"curve/{i}", "conf")] = np.where(hit, conf, clean_conf)
        return payload

    ctx.run_batched(f"{threat}/curve", batch, label=f"{threat} curve (fmn)")
    stats = ctx.stats[f"{threat}/curve"]
    return {"eps": eps_list, "method": "fmn", "fmn_steps": cs.fmn_steps, "steps": cs.steps,
            "model_calls": int(np.sum(stats["_model_calls"])), "gradient_calls": int(np.sum(stats["_gradient_calls"]))}
