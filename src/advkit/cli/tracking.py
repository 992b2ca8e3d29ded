"""``advkit evaluate --mlflow ...``: the options and the two calls that send an evaluation to MLflow.

The tracker is reached before the evaluation (a wrong run id or a missing ``mlflow`` package costs
nothing) and written to after the run directory and the history database (never a lost evaluation).
An unreachable tracker is exit 8 (:class:`~advkit.errors.TrackerUnreachable`), or a warning with
``--mlflow-optional`` (or ``optional = true`` in the spec's ``[mlflow]`` table).
"""
from __future__ import annotations

from dataclasses import dataclass

import click

from ..errors import ConfigError, TrackerUnreachable
from . import render

_OPTIONS = (
    ("--mlflow-optional", dict(is_flag=True, help="An unreachable MLflow server is a warning, not exit 8.")),
    ("--mlflow-run-name", dict(default=None, metavar="NAME", help="Name of the new MLflow run.")),
    ("--mlflow-run-id", dict(default=None, metavar="ID", help="Log into this existing MLflow run (e.g. the training "
                                                               "run of the checkpoint) instead of a new one "
                                                               "(env MLFLOW_RUN_ID).")),
    ("--mlflow-experiment", dict(default=None, metavar="NAME", help="MLflow experiment (env MLFLOW_EXPERIMENT_NAME; "
                                                                     "default advkit; created when missing).")),
    ("--mlflow-uri", dict(default=None, metavar="URI", help="MLflow tracking URI (env MLFLOW_TRACKING_URI).")),
    ("--mlflow", dict(is_flag=True, help="Log the evaluation to MLflow: params, metrics, tags, artifacts "
                                         "(pip install 'advkit[mlflow]').")),
)


def mlflow_options(fn):
    for name, kw in _OPTIONS:
        fn = click.option(name, **kw)(fn)
    return fn


@dataclass
class Tracking:
    tracker: object
    optional: bool


def _warn(e: Exception) -> None:
    from rich.markup import escape
    render.err_console.print(f"[yellow]warning:[/yellow] {escape(str(e))} (--mlflow-optional: the results are "
                             "only in the local history and run directory)", soft_wrap=True, highlight=False)


def open_tracking(spec, opts: dict) -> Tracking | None:
    """The MLflow tracker the options and the spec's ``[mlflow]`` table ask for, already reached; None when
    no tracking is asked for (or the tracker is unreachable and optional: a warning)."""
    section = spec.mlflow
    given = {k: opts.get(f"mlflow_{k}") for k in ("uri", "experiment", "run_id", "run_name")}
    if not (opts.get("mlflow") or section is not None or any(given.values())):
        return None
    from ..tracking.mlflow import MlflowTracker, Settings
    base = section or Settings()
    settings = Settings(tracking_uri=given["uri"] or getattr(base, "tracking_uri", None),
                        experiment=given["experiment"] or base.experiment,
                        run_id=given["run_id"] or base.run_id, run_name=given["run_name"] or base.run_name)
    optional = bool(opts.get("mlflow_optional") or getattr(section, "optional", False))
    tracker = MlflowTracker(settings)
    try:
        tracker.check()
    except TrackerUnreachable as e:
        if not optional:
            raise
        _warn(e)
        return None
    return Tracking(tracker, optional)


def log_to_tracker(tracking: Tracking | None, result: dict, out_dir, samples: dict, quiet: bool) -> None:
    """Send the finished evaluation (its result and run directory files) to the tracker."""
    if tracking is None:
        return
    local = f"the results are in the local history (run {result.get('run_id')}) and {out_dir}"
    try:
        run_id = tracking.tracker.log(result, out_dir, samples)
    except TrackerUnreachable as e:
        if not tracking.optional:
            raise TrackerUnreachable(f"{e}; {local}") from None
        _warn(e)
        return
    except ConfigError as e:  # refused, e.g. a parameter the attached run already holds with another value
        raise ConfigError(f"{e}; {local}") from None
    if not quiet:
        render.err_console.print(f"logged to MLflow run {run_id} at {tracking.tracker.where}", highlight=False)
