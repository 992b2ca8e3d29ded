"""CI gates: thresholds on a result's metrics and regressions against a baseline run.

A threshold gate is ``METRIC OP VALUE``::

    clean_accuracy >= 0.95
    robust_accuracy[linf:0.3] >= 85%
    attacks.pgd.robust_accuracy[linf:0.3] > 0.9
    per_class_min[linf:0.3] >= 0.5          (weakest class; per_class_min alone = clean)
    certified_accuracy[0.5] >= 0.6          (randomized smoothing, radius 0.5)
    grade[linf:8/255] >= strong             (the grade on the result's domain profile; advkit.gates.grade)

``OP`` is one of ``>= > <= <``; ``VALUE`` a fraction (0.85) or a percentage (85%).  A regression
gate (``max_drop``: ``--max-drop 2pp`` or the spec's ``gates.max_drop``) has one meaning wherever it is
used (``evaluate``, ``gate``, ``history compare``): the clean accuracy and each threat's robust
accuracy may fall by at most the allowed drop against a baseline run; a threat the baseline lacks
fails the gate instead of being skipped.

A gate on a threat's numbers reads the headline robust accuracy, which is the protocol's number only
when AutoAttack ran with its reference composition and budgets and the evaluation is trusted
(:func:`advkit.results.protocol.protocol_status`, ``trusted``).  Otherwise it is an upper bound, and the gate
fails unless the caller opts in (``allow_upper_bound=True``, ``--allow-upper-bound``).

Every accuracy is an estimate from ``n`` samples.  When a gate's margin lies inside the 95%
interval (for a threshold: the interval the result recorded, else Clopper & Pearson 1934; for a
regression: the normal interval of a difference of two independent proportions) the gate is flagged
``noisy`` (:func:`noise_findings` turns such items into ``gate-noise`` findings; library callers get a
:class:`GateNoiseWarning`): more samples are needed before the verdict means much.

The package: :mod:`.expressions` (parsing, defaults, validation against a spec), :mod:`.threshold`
(a gate against one result), :mod:`.regression` (against a baseline), :mod:`.grade` (grade gates),
:mod:`.verdict` (:class:`GateItem`, :class:`GateReport`) and :mod:`.check` (a list of gates → a report).
"""
from __future__ import annotations

from .check import check_gates, gates_to_junit, noise_findings
from .expressions import (DEFAULT_CLEAN_FLOOR, DEFAULT_MAX_DROP, Gate, GateLike, RegressionGate, default_gates,
                          parse_drop, parse_gate, parse_value, per_class_gates, validate_gates)
from .grade import GradeGate
from .threshold import metric_value
from .verdict import GateItem, GateReport

__all__ = ["Gate", "RegressionGate", "GradeGate", "GateItem", "GateReport", "parse_gate", "parse_drop",
           "check_gates", "default_gates", "metric_value", "gates_to_junit", "validate_gates", "noise_findings",
           "per_class_gates", "DEFAULT_CLEAN_FLOOR", "DEFAULT_MAX_DROP"]
