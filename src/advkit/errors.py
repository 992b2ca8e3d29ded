"""The exception and warning tree of advkit.

Every error a user can cause is a subclass of :class:`AdvkitError`; the message says
what was expected and what was got.  Nothing in the library uses ``assert`` for user input.
"""
from __future__ import annotations


class AdvkitError(Exception):
    """Base class of every advkit error."""


class ConfigError(AdvkitError, ValueError):
    """A configuration value (spec, threat model, attack parameter) is invalid."""


class InputError(AdvkitError, ValueError):
    """Input tensors are malformed: NaN/inf, out of bounds, wrong shape, bad labels."""


class ModelError(AdvkitError):
    """A model cannot be loaded or behaves in a way advkit cannot evaluate honestly."""


class ModelFault(ModelError):
    """The model misbehaved while advkit ran it: non-finite logits, an exception (or ``SystemExit``)
    raised by the model's own code, or logits of the wrong shape on some batch.  The message names the
    model REF and what happened.  The CLI maps it to exit code 6 (a model that cannot be loaded is a
    plain :class:`ModelError`, exit code 2)."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint needs arbitrary code execution to load and trust was not granted."""


class DataError(AdvkitError):
    """A data source is missing, malformed or unavailable offline."""


class StoreError(AdvkitError):
    """The history database or a result file cannot be read or written."""


class StoreWriteError(StoreError):
    """A result file or the history database could not be written (disk full, I/O error).  The run is
    never recorded as complete.  The CLI maps it to exit code 7."""


class RunLockedError(StoreError):
    """Another live process holds the writer lock of a history run."""


class EvaluationAborted(AdvkitError):
    """An evaluation stopped because a pre-flight check found an error-severity problem."""

    def __init__(self, message: str, findings: list | None = None):
        super().__init__(message)
        self.findings = list(findings or [])


class TrainingStalled(AdvkitError):
    """A training run stayed at chance level (or its loss diverged); no model file was written.

    ``history`` holds the per-epoch records up to the stop, ``cause`` the likely cause in words.
    The CLI maps it to exit code 5.
    """

    def __init__(self, message: str, history: list | None = None, cause: str = ""):
        super().__init__(message)
        self.history = list(history or [])
        self.cause = cause


class TrackerUnreachable(AdvkitError):
    """The experiment tracker (MLflow) could not be reached or refused the upload; the evaluation's
    results are already in the local history and run directory.  The CLI maps it to exit code 8."""


class PeerFailed(EvaluationAborted):
    """Another process of a sharded (torchrun) evaluation died; the run stays resumable."""


class AttackBug(AdvkitError, RuntimeError):
    """An attack produced a point outside its threat model (an internal bug, never user error)."""


class AdvkitWarning(UserWarning):
    """Base class of advkit warnings."""


class TrainModeWarning(AdvkitWarning):
    """The wrapped module was in train mode and has BatchNorm/Dropout layers."""


class ProbabilityOutputWarning(AdvkitWarning):
    """The model's outputs look like probabilities, not logits."""


class RandomizedModelWarning(AdvkitWarning):
    """Two identical forward passes disagree: the model is randomized (use EOT)."""


class BatchSizeReducedWarning(AdvkitWarning):
    """A batch did not fit the device's memory; the batch size was halved and the work continued."""


class GateNoiseWarning(AdvkitWarning):
    """A gate's margin lies inside the sampling confidence interval."""
