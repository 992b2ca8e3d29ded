"""The attack contract.

``Attack.__call__`` is final and owns everything but the math (DESIGN principle 3):
validate input → eval mode → skip already-misclassified samples → run ``_run`` per batch → project onto
the ε-ball ∩ box (a move > ``PROJECTION_TOL`` is an :class:`~advkit.errors.AttackBug` in strict mode,
``ADVKIT_STRICT=1``) → verify success with a fresh forward pass of the module (never a faster copy; a copy's
successes inside ``_run`` are confirmed on the module too) → :class:`AttackResult`.  On a randomized model
success is decided on a single draw, as the official AutoAttack decides it (``run_standard_evaluation``).
Subclasses are frozen dataclasses (their fields are the configuration) and implement ``_run(oracle, x, y,
targets, generator)``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import rng
from ..errors import AttackBug, ConfigError
from ..faults import check_finite
from ..losses import margin
from ..model import Classifier, as_classifier
from ..progress import NULL, ProgressFn
from ..batching import run_in_batches
from ..threat import ThreatModel
from .fastpath import BORDER_TOL
from .oracle import Oracle, current_oracle
from .result import AttackResult

log = logging.getLogger(__name__)
PROJECTION_TOL = 1e-6


def strict() -> bool:
    return os.environ.get("ADVKIT_STRICT", "") == "1"


def _config_value(v):
    if isinstance(v, ThreatModel):
        return str(v)
    if isinstance(v, Attack):
        return v.describe()
    if isinstance(v, (list, tuple)):
        return [_config_value(i) for i in v]
    return v


def require_int(obj, *names: str, minimum: int = 1) -> None:
    """Raise :class:`ConfigError` unless each field ``names`` of ``obj`` is an integer >= ``minimum``."""
    for key in names:
        v = getattr(obj, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise ConfigError(f"{key} must be an integer >= {minimum}, got {v!r}")


def check_n_targets(attack, num_classes: int, targets) -> None:
    """Reject explicit ``targets`` alongside ``n_targets`` > 0, and ``n_targets`` >= ``num_classes``."""
    if attack.n_targets and targets is not None:
        raise ConfigError(f"{attack.name}: n_targets={attack.n_targets} picks its own targets; got explicit targets too")
    if attack.n_targets >= num_classes:
        raise ConfigError(f"{attack.name}: n_targets must be < the number of classes ({num_classes}), "
                          f"got {attack.n_targets}")


#: attacks on CPU work in batches of this many samples unless told otherwise: per-image pass costs
#: grow with the batch once activations leave the cache (benchmarks/bench_passes.py: SmallCNN
#: forward+backward 203 µs per image at 100, 282 µs at 400)
CPU_BATCH_SIZE = 128


def default_batch_size(device: torch.device, n: int) -> int:
    """``CPU_BATCH_SIZE`` on CPU; the whole input on accelerators (halved on out-of-memory, advkit/batching.py)."""
    return max(1, min(n, CPU_BATCH_SIZE) if device.type == "cpu" else n)


def derive_generator(generator, device: torch.device):
    """A generator on ``device`` seeded from ``generator`` (or fresh entropy); never the global RNG.
    Per-sample streams (:class:`advkit.rng.SampleStreams`) spawn fresh per-sample streams on ``device``."""
    if rng.is_stream(generator):
        return generator.spawn().to(device)  # spawned where the caller holds it: its counters advance
    g = torch.Generator(device=device)
    if generator is None:
        g.seed()
    else:
        g.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()))
    return g


@dataclass(frozen=True)
class Attack:
    """Base of every attack.  Subclasses set ``name`` and implement ``_run``."""

    name: ClassVar[str] = "attack"
    #: True when the algorithm needs gradients; False for black-box (score-based) attacks.
    uses_gradients: ClassVar[bool] = True
    #: True when the attack draws random numbers.
    randomized: ClassVar[bool] = True
    #: Min-norm attacks return the clean point where they fail.
    clean_on_failure: ClassVar[bool] = False

    @property
    def norm(self) -> str:
        raise NotImplementedError

    @property
    def eps(self) -> float | None:
        raise NotImplementedError

    @property
    def eot(self) -> int:
        return 1

    @property
    def success_margin(self) -> float:
        """Margin the independent check requires (C&W's κ); 0 means plain argmax."""
        return 0.0

    def describe(self) -> dict:
        cfg = {"name": self.name}
        for f in dataclasses.fields(self):
            cfg[f.name] = _config_value(getattr(self, f.name))
        return cfg

    # ------------------------------------------------------------------ the contract
    def expected_passes(self) -> int:
        """About how many batched model passes one batch takes: steps × restarts × targets (or queries,
        or C&W's binary search × iterations).  Only drives progress and ETA; early stops end sooner."""
        f = lambda k: getattr(self, k, 0) or 0  # noqa: E731
        iters = f("steps") or f("n_queries") or (f("binary_search_steps") * f("max_iterations")) or 1
        return max(1, iters * max(1, f("restarts")) * max(1, f("n_targets")))

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, *, targets: torch.Tensor | None = None,
                 generator: torch.Generator | rng.SampleStreams | None = None, batch_size: int | None = None,
                 progress: ProgressFn = NULL) -> AttackResult:
        """Attack ``x`` (labels ``y``; ``targets`` for targeted attacks) in batches of ``batch_size``
        (default :func:`default_batch_size`); randomness only from ``generator``: a ``torch.Generator``
        (one stream for the batch), or :class:`advkit.rng.SampleStreams` over the ``len(x)`` samples (one
        stream per sample: each sample's result is then the same alone, in any batch and at any batch
        size, on a deterministic model).  ``progress(name, done, len(x))`` hears about every iteration
        (``done`` counts samples, fractional within a batch)."""
        clf = as_classifier(model)
        clf.check_inputs(x, y, targets=targets)
        num_classes = clf.infer_num_classes(x)
        clf._check_labels("y", y, len(x))
        if targets is not None:
            clf._check_labels("targets", targets, len(x))
        self._validate(num_classes, targets)
        rng.check_length(generator, len(x))
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        device = clf.device
        gen = derive_generator(generator, device) if self.randomized else None
        start = time.perf_counter()
        oracle = Oracle(clf, eot=self.eot)
        bs = batch_size or default_batch_size(device, len(x))
        def one(sl: slice):
            tb = None if targets is None else targets[sl].to(device)
            oracle.on_pass = self._reporter(progress, oracle, sl.start, sl.stop - sl.start, len(x))
            # per-sample streams: a copy per attempt, so a batch retried after out-of-memory replays its draws
            g = gen.subset(sl).copy() if rng.is_stream(gen) else gen
            out = self._attack_batch(oracle, clf, x[sl].to(device, clf.dtype), y[sl].to(device), tb, g)
            progress(self.name, sl.stop, len(x))
            return out
        with clf.inference(), oracle.running():  # on out-of-memory the batch is halved (advkit/batching.py)
            outs = run_in_batches(one, len(x), bs, device, what=self.name)
        oracle.on_pass = None
        return self._result(x, outs, oracle, start)

    def _result(self, x: torch.Tensor, outs: list, oracle: Oracle, start: float) -> AttackResult:
        """The batches' ``(x_adv, success, predictions)`` joined in input order, on ``x``'s device."""
        x_adv = torch.cat([o[0] for o in outs]).to(x.device, x.dtype) if outs else x.clone()
        success = torch.cat([o[1] for o in outs]).to(x.device) if outs else torch.zeros(0, dtype=torch.bool)
        preds = torch.cat([o[2] for o in outs]).to(x.device) if outs else torch.zeros(0, dtype=torch.long)
        dist = ThreatModel(self.norm, 0).distance(x_adv, x) if len(x) else torch.zeros(0)
        return AttackResult(x_adv=x_adv, success=success, distance=dist, predictions=preds,
                            model_calls=oracle.calls, gradient_calls=oracle.grads,
                            seconds=time.perf_counter() - start, config=self.describe())

    def _reporter(self, progress: ProgressFn, oracle: Oracle, start: int, size: int, total: int):
        if progress is NULL:
            return None
        first, budget = oracle.passes, self.expected_passes()
        return lambda: progress(self.name, start + size * min((oracle.passes - first) / budget, 0.99), total)

    def _validate(self, num_classes: int, targets) -> None:
        """Subclasses may reject configurations (e.g. DLR with < 3 classes)."""

    def _is_success(self, z: torch.Tensor, y: torch.Tensor, targets) -> torch.Tensor:
        """Success on logits ``z``; a success a faster copy's ``z`` shows is confirmed on the module (``Oracle.confirm``)."""
        return self._confirmed(z, self._decide(z, y, targets), y, targets)

    def _confirmed(self, z: torch.Tensor, success: torch.Tensor, y: torch.Tensor, targets) -> torch.Tensor:
        """``success`` (of the rows of ``z``) with each success a faster copy's ``z`` shows confirmed on the module."""
        return current_oracle().confirm(z, success, lambda zr, rows: self._decide(
            zr, y[rows], None if targets is None else targets[rows]))

    def _decide(self, z: torch.Tensor, y: torch.Tensor, targets) -> torch.Tensor:
        m, kappa = margin(z, y, targets), self.success_margin
        return m > 0 if kappa <= 0 else m >= kappa

    def _attack_batch(self, oracle: Oracle, clf: Classifier, x, y, targets, gen):
        first = self._first_pass(oracle, x, y, targets, gen)
        z0 = oracle.draw(x) if first is None else first[0]
        check_finite(z0, clf.name, f"the clean check of attack {self.name!r}")
        done = self._checked_success(oracle, x, z0, y, targets)
        x_adv = x.clone()
        todo = (~done).nonzero().flatten()
        if len(todo):
            tt = None if targets is None else targets[todo]
            cand = self._run(oracle, x[todo], y[todo], tt, rng.take(gen, todo)) if first is None else first[1][todo]
            x_adv[todo] = self._finalize(cand.detach(), x[todo], clf.bounds)
        z = oracle.draw(x_adv)
        check_finite(z, clf.name, f"the success check of attack {self.name!r}")
        success = self._checked_success(oracle, x_adv, z, y, targets)
        if self.clean_on_failure:
            keep = success.view(-1, *([1] * (x.dim() - 1)))
            x_adv = torch.where(keep, x_adv, x)
            z = torch.where(success.view(-1, 1), z, z0)
        return x_adv, success, z.argmax(1)

    def _checked_success(self, oracle: Oracle, x, z, y, targets) -> torch.Tensor:
        """Success from logits ``z``; when a faster copy of the model served them (fastpath.py), rows within
        ``BORDER_TOL`` of the decision boundary are re-run on the module (``z`` updated), successes too."""
        if oracle.from_copy(z) and len(x):
            m = margin(z, y, targets) - max(self.success_margin, 0.0)
            near = (m.abs() <= BORDER_TOL * z.abs().amax(1).clamp_min(1.0)).nonzero().flatten()
            if len(near):
                z[near] = oracle.exact_logits(x[near])
                oracle.mark_exact(z, near)
        return self._is_success(z, y, targets)

    def _first_pass(self, oracle: Oracle, x, y, targets, gen):
        """Optional: ``(clean logits, candidates)`` when the first pass is at x itself (FGSM); else None."""
        return None

    def _finalize(self, x_adv: torch.Tensor, x: torch.Tensor, bounds) -> torch.Tensor:
        """Project onto the ε-ball ∩ box; in strict mode, a move > PROJECTION_TOL is a bug."""
        eps = self.eps
        proj = x_adv.clamp(*bounds) if eps is None else ThreatModel(self.norm, eps).project(x_adv, x, bounds)
        moved = (proj - x_adv).abs().max().item() if x_adv.numel() else 0.0
        if moved > PROJECTION_TOL:
            msg = f"{self.name}: final projection moved a point by {moved:.3g} (> {PROJECTION_TOL})"
            if strict():
                raise AttackBug(msg)
            log.debug(msg)
        return proj

    def _run(self, oracle: Oracle, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None,
             generator) -> torch.Tensor:
        """The algorithm: return candidate adversarial points for the (not yet broken) batch.  ``generator``
        is a ``torch.Generator`` or per-sample streams over the rows of ``x``: draw through :mod:`advkit.rng`
        and pass ``rng.take(generator, rows)`` along with any subset of the rows."""
        raise NotImplementedError


@dataclass(frozen=True)
class BudgetedAttack(Attack):
    """An attack that searches inside a fixed threat model (ε-ball ∩ box)."""

    threat: ThreatModel = ThreatModel("linf", 0.3)

    def __post_init__(self):
        if isinstance(self.threat, str):
            object.__setattr__(self, "threat", ThreatModel.parse(self.threat))
        if not isinstance(self.threat, ThreatModel):
            raise ConfigError(f"threat must be a ThreatModel or text like 'linf:0.3', got {self.threat!r}")

    @property
    def norm(self) -> str:
        return self.threat.norm

    @property
    def eps(self) -> float:
        return self.threat.eps


@dataclass(frozen=True)
class MinNormAttack(Attack):
    """An attack that looks for the smallest perturbation in ``norm`` that changes the decision.

    With ``max_eps`` set, only points within that budget count as successes (others return x).
    """

    clean_on_failure: ClassVar[bool] = True

    norm: str = "l2"  # a field here, shadowing Attack.norm
    max_eps: float | None = None

    def __post_init__(self):
        tm = ThreatModel(self.norm, self.max_eps or 0.0)  # validates both
        object.__setattr__(self, "norm", tm.norm)

    @property
    def eps(self) -> float | None:
        return self.max_eps
