"""Log an evaluation as an MLflow run (the optional extra ``advkit[mlflow]``).

Where to: ``tracking_uri`` (else ``MLFLOW_TRACKING_URI``, else MLflow's default), ``experiment`` (else
``MLFLOW_EXPERIMENT_NAME``, else the experiment ``MLFLOW_EXPERIMENT_ID`` names, else ``advkit``; created
when missing) and, to attach the evaluation to an
existing run such as the training run of the checkpoint, ``run_id`` (else ``MLFLOW_RUN_ID``): the
values of :mod:`advkit.tracking.values` are logged into that run, which is left as it was; otherwise a
new run is created and ended FINISHED.  Artifacts go under ``advkit/`` in the run: result.json,
report.html, report.md and the report's plots (``advkit/plots``).

:meth:`MlflowTracker.check` runs before the evaluation (a wrong run id is a :class:`ConfigError`, exit 2,
before any attack runs); :meth:`MlflowTracker.log` after the results are written locally.  A tracker
that cannot be reached raises :class:`~advkit.errors.TrackerUnreachable` (exit 8); MLflow's HTTP retries
default to 2 with backoff factor 1 and a 30 s timeout unless ``MLFLOW_HTTP_REQUEST_*`` say otherwise.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, TrackerUnreachable
from . import values

DEFAULT_EXPERIMENT = "advkit"
ARTIFACTS = ("result.json", "report.html", "report.md")
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: MLflow error codes that mean "the request was wrong", not "the tracker is unreachable"
_REFUSED = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE",
            "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED", "UNAUTHENTICATED")
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's log_batch limits per request


@dataclass(frozen=True)
class Settings:
    """Where to log; None = the standard ``MLFLOW_*`` environment variable, else MLflow's default."""

    tracking_uri: str | None = None
    experiment: str | None = None
    run_id: str | None = None
    run_name: str | None = None


def _client(uri: str | None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ConfigError("--mlflow: expected the mlflow package (pip install 'advkit[mlflow]'), got it not "
                          "installed") from None
    return MlflowClient(tracking_uri=uri)


@contextlib.contextmanager
def _http_defaults():
    """Bounded retries while advkit talks to the tracker (the user's MLFLOW_HTTP_REQUEST_* win)."""
    added = {k: v for k, v in HTTP_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)  # one error line, not one warning per retry
    try:
        yield
    finally:
        pool.setLevel(level)
        for k in added:
            os.environ.pop(k, None)


class MlflowTracker:
    """One evaluation's MLflow run: :meth:`check` before the evaluation, :meth:`log` after it."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.attach = settings.run_id or os.environ.get("MLFLOW_RUN_ID") or None
        self.experiment = settings.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.client = _client(self.uri)
        # as printed: a password in the URL masked (MLflow's own MLFLOW_TRACKING_PASSWORD is never shown)
        self.where = re.sub(r"//([^/:@]*):[^/@]*@", r"//\1:***@", str(self.uri or self.client.tracking_uri))
        self.experiment_id: str | None = None

    def check(self) -> None:
        """Reach the tracker now: the run to attach to exists, or the experiment exists (created if not)."""
        with self._calls("check"):
            if self.attach:
                self.client.get_run(self.attach)
            else:
                self.experiment_id = self._experiment_id()

    def _experiment_id(self) -> str:
        given_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if given_id and not (self.settings.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")):
            return self.client.get_experiment(given_id).experiment_id  # MLflow's other standard variable
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return self.client.create_experiment(self.experiment)
        if exp.lifecycle_stage != "active":
            raise ConfigError(f"MLflow experiment {self.experiment!r} at {self.where} is deleted; expected an "
                              "active experiment (restore it or name another)")
        return exp.experiment_id

    def log(self, result: dict, out_dir: str | Path, samples: dict | None = None) -> str:
        """Log ``result`` and the run directory's files; the MLflow run id."""
        with self._calls("log"):
            run_id = self.attach or self._new_run(result)
            self._log_values(run_id, result)
            self._log_files(run_id, Path(out_dir), result, samples)
            if not self.attach:
                self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _new_run(self, result: dict) -> str:
        exp = self.experiment_id or self._experiment_id()
        name = self.settings.run_name or f"advkit {result.get('model')} run {result.get('run_id')}"
        run = self.client.create_run(exp, run_name=name[:250], tags={"mlflow.source.name": "advkit evaluate",
                                                                    "mlflow.source.type": "LOCAL"})
        return run.info.run_id

    def _log_values(self, run_id: str, result: dict) -> None:
        from mlflow.entities import Metric, Param, RunTag
        ts = int(time.time() * 1000)
        metrics = [Metric(k, v, ts, s) for k, v, s in values.metrics(result)]
        params = [Param(k, v[:6000]) for k, v in values.params(result).items()]
        tags = [RunTag(k, v) for k, v in values.tags(result).items()]
        for kind, items in (("metrics", metrics), ("params", params), ("tags", tags)):
            size = _BATCH[kind]
            for i in range(0, len(items), size):
                self.client.log_batch(run_id, **{kind: items[i:i + size]})

    def _log_files(self, run_id: str, out_dir: Path, result: dict, samples: dict | None) -> None:
        for name in ARTIFACTS:
            if (out_dir / name).is_file():
                self.client.log_artifact(run_id, str(out_dir / name), artifact_path="advkit")
        pngs = values.plots(result, samples)
        if pngs:
            with tempfile.TemporaryDirectory(prefix="advkit-plots-") as tmp:
                for name, data in pngs.items():
                    (Path(tmp) / name).write_bytes(data)
                self.client.log_artifacts(run_id, tmp, artifact_path="advkit/plots")

    @contextlib.contextmanager
    def _calls(self, what: str):
        """MLflow's exceptions as advkit errors: a refused request → ConfigError, anything else →
        TrackerUnreachable (one line each)."""
        from mlflow.exceptions import MlflowException
        with _http_defaults():
            try:
                yield
            except MlflowException as e:
                text = _first_line(e.message)
                if e.error_code in _REFUSED:
                    raise ConfigError(f"MLflow at {self.where} refused the {what} ({e.error_code}): {text}") from None
                raise TrackerUnreachable(self._unreachable(str(e.message))) from None
            except (OSError, ConnectionError) as e:
                raise TrackerUnreachable(self._unreachable(str(e))) from None
            except Exception as e:  # noqa: BLE001 - requests/urllib3 errors wrapped differently per version
                if type(e).__module__.split(".")[0] in ("requests", "urllib3"):
                    raise TrackerUnreachable(self._unreachable(str(e))) from None
                raise

    def _unreachable(self, text: str) -> str:
        cause = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|Connection aborted|status code \d+|"
                          r"\b[45]\d\d error[^'\")]*", text)
        why = cause.group(0).strip() if cause else _first_line(text)
        return f"MLflow tracking server at {self.where} could not be reached ({why})"


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "..."


__all__ = ["MlflowTracker", "Settings", "DEFAULT_EXPERIMENT"]
