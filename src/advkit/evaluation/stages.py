"""The stages of an evaluation, in order; each records per-sample results in ``ctx.records``.

1. :func:`preflight` — the model checks (train mode, probability outputs, randomness, NaN outputs) and
   the input-range check; an error-severity finding raises :class:`EvaluationAborted`.
2. :func:`clean` — top-1, top-5, confidences.
3. :func:`threat_attacks` per threat — FGSM (sanity check), PGD × restarts (Madry et al. 2018, via
   ``BestOf``; the last iterate on a randomized model), then AutoAttack (Croce & Hein 2020) run as its
   own cascade from the clean inputs, composed by :func:`advkit.attacks.presets.components` (the one
   protocol object per version and norm); the threat's ``protocol`` entry names it and says whether it
   ran at the reference budgets (``reduced-budget`` finding otherwise; :mod:`.autoattack_stage`).  Its
   members run from the clean inputs on every clean-correct sample (not only on PGD's survivors), so its
   row is AutoAttack's own number (docs/protocols.md).  Without
   Square in AutoAttack a Square run on the survivors of every attack serves the black-box masking check.
4. :func:`curve` — robust accuracy over a list of ε with a cheaper attack, each ε attacked
   independently (so that a non-monotone attack shows).
5. :func:`unbounded` and :func:`gradients` — the attack-failure checks that need the model.
"""
from __future__ import annotations

import numpy as np
import torch

from ..attacks import registry
from ..attacks.adaptive import supports_eot, with_eot
from ..attacks.fgsm import FGSM
from ..attacks.pgd import PGD
from ..attacks.restarts import BestOf
from ..batching import forward_in_batches
from ..errors import ConfigError, EvaluationAborted, InputError
from ..faults import check_finite
from ..findings import Finding
from ..progress import rescaled
from ..results import records as rec
from ..threat import ThreatModel
from . import checks
from .autoattack_stage import aa_version, attack_eot, autoattack_components, protocol_info, report_dropped
from .curve import one_run_curve
from .context import Context, subset


def preflight(ctx: Context) -> list[Finding]:
    """Model and data checks before any attack; error findings abort the evaluation."""
    x, y = ctx.x, ctx.y
    if not isinstance(x, torch.Tensor):  # streamed data (sources/streaming.py): check the first batch
        x, y = x[:ctx.spec.batch_size], y[:ctx.spec.batch_size]
    try:
        ctx.clf.check_inputs(x, y)
    except InputError as e:
        found = [Finding("input-range", "error", str(e))]
    else:
        found = ctx.clf.preflight(x, warn=False)
    ctx.randomized = any(f.code == "randomized-model" for f in found)
    errors = [f for f in found if f.severity == "error"]
    if errors:
        fixes = "; ".join(f"{f.message} (fix: {_remedy(f.code)})" for f in errors)
        raise EvaluationAborted(f"pre-flight check failed: {fixes}", errors)
    return found


def _remedy(code: str) -> str:
    from ..findings import CATALOGUE
    info = CATALOGUE.get(code)
    return info.remedy if info else "see advkit list checks"


def clean(ctx: Context) -> dict:
    def batch(sl, gen):
        with ctx.clf.inference():  # halved on out-of-memory (advkit/batching.py)
            z = forward_in_batches(ctx.clf, ctx.x[sl], what="clean accuracy").float().cpu()
        check_finite(z, ctx.clf.name, f"the clean pass (samples {sl.start}..{sl.stop - 1})")
        p = z.softmax(1)
        y = ctx.y[sl]
        k = min(5, z.shape[1])
        top5 = (z.topk(k, 1).indices == y[:, None]).any(1)
        return {"clean_pred": z.argmax(1), "clean_conf": p.max(1).values, "clean_correct": z.argmax(1) == y,
                "top5_correct": top5, "_clean_logits_sum": z.sum(0, keepdim=True)}
    out = ctx.run_batched("clean", batch)
    ctx.records.update(index=ctx.index, label=ctx.y.numpy())
    return out


# ------------------------------------------------------------------------ attacks
def attack_stage(ctx: Context, threat: ThreatModel, name: str, attack, todo: np.ndarray,
                 gallery: bool = True, streams: tuple[str, str, int] | None = None) -> np.ndarray:
    """Run ``attack`` on the samples in ``todo`` (batch by batch); records ``success``/``pred``/``attacked``;
    with ``gallery`` the adversarial examples it found go to ``ctx.stats`` (``_adv_index``, ``_adv``).
    ``streams`` = (store key, random-stream key, spawns to skip) runs a member of an ensemble as
    :class:`~advkit.attacks.ensemble.Ensemble` runs it: each earlier randomized member spawned once."""
    correct = ctx.mask("clean_correct")
    store_key, streams_key, skip = streams or (None, None, 0)

    def batch(sl, streams):
        for _ in range(skip):
            streams.spawn()
        size = sl.stop - sl.start
        success, pred = ~correct[sl].copy(), ctx.records["clean_pred"][sl].copy()
        conf = ctx.records["clean_conf"][sl].copy()
        xb, yb, pos = subset(ctx, sl, todo & correct)
        extra = {"_seconds": [0.0], "_model_calls": [0], "_gradient_calls": [0],
                 "_adv_index": np.zeros(0, np.int64), "_adv": np.zeros((0, *ctx.x.shape[1:]), np.float32)}
        if len(pos):
            # each sample's own random stream: its result does not depend on its batch mates
            r = attack(ctx.clf, xb, yb, generator=streams.subset(pos), progress=ctx.batch_progress)
            success[pos], pred[pos] = r.success.numpy(), r.predictions.numpy()
            conf[pos] = _confidence(ctx, r.x_adv)
            # every adversarial example found (samples.npz keeps them all; the gallery picks a few)
            hit = pos[r.success.numpy()] if gallery else pos[:0]
            extra.update(_seconds=[r.seconds], _model_calls=[r.model_calls], _gradient_calls=[r.gradient_calls],
                         _adv_index=hit + sl.start, _adv=r.x_adv[r.success][:len(hit)].numpy())
        attacked = np.zeros(size, bool)
        attacked[pos] = True
        return {rec.key(threat, name, "success"): success, rec.key(threat, name, "pred"): pred,
                rec.key(threat, name, "conf"): conf, rec.key(threat, name, "attacked"): attacked, **extra}
    out = ctx.run_batched(f"{threat}/{name}", batch, label=f"{threat} {name}", store_key=store_key,
                          streams_key=streams_key)
    ctx.stats[f"{threat}/{name}"]["config"] = attack.describe()
    return out[rec.key(threat, name, "success")]


def _confidence(ctx: Context, x_adv: torch.Tensor) -> np.ndarray:
    with ctx.clf.inference():
        z = forward_in_batches(ctx.clf, x_adv, what="confidence of adversarial examples")
    check_finite(z, ctx.clf.name, "the confidence pass on adversarial examples")
    return z.float().softmax(1).max(1).values.cpu().numpy()


def robust_so_far(ctx: Context, threat, names: list[str]) -> np.ndarray:
    return rec.worst_case(ctx.records, threat, names)[0]


def threat_attacks(ctx: Context, threat: ThreatModel) -> dict:
    """FGSM, PGD × restarts, AutoAttack and the black-box check for one threat."""
    st, ran, info = ctx.spec.stages, [], {"upper_bound": False, "autoattack": [], "version": "off"}
    everyone = ctx.mask("clean_correct")
    fgsm_ok = None
    if st.fgsm.enabled:
        attack_stage(ctx, threat, "fgsm", FGSM(threat, eot=attack_eot(ctx, 1)), everyone)
        ran.append("fgsm")
        fgsm_ok = float(robust_so_far(ctx, threat, ["fgsm"]).mean())
    if st.pgd.enabled:
        # on a randomized model the per-sample best iterate would freeze a lucky draw: last iterate
        pgd = PGD(threat, steps=st.pgd.steps, step_size=st.pgd.step_size, eot=attack_eot(ctx, st.pgd.eot),
                  keep_best=not ctx.randomized)
        attack_stage(ctx, threat, "pgd", BestOf(pgd, restarts=st.pgd.restarts), everyone)
        ran.append("pgd")
    skip = (st.autoattack.skip_if_fgsm_breaks_all and fgsm_ok is not None
            and fgsm_ok < st.checks.fgsm_survivors_min)
    version = aa_version(ctx)
    if version != "off" and not skip:
        info["version"] = version
        info["protocol"] = protocol_info(ctx, threat, version, None)
        components = autoattack_components(ctx, threat, version)
        report_dropped(ctx, threat, version, [name for name, _ in components], info)
        _autoattack(ctx, threat, version, components, ran, info)
    else:
        info["upper_bound"] = True
        why = "skipped because FGSM broke almost every sample" if skip else "turned off"
        info["protocol"] = protocol_info(ctx, threat, version, why)
        ctx.findings.append(Finding("autoattack-skipped", "info",
                                    f"{threat}: AutoAttack {why}; the robust accuracy is an upper bound"))
    q = st.checks.blackbox_queries
    if st.checks.enabled and "square" not in ran and q > 0 and ctx.mode != "naive":
        attack_stage(ctx, threat, "square", registry.build("square", threat, n_queries=q),
                     robust_so_far(ctx, threat, ran))
        ran.append("square")
    info["attacks"] = ran
    return info


def _autoattack(ctx: Context, threat: ThreatModel, version: str, components, ran: list, info: dict) -> None:
    """AutoAttack's members as the official evaluation runs them: each from the clean input on every
    clean-correct sample no earlier member broke, whatever FGSM and PGD found, with the random streams
    ``advkit attack autoattack`` gives the same samples (same seed).  With ``stages.autoattack.survivors_only``
    (a speed option) they attack only what every attack so far left robust: the result is then a worst
    case over all attacks, not AutoAttack's number, and no ``autoattack`` row is reported."""
    survivors = ctx.spec.stages.autoattack.survivors_only
    info["survivors_only"] = survivors
    if survivors:  # never reported under AutoAttack's name (docs/protocols.md)
        why = "survivors_only: AutoAttack's members attacked only FGSM's and PGD's survivors (a worst case)"
        info["protocol"] = {"name": "worst case (fgsm, pgd, AutoAttack members on survivors)", "reference": False,
                            "reasons": [*info["protocol"].get("reasons", []), why]}
    label = f"{threat}/" + ("autoattack" if version == "standard" else f"autoattack-{version}")
    spawned = 0
    for name, attack in components:
        todo = robust_so_far(ctx, threat, ran if survivors else info["autoattack"])
        where = f"{threat}/{'worst-case' if survivors else 'autoattack'}/{name}"  # apart from older runs' keys
        attack_stage(ctx, threat, name, attack, todo, streams=(where, label, spawned))
        spawned += int(attack.randomized)
        ran.append(name)
        info["autoattack"].append(name)


# ------------------------------------------------------------------------ curve and checks
def curve(ctx: Context, threat: ThreatModel) -> dict:
    """The robustness curve; records ``{threat}/curve/{i}/success``.  ``method = "fmn"`` (default): one
    FMN run plus the curve attacks only where they can change a point (:mod:`advkit.evaluation.curve`);
    ``"per-point"``, or a randomized model: the curve attacks independently at each ε."""
    cs = ctx.spec.stages.curve
    if cs.method == "fmn" and not ctx.randomized:
        def attacks_at(eps):
            return [_probe(_curve_attack(ctx, n, threat.with_eps(eps)), cs.probe_restarts) for n in cs.attacks]
        names = [_curve_attack(ctx, n, threat).describe().get("name", n) for n in cs.attacks]
        return {**one_run_curve(ctx, threat, attacks_at), "attacks": ["fmn", *names]}
    eps_list = ctx.spec.curve_eps(threat)
    used, calls, grads = [], 0, 0
    for i, eps in enumerate(eps_list):
        todo = ctx.mask("clean_correct") if eps > 0 else np.zeros(ctx.n, bool)
        success = np.zeros(ctx.n, bool)
        pred, conf = ctx.records["clean_pred"].copy(), ctx.records["clean_conf"].copy()
        for name in cs.attacks:
            attack = _curve_attack(ctx, name, threat.with_eps(eps))
            used.append(attack.describe().get("name", name))
            key = f"curve/{i}/{name}"
            new = attack_stage(ctx, threat, key, attack, todo & ~success, gallery=False) & todo & ~success
            stats = ctx.stats[f"{threat}/{key}"]
            calls, grads = calls + int(np.sum(stats["_model_calls"])), grads + int(np.sum(stats["_gradient_calls"]))
            pred[new] = ctx.records[rec.key(threat, key, "pred")][new]
            conf[new] = ctx.records[rec.key(threat, key, "conf")][new]
            success |= new
        ctx.records.update({rec.key(threat, f"curve/{i}", "success"): success | ~ctx.mask("clean_correct"),
                            rec.key(threat, f"curve/{i}", "pred"): pred, rec.key(threat, f"curve/{i}", "conf"): conf})
    return {"eps": list(eps_list), "attacks": sorted(set(used)), "steps": cs.steps, "method": "per-point",
            "model_calls": calls, "gradient_calls": grads}


def _probe(attack, restarts: int):
    """The curve attack with ``restarts`` random starts where it has that setting."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(attack)}
    return dataclasses.replace(attack, restarts=restarts) if "restarts" in names and restarts > 1 else attack


def _curve_attack(ctx: Context, name: str, threat: ThreatModel):
    steps = ctx.spec.stages.curve.steps
    kw = {"steps": steps} if name not in ("fgsm", "square") else ({"n_queries": steps} if name == "square" else {})
    if name == "apgd-t":
        kw["n_targets"] = min(9, ctx.num_classes - 1)
    try:
        attack = registry.build(name, threat, **kw)
        eot = attack_eot(ctx, 1)
        return with_eot(attack, eot) if eot > 1 and supports_eot(attack) else attack
    except ConfigError as e:
        raise ConfigError(f"stages.curve.attacks: {e}") from None


def unbounded(ctx: Context, threat: ThreatModel) -> list[Finding]:
    """PGD with a budget covering the whole input box on a few correctly classified samples."""
    ch = ctx.spec.stages.checks
    lo, hi = ctx.clf.bounds
    d = int(np.prod(ctx.x.shape[1:]))
    scale = {"linf": 1.0, "l2": d ** 0.5, "l1": float(d)}[threat.norm]
    eps = ch.unbounded_eps if ch.unbounded_eps is not None else (hi - lo) * scale
    idx = np.nonzero(ctx.mask("clean_correct"))[0][:ch.unbounded_samples]
    if not len(idx):
        return []
    t = torch.as_tensor(idx)
    eot = max(ctx.spec.stages.pgd.eot, ctx.spec.stages.autoattack.eot if ctx.randomized else 1)
    attack = PGD(threat.with_eps(eps), steps=ch.unbounded_steps, loss="margin", eot=eot)
    r = attack(ctx.clf, ctx.x[t], ctx.y[t], generator=ctx.streams(f"{threat}/unbounded", idx),
               progress=rescaled(ctx.progress, f"{threat} unbounded check", 0, len(idx), len(idx)))
    acc = float((~r.success).float().mean())
    ctx.stats[f"{threat}/unbounded"] = {"eps": eps, "robust_accuracy": acc, "n": len(idx)}
    return checks.unbounded_findings(acc, threat, eps, ch.unbounded_max_accuracy)


def gradients(ctx: Context) -> list[Finding]:
    idx = np.nonzero(ctx.mask("clean_correct"))[0][:ctx.spec.stages.checks.gradient_samples]
    t = torch.as_tensor(idx, dtype=torch.long)
    return checks.gradient_findings(ctx.clf, ctx.x[t], ctx.y[t])


def certify(ctx: Context) -> dict | None:
    c = ctx.spec.certify
    if c is None:
        return None
    try:
        from ..smoothing.stage import run_certify_stage
    except ImportError as e:  # pragma: no cover - smoothing not installed
        ctx.findings.append(Finding("attack-unavailable", "info", f"certification skipped: {e}"))
        return None
    out = run_certify_stage(ctx.clf, ctx.x, ctx.y, sigma=c.sigma, n0=c.n0, n=c.n, alpha=c.alpha, radii=c.radii,
                            batch_size=c.batch_size, generator=ctx.generator("certify", 0), progress=ctx.progress)
    for name, column in (out.get("records") or {}).items():
        ctx.records[f"certify/{name}"] = np.asarray(column)
    return out


__all__ = ["preflight", "clean", "threat_attacks", "curve", "unbounded", "gradients", "certify"]
