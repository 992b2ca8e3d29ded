"""Evaluation specs: the frozen dataclasses a TOML file (or CLI options) is validated into.

This module is the spec's data model; :mod:`advkit.evaluation.spec_load` reads and validates a file, a
dict or CLI options into it (every validation error names the key path that is wrong and says what was
expected and what was got: ``stages.pgd.steps: expected an integer >= 1, got "x"``; unknown keys are
errors).

Layout of a spec file (every key optional; see ``examples/*.toml``)::

    model = "zoo:mnist5k-standard"   weights = "w.safetensors"   data = "mnist5k"   split = "test"
    (or a [model] table: ref = "m.py:build" and [model.args] depth = 28, the factory's keyword arguments)
    profile = "cifar10"   (default: the zoo model's or the data REF's profile; "none" = no profile)
    n = 1000   seed = 0   batch_size = 250   threats = ["linf:0.3"] (a bare "linf"/"l2": the profile's budget;
    default: the profile's first threat)   output = "runs/x"   db = "advkit.db"
    device = "auto"|"cpu"|"cuda"|"cuda:1"   mean = [0.4914, 0.4822, 0.4465]   std = [0.2471, 0.2435, 0.2616]
    resize = 256   crop = 224   (image folders: shorter side resized, then centre-cropped)
    [stages.fgsm]       enabled
    [stages.pgd]        enabled, steps = 20, restarts = 5, step_size, eot
    [stages.autoattack] version = "auto"|"standard"|"rand"|"screening"|"off" (screening: the fast screening
                        protocol, not AutoAttack: APGD-CE → MALT-targeted APGD-T, L∞/L2), eot, steps, square_queries, n_targets,
                        skip_if_fgsm_breaks_all, survivors_only = false (true: a worst case, no AutoAttack row)
                        (unset = the reference budgets of advkit.attacks.presets;
                        anything below is labelled "reduced" and gets a reduced-budget finding)
    [stages.curve]      enabled, eps = [...], points, attacks, steps (default: the profile's grid for its standard
                        threat, else 0 … 2ε in ``points`` − 1 steps, 11 points), method = "fmn"|"per-point"
                        (fmn: one FMN run of fmn_steps, then the attacks only where they can change a point;
                        per-point: the attacks at every ε), fmn_steps = 10, probe_restarts = 2 (random
                        starts of each fixed-ε attack with the fmn method)
    [stages.per_class]  min_accuracy
    [stages.checks]     enabled, gradient_samples, unbounded_eps, unbounded_samples, unbounded_steps, ...
    [gates]             require = ["robust_accuracy[linf:0.3] >= 0.85", "grade[linf:0.3] >= strong"],
                        max_drop = 0.02 | "2pp", clean_floor, per_class_min, allow_upper_bound
    [certify]           sigma, n0, n, alpha, radii, batch_size
    [mlflow]            tracking_uri, experiment, run_id (attach to this run), run_name, optional: log the run to
                        MLflow (advkit.tracking.mlflow); not part of the spec hash
    [defense]           chain = "jpeg:75" (or "bits:3,median:3", a list of steps; see advkit.defenses.chain):
                        evaluate the model behind this preprocessing, naively and adaptively (BPDA/EOT)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field

from ..profiles.profile import NONE as NO_PROFILE
from ..profiles.profile import Profile, load_profile
from ..threat import ThreatModel

DEFAULT_MODEL = "zoo:mnist5k-standard"
DEFAULT_DATA = "mnist5k"
DEFAULT_THREAT = "linf:0.3"
DEFAULT_PROFILE = "mnist"  # the profile of DEFAULT_MODEL / DEFAULT_DATA
AA_VERSIONS = ("auto", "standard", "rand", "screening", "off")
CURVE_METHODS = ("fmn", "per-point")


@dataclass(frozen=True)
class FGSMStage:
    enabled: bool = True


@dataclass(frozen=True)
class PGDStage:
    enabled: bool = True
    steps: int = 20
    restarts: int = 5
    step_size: float | None = None  # None → 2.5·ε/steps
    eot: int = 1


@dataclass(frozen=True)
class AutoAttackStage:
    version: str = "auto"  # auto = standard, or rand when the model is randomized
    eot: int = 20
    steps: int = 100
    square_queries: int = 5000
    n_targets: int | None = None  # None → min(9, classes − 1)
    skip_if_fgsm_breaks_all: bool = False
    #: speed option: the members attack only FGSM's and PGD's survivors; reported as a worst case, never as
    #: AutoAttack (no ``autoattack`` row; docs/protocols.md)
    survivors_only: bool = False


@dataclass(frozen=True)
class CurveStage:
    enabled: bool = True
    eps: tuple[float, ...] | None = None  # None → the profile's grid, else 0 … 2ε in ``points`` − 1 equal steps
    points: int | None = None  # None → the profile's grid for its standard threat, else 11
    attacks: tuple[str, ...] = ("apgd-ce",)
    steps: int = 20
    method: str = "fmn"  # "fmn": one FMN run + the attacks only where they can change a point; "per-point"
    fmn_steps: int = 10
    probe_restarts: int = 2


@dataclass(frozen=True)
class PerClassStage:
    min_accuracy: float | None = None


@dataclass(frozen=True)
class ChecksStage:
    enabled: bool = True
    gradient_samples: int = 100
    unbounded_eps: float | None = None  # None → the whole input box
    unbounded_samples: int = 100
    unbounded_steps: int = 50
    unbounded_max_accuracy: float = 0.05
    blackbox_queries: int = 1000  # Square on survivors when AutoAttack did not run Square; 0 = off
    blackbox_tolerance: float = 0.0  # any sample only Square broke fires, as the official check
    fgsm_tolerance: float = 0.01
    gap_tolerance: float = 0.10
    monotone_tolerance: float = 0.01
    fgsm_survivors_min: float = 0.01


@dataclass(frozen=True)
class StagesSpec:
    fgsm: FGSMStage = FGSMStage()
    pgd: PGDStage = PGDStage()
    autoattack: AutoAttackStage = AutoAttackStage()
    curve: CurveStage = CurveStage()
    per_class: PerClassStage = PerClassStage()
    checks: ChecksStage = ChecksStage()


@dataclass(frozen=True)
class GatesSpec:
    require: tuple[str, ...] = ()
    max_drop: float | None = 0.02  # the regression rule: clean and each threat's robust accuracy
    clean_floor: float | None = None
    per_class_min: float | None = None  # every class, clean and under each threat, at least this
    allow_upper_bound: bool = False  # gate robust numbers that are only upper bounds (reduced/no AutoAttack)


@dataclass(frozen=True)
class CertifySpec:
    sigma: float = 0.25
    n0: int = 100
    n: int = 10000
    alpha: float = 0.001
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    batch_size: int = 1000


@dataclass(frozen=True)
class DefenseSection:
    """A declared preprocessing defense: ``chain`` is the canonical chain text (``"jpeg:75,median:3"``)."""

    chain: str


@dataclass(frozen=True)
class MlflowSection:
    """``[mlflow]``: log the evaluation to MLflow; None = the ``MLFLOW_*`` environment variable."""

    tracking_uri: str | None = None
    experiment: str | None = None
    run_id: str | None = None  # attach to this existing run (e.g. the checkpoint's training run)
    run_name: str | None = None
    optional: bool = False  # an unreachable tracker is a warning, not exit 8


@dataclass(frozen=True)
class EvaluationSpec:
    model: str = DEFAULT_MODEL
    #: keyword arguments of a factory REF (``[model.args]``, ``--model-arg``): in the model's name
    #: (:func:`advkit.sources.models.model_label`), so part of the run's identity; not of the spec hash
    model_args: dict = field(default_factory=dict)
    weights: str | None = None
    trust_pickle: bool = False
    #: accept an L∞ ε that covers the whole input range (threat.check_budget)
    force_eps: bool = False
    data: str = DEFAULT_DATA
    split: str = "test"
    n: int = 1000
    seed: int = 0
    batch_size: int = 250
    threats: tuple[ThreatModel, ...] = (ThreatModel.parse(DEFAULT_THREAT),)
    stages: StagesSpec = StagesSpec()
    gates: GatesSpec = GatesSpec()
    certify: CertifySpec | None = None
    defense: DefenseSection | None = None
    mlflow: MlflowSection | None = None
    output: str | None = None
    db: str | None = "advkit.db"
    device: str | None = None  # None → the rank's GPU under torchrun, else CUDA when available, else CPU
    mean: tuple[float, ...] | None = None  # per-channel normalisation the model expects (Classifier buffers)
    std: tuple[float, ...] | None = None
    resize: int | None = None  # image folders: resize the shorter side to this many pixels
    crop: int | None = None  # then take the centre crop of this size
    profile: str | None = DEFAULT_PROFILE  # None = no profile: no grades, the generic curve
    #: the keys whose values were derived (profile from the REFs, threats from the profile), not given;
    #: :func:`with_options` derives them again when the model, data or profile changes
    derived: tuple[str, ...] = field(default=("profile", "threats"), compare=False, repr=False)

    def to_dict(self) -> dict:
        """The spec as plain data (result.json, history); a database URL's password is masked."""
        from ..results.backends import display

        d = _spec_data(self)
        if d.get("db"):
            d["db"] = display(d["db"])
        if (d.get("mlflow") or {}).get("tracking_uri"):
            d["mlflow"]["tracking_uri"] = re.sub(r"//([^/:@]*):[^/@]*@", r"//\1:***@", d["mlflow"]["tracking_uri"])
        return d

    def profile_obj(self) -> Profile | None:
        return load_profile(self.profile) if self.profile else None

    def spec_hash(self) -> str:
        """sha256 of the evaluation protocol: not the model's weights (a new version of the same model
        keeps its spec, so it is compared with the last one), output paths, gates or the DB."""
        d = self.to_dict()
        for k in ("weights", "output", "db", "gates", "trust_pickle", "force_eps", "device", "model_args",
                  "mlflow"):
            d.pop(k, None)
        if d.get("defense") is None:
            d.pop("defense", None)  # specs without a defense keep the hash they had before [defense] existed
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def curve_eps(self, threat: ThreatModel) -> tuple[float, ...]:
        c = self.stages.curve
        if c.eps is not None:
            return tuple(sorted(c.eps))
        entry = self.profile_obj().for_threat(threat) if self.profile and c.points is None else None
        if entry is not None:
            return entry.curve
        points = c.points or 11
        if points == 1:
            return (threat.eps,)
        return tuple(round(2 * threat.eps * i / (points - 1), 12) for i in range(points))


def _spec_data(spec: EvaluationSpec) -> dict:
    """The spec as a spec document: without ``derived``; an explicit "no profile" as ``profile = "none"``."""
    d = _plain(spec)
    d.pop("derived")
    for k in ("model_args", "mlflow"):
        if not d[k]:
            d.pop(k)  # results and hashes of specs without them stay as they were
    if spec.profile is None and "profile" not in spec.derived:
        d["profile"] = NO_PROFILE
    return d


def _plain(v):
    if isinstance(v, ThreatModel):
        return str(v)
    if dataclasses.is_dataclass(v):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
