"""``evaluate(spec)``: model → a trustworthy robustness result, history record and gate verdict.

The protocol follows Carlini et al. (2019), "On evaluating adversarial robustness", and Croce & Hein
(2020) (AutoAttack): pre-flight checks, clean accuracy, FGSM sanity check, PGD with restarts,
AutoAttack, a robustness curve, per-class robust accuracy and checks for a flawed evaluation; each
threat's robust accuracy is the per-sample worst case over every attack run.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import numpy as np

from .. import distributed as D
from ..errors import EvaluationAborted, PeerFailed, RunLockedError, StoreError
from ..model import resolve_classes
from ..profiles import annotate as grade_result
from ..progress import NULL, ProgressFn
from ..results.locks import RunLock, is_stale, locked_message
from ..threat import check_budget
from . import aggregate, checks, defended, sharding, stages, trust
from .context import Context
from .run_info import (check_resumable, code_version, data_digest, environment, gates_section, load_inputs,
                       model_digest, validate_gates)
from .spec import EvaluationSpec

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """The ``result.json`` dict, the per-sample arrays (``samples.npz``) and the history run id."""

    result: dict
    samples: dict = field(repr=False)
    run_id: int | None = None

    @property
    def passed(self) -> bool:
        return bool((self.result.get("gates") or {}).get("passed", True))

    @property
    def findings(self) -> list[dict]:
        return self.result.get("findings", [])


def evaluate(spec: EvaluationSpec, *, progress: ProgressFn = NULL, store=None, resume: bool = False,
             model=None, data=None, publish=None) -> EvaluationResult:
    """Run every stage of ``spec``; ``model``/``data`` (a Classifier / Dataset) bypass the REFs.

    With a ``store``, the run holds its writer lock (:class:`~advkit.results.locks.RunLock`) while it
    works; ``resume`` continues the unfinished run of this spec only when its weights, data and code
    are the same (else :class:`~advkit.errors.ConfigError`) and no live process holds it
    (else :class:`~advkit.errors.RunLockedError`).  ``publish(result, samples)`` (the CLI's writer of the run
    folder) runs before the run is recorded as complete: a run whose files could not be written is failed.
    """
    validate_gates(spec)
    clf, ds = _inputs(spec, model, data)
    num_classes, classes = resolve_classes(clf, ds.x, ds.y, getattr(ds, "classes", ()))
    meta = _identity(spec, model, clf, ds, progress)
    naive = None
    if spec.defense is not None:
        clf, naive, chain = defended.build_models(spec, clf)
        meta["model"] = f"{meta['model']} + {chain.name}"  # its own line in the history and its own baselines
    run_id = sharding.share(_open_run(store, spec, meta, resume, clf.device) if D.is_main() else None)
    locked = store is not None and D.is_main()  # rank 0 holds the run's lock; every rank writes its batches
    with RunLock(store, run_id) if locked else contextlib.nullcontext():
        if locked:
            store.set_status(run_id, "running")
        ctx = Context(spec, clf, ds.x, ds.y, np.arange(len(ds.y)), num_classes, classes, progress, store, run_id,
                      mode="plain" if naive is None else "adaptive")
        try:
            result = _result(ctx, None if naive is None else (naive, chain), meta, store)
            if not D.is_main():  # rank 0 alone grades, checks the gates and writes the history row (torchrun)
                return EvaluationResult(result, dict(ctx.records), run_id)
            samples = _publish(ctx, result, publish)
        except EvaluationAborted as e:  # a dead peer process leaves the run resumable (sharding.py)
            _mark(store, run_id, "failed" if isinstance(e, PeerFailed) else "aborted")
            raise
        except BaseException:
            _mark(store, run_id, "failed")
            raise
        _finish(store, run_id, result)  # complete only now that every artifact is written
    return EvaluationResult(result, samples, run_id)


def _inputs(spec: EvaluationSpec, model, data):
    """The classifier and the data subset the spec evaluates; an L∞ ε covering the input range is refused."""
    clf, ds = load_inputs(spec, model, data)
    for threat in spec.threats:
        check_budget(threat, clf.bounds, force=spec.force_eps)
    return clf, (ds.subset(spec.n) if hasattr(ds, "subset") else ds)


def _identity(spec: EvaluationSpec, model, clf, ds, progress: ProgressFn) -> dict:
    """What identifies the run: model name and content hash, code version, spec hash, data content hash."""
    return {"model": clf.name if model is None else getattr(clf, "name", spec.model),  # REF + factory arguments
            "model_hash": model_digest(clf), "code_version": code_version(), "spec_hash": spec.spec_hash(),
            # the data's content hash is read on rank 0 only (streamed data: every file once)
            "data_hash": data_digest(ds.x, ds.y, progress) if D.is_main() else None}


def _result(ctx: Context, defense, meta: dict, store) -> dict:
    """Run the stages into the result dict; on rank 0 also grade it and check the spec's gates."""
    spec = ctx.spec
    result = _run_stages(ctx, defense)
    result.update(meta, run_id=ctx.run_id, data=spec.data, split=spec.split, n=ctx.n, seed=spec.seed,
                  weights=spec.weights, spec=spec.to_dict(), resumed_batches=sharding.total(ctx.resumed_batches))
    if D.is_main():
        grade_result(result, spec.profile)
        result["gates"] = gates_section(spec, result, store, meta, ctx.run_id)
    return result


def _publish(ctx: Context, result: dict, publish) -> dict:
    """The per-sample arrays, handed with the result to ``publish`` (the run folder's writer), if any."""
    samples = {**ctx.records, **aggregate.gallery(ctx), **aggregate.adversarial_examples(ctx)}
    if publish is not None:
        publish(result, samples)
    return samples


def _finish(store, run_id, result: dict) -> None:
    if store is None:
        return
    try:
        store.finish_run(run_id, result)
    except BaseException:  # e.g. the database's disk is full: failed (resumable), never complete
        _mark(store, run_id, "failed")
        raise


def _mark(store, run_id, status: str) -> None:
    """Record a run's end state; when the database cannot take even that (full disk), the run stays
    'running' (resumable once its lock is stale) and the original error is the one reported."""
    if store is None:
        return
    try:
        store.set_status(run_id, status)
    except StoreError as e:
        log.warning("run %s could not be marked %s: %s", run_id, status, e)


def _run_stages(ctx: Context, defense=None) -> dict:
    """The stages; with a declared ``defense`` = (naive model, chain), ``ctx.clf`` is the adaptive model
    and the naive pass runs first (:mod:`advkit.evaluation.defended`)."""
    pre = stages.preflight(ctx)
    ctx.findings.extend(pre)
    ctx.randomized = ctx.randomized or bool(defense and defense[1].randomized)
    stages.clean(ctx)
    ctx.findings.extend(checks.chance_findings(ctx.records["clean_correct"], ctx.records["label"], ctx.num_classes))
    naive = defended.naive_pass(ctx, defense[0]) if defense else {}
    threats, infos = {}, {}
    for threat in ctx.spec.threats:
        info = infos[str(threat)] = stages.threat_attacks(ctx, threat)
        cinfo = stages.curve(ctx, threat) if ctx.spec.stages.curve.enabled else None
        info["extra"] = naive[str(threat)]["names"] if naive else []
        threats[str(threat)] = summary = aggregate.threat_summary(ctx, threat, info, cinfo)
        aggregate.threat_findings(ctx, threat, summary, info)
        if naive:
            defended.attach(ctx, threat, summary, info, naive[str(threat)], defense[1])
        if ctx.spec.stages.checks.enabled:
            ctx.findings.extend(sharding.on_main(ctx, stages.unbounded, ctx, threat))
    if ctx.spec.stages.checks.enabled:
        ctx.findings.extend(sharding.on_main(ctx, stages.gradients, ctx))
    aggregate.eot_findings(ctx, infos)
    certified = sharding.on_main(ctx, stages.certify, ctx)
    ctx.findings.extend(checks.certify_findings(certified, threats))
    findings = _unique(ctx.findings)
    trust.mark(threats, findings)
    return {"preflight": [f.to_dict() for f in pre], "clean": aggregate.clean_summary(ctx), "threats": threats,
            "defense": _defense_section(defense),
            "robust_accuracy": {k: t["robust_accuracy"] for k, t in threats.items()},
            "curve": {k: dict(zip(map(str, t["curve"]["eps"]), t["curve"]["robust_accuracy"]))
                      for k, t in threats.items() if t["curve"]},
            "certify": certified, "findings": findings, "timings": dict(ctx.timings),
            "checks": {k: v for k, v in ctx.stats.items() if k.endswith("/unbounded")},
            "randomized_model": ctx.randomized, **environment(ctx.clf.device)}


def _defense_section(defense) -> dict | None:
    if not defense:
        return None
    chain = defense[1]
    return {"chain": chain.name, "randomized": bool(chain.randomized), "differentiable": bool(chain.differentiable),
            "steps": [s.name for s in chain.steps]}


def _unique(findings) -> list[dict]:
    seen, out = set(), []
    for f in findings:
        key = (f.code, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f.to_dict())
    return out


def _open_run(store, spec: EvaluationSpec, meta: dict, resume: bool, device=None) -> int | None:
    """The run to write into: with ``resume``, the unfinished run of this spec (same weights, data and code
    or a ConfigError); else, or when there is none, a new run."""
    if store is None:
        return None
    if resume:
        row = store.find_resumable(meta["spec_hash"])
        if row is not None:
            holder = store.lock_holder(row["run_id"])
            if holder is not None and not is_stale(holder):  # checked again atomically when the lock is taken
                raise RunLockedError(locked_message(row["run_id"], holder))
            check_resumable(row, meta)
            log.info("resuming run %s (%d batches stored)", row["run_id"], store.count_batches(row["run_id"]))
            return int(row["run_id"])
    env = environment(device)
    return store.begin_run(model=meta["model"], model_ref=spec.model, model_hash=meta["model_hash"],
                           spec_hash=meta["spec_hash"], seed=spec.seed, spec=spec.to_dict(),
                           versions=env["environment"], git_commit=env["environment"].get("git_commit"),
                           data_hash=meta["data_hash"], code_version=meta["code_version"])


__all__ = ["evaluate", "EvaluationResult"]
