"""Findings: documented problems that checks report (``advkit list checks``).

A finding has a stable ``code``, a ``severity`` (info < warning < error) and a message that says
what was seen; the catalogue below says the usual cause and the remedy for each code.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    data: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        info = CATALOGUE.get(self.code)
        if info:
            d["cause"], d["remedy"] = info.cause, info.remedy
        return d


@dataclass(frozen=True)
class CheckInfo:
    code: str
    title: str
    cause: str
    remedy: str


CATALOGUE: dict[str, CheckInfo] = {}


def register_check(code: str, title: str, cause: str, remedy: str) -> CheckInfo:
    info = CheckInfo(code, title, cause, remedy)
    CATALOGUE[code] = info
    return info


register_check(
    "train-mode", "Model left in train mode",
    "The module was in train mode and has BatchNorm or Dropout layers, so its outputs depend on the batch.",
    "advkit evaluates in eval mode; call model.eval() yourself if you evaluate outside advkit.",
)
register_check(
    "probability-outputs", "Outputs look like probabilities",
    "Every output row is non-negative and sums to 1: the model ends in softmax. Attacks on saturated "
    "probabilities see vanishing gradients and overestimate robustness.",
    "Remove the final softmax so that the model returns logits.",
)
register_check(
    "randomized-model", "Randomized model",
    "Identical forward passes gave outputs that differ by more than 1e-4 of the logit norm (the official "
    "AutoAttack check). Gradient attacks without EOT overestimate robustness.",
    "Use EOT (expectation over transformation) attacks, e.g. the autoattack_rand preset.",
)
register_check(
    "input-range", "Inputs outside the model's bounds",
    "Data values fall outside the bounds the model declares (e.g. 0..255 data for a [0,1] model).",
    "Rescale the data or declare the right bounds on the Classifier.",
)
register_check(
    "reduced-budget", "AutoAttack below the reference budget",
    "AutoAttack ran with fewer iterations, queries, target classes or EOT draws than the official protocol "
    "(or without Square): the number is an upper bound of the reference AutoAttack number and is not "
    "comparable with published results. result.json's protocol entry lists the reasons.",
    "Use the reference budgets ([stages.autoattack] steps = 100, square_queries = 5000, n_targets and eot "
    "unset) for numbers you publish or gate on; keep reduced budgets for quick checks.",
)
