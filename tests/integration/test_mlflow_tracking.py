"""``advkit evaluate --mlflow``: a real ``mlflow server`` on 127.0.0.1 (SQLite backend and artifact root
in a temp folder); every logged value is read back with ``MlflowClient``, also for a run attached to an
existing one; a server stopped mid-evaluation gives exit 8 and the local history still has the run."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from advkit.cli.main import EXIT_TRACKER, main
from advkit.results import Store

HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_mlflow = pytest.mark.skipif(not HAVE_MLFLOW, reason="mlflow is not installed (pip install 'advkit[mlflow]')")
START_TIMEOUT = 240  # seconds; the server's first start creates its SQLite tables

FACTORY = """
import os
import signal
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, kill):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        self.kill = kill

    def forward(self, x):
        pid = os.environ.get("ADVKIT_TEST_KILL_PGID")
        if self.kill and pid:  # the tracking server dies while the evaluation runs
            os.environ.pop("ADVKIT_TEST_KILL_PGID")
            os.killpg(int(pid), signal.SIGKILL)
        return self.body(x)

def build(kill=False):
    return Net(kill)
"""

SPEC = """
data = "digits"
n = 12
batch_size = 12
threats = ["linf:0.1", "l2:1.0"]
[stages.pgd]
steps = 2
restarts = 1
[stages.autoattack]
steps = 3
square_queries = 10
[stages.curve]
points = 3
steps = 2
[stages.checks]
enabled = false
[certify]
sigma = 0.25
n0 = 10
n = 40
radii = [0.0, 0.25]
batch_size = 40
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An ``mlflow server`` process group of this test module; :meth:`ensure` (re)starts it."""

    def __init__(self, root: Path):
        self.root, self.proc, self.port = root, None, _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"

    def ensure(self) -> "Server":
        if self.proc is not None and self.proc.poll() is None:
            return self
        exe = Path(sys.executable).with_name("mlflow")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]
        log = open(self.root / "server.log", "ab")
        self.proc = subprocess.Popen(
            cmd + ["server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}", "--artifacts-destination",
                   str(self.root / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
            # no background job runner (a dozen worker processes on a 2-core CI machine): the tests need only tracking
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"mlflow server did not answer within {START_TIMEOUT}s:\n{tail}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def _server(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture
def server(_server):
    return _server.ensure()


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spec")
    (tmp / "tiny_net.py").write_text(FACTORY)
    spec = tmp / "spec.toml"
    spec.write_text(f"model = {json.dumps(str(tmp / 'tiny_net.py') + ':build')}\n" + textwrap.dedent(SPEC))
    return spec


def _evaluate(spec_file, tmp_path, *args) -> int:
    return main(["evaluate", str(spec_file), "--db", str(tmp_path / "h.db"), "--out", str(tmp_path / "run"),
                 "--quiet", *args])


def _client(server):
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=server.uri)


def _check_run(client, run_id: str, result: dict) -> None:
    """Every value advkit logs, read back from the server and compared with result.json."""
    from advkit.tracking import values
    data = client.get_run(run_id).data
    assert {k: data.params[k] for k in values.params(result)} == values.params(result)
    assert {k: data.tags[k] for k in values.tags(result)} == values.tags(result)
    for k, v, step in values.metrics(result):
        assert (step, v) in [(m.step, m.value) for m in client.get_metric_history(run_id, k)], k
    # spot checks against the result itself (not through advkit's own mapping)
    assert data.params["advkit/model_hash"] == result["model_hash"]
    assert data.params["advkit/data_hash"] == result["data_hash"]
    assert data.params["advkit/seed"] == "0" and data.params["advkit/threats"] == "linf:0.1, l2:1.0"
    assert data.metrics["advkit/clean_accuracy"] == result["clean"]["accuracy"]
    assert data.metrics["advkit/clean_top5_accuracy"] == result["clean"]["top5"]["accuracy"]
    for t, key in (("linf:0.1", "linf_0.1"), ("l2:1.0", "l2_1.0")):
        sec = result["threats"][t]
        assert data.metrics[f"advkit/robust_accuracy/{key}"] == sec["robust_accuracy"]
        assert data.metrics[f"advkit/robust_accuracy/{key}/pgd"] == sec["attacks"]["pgd"]["robust_accuracy"]
        assert data.params[f"advkit/protocol/{key}"].startswith(sec["protocol"]["name"])
        assert data.tags[f"advkit/upper_bound/{key}"] == "true"  # reduced AutoAttack
        curve = client.get_metric_history(run_id, f"advkit/curve/{key}")
        assert [m.value for m in sorted(curve, key=lambda m: m.step)] == sec["curve"]["robust_accuracy"]
    for r, acc in result["certify"]["certified_accuracy"].items():
        assert data.metrics[f"advkit/certified_accuracy/r{float(r):g}"] == acc
    assert data.metrics["advkit/worst_case_robust_accuracy"] == min(result["robust_accuracy"].values())
    names = {a.path for a in client.list_artifacts(run_id, "advkit")}
    assert {"advkit/result.json", "advkit/report.html", "advkit/report.md", "advkit/plots"} <= names
    plots = {a.path for a in client.list_artifacts(run_id, "advkit/plots")}
    assert "advkit/plots/robustness_curve.png" in plots and "advkit/plots/per_class_linf_0.1.png" in plots


@needs_mlflow
def test_evaluation_is_logged_as_a_new_run(server, spec_file, tmp_path):
    code = _evaluate(spec_file, tmp_path, "--mlflow", "--mlflow-uri", server.uri, "--mlflow-experiment", "new-exp")
    assert code in (0, 1)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    client = _client(server)
    exp = client.get_experiment_by_name("new-exp")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    _check_run(client, run.info.run_id, result)
    local = client.download_artifacts(run.info.run_id, "advkit/result.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == result


@needs_mlflow
def test_evaluation_attaches_to_an_existing_run(server, spec_file, tmp_path, monkeypatch, capsys):
    from mlflow.entities import Param
    client = _client(server)
    exp_id = client.create_experiment("training")
    training = client.create_run(exp_id, run_name="train-epoch-10").info.run_id
    client.log_batch(training, params=[Param("seed", "7")])
    client.log_metric(training, "accuracy", 0.5, step=10)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)  # the standard variable instead of --mlflow-uri
    assert _evaluate(spec_file, tmp_path, "--mlflow-run-id", training) in (0, 1)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert len(client.search_runs([exp_id])) == 1  # no new run
    run = client.get_run(training)
    assert run.info.status == "RUNNING"  # the training run is left as it was
    assert run.data.params["seed"] == "7" and run.data.metrics["accuracy"] == 0.5
    _check_run(client, training, result)
    # MLflow keeps one value per parameter: a different evaluation into the same run is refused (exit 2)
    other = tmp_path / "other"
    code = main(["evaluate", str(spec_file), "--db", str(tmp_path / "h.db"), "--out", str(other), "--quiet",
                 "--seed", "1", "--mlflow-run-id", training])
    err = capsys.readouterr().err
    assert code == 2 and (other / "result.json").exists()
    assert "refused the log" in err and "local history (run 2)" in err and "Traceback" not in err


@needs_mlflow
def test_spec_table_and_unknown_run_id(server, spec_file, tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_file.read_text() + f'[mlflow]\ntracking_uri = "{server.uri}"\nrun_id = "0" \n')
    from advkit.evaluation import load_spec
    assert load_spec(spec).mlflow.run_id == "0" and load_spec(spec).spec_hash() == load_spec(spec_file).spec_hash()
    secret = spec_file.read_text() + '[mlflow]\ntracking_uri = "https://bob:s3cret@mlflow.example"\n'
    (tmp_path / "secret.toml").write_text(secret)
    assert load_spec(tmp_path / "secret.toml").to_dict()["mlflow"]["tracking_uri"] == "https://bob:***@mlflow.example"
    assert main(["evaluate", str(spec), "--db", str(tmp_path / "h.db"), "--out", str(tmp_path / "run"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "MLflow at" in err and "refused the check" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "h.db").exists()  # refused before evaluating


def test_missing_mlflow_package_is_a_config_error(spec_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    assert _evaluate(spec_file, tmp_path, "--mlflow") == 2
    err = capsys.readouterr().err
    assert "pip install 'advkit[mlflow]'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@needs_mlflow
def test_unreachable_tracker_before_the_evaluation(spec_file, tmp_path, capsys):
    port = _free_port()  # nothing listens there
    uri = f"http://bob:s3cret@127.0.0.1:{port}"
    assert _evaluate(spec_file, tmp_path, "--mlflow", "--mlflow-uri", uri) == EXIT_TRACKER == 8
    err = capsys.readouterr().err
    assert f"MLflow tracking server at http://bob:***@127.0.0.1:{port} could not be reached" in err
    assert len(err.strip().splitlines()) == 1 and "s3cret" not in err
    assert not (tmp_path / "run").exists()
    assert _evaluate(spec_file, tmp_path, "--mlflow", "--mlflow-uri", uri, "--mlflow-optional") in (0, 1)
    assert "warning:" in capsys.readouterr().err and (tmp_path / "run" / "result.json").exists()


@needs_mlflow
def test_server_stopped_mid_evaluation(server, spec_file, tmp_path, monkeypatch, capsys):
    """Kept last in this file: it kills the module's server (a later test would start it again)."""
    monkeypatch.setenv("ADVKIT_TEST_KILL_PGID", str(server.proc.pid))
    code = _evaluate(spec_file, tmp_path, "--mlflow", "--mlflow-uri", server.uri, "--model-arg", "kill=true")
    err = capsys.readouterr().err
    assert server.proc.wait(timeout=30) is not None  # the model's first forward pass killed it
    assert code == EXIT_TRACKER, err
    assert "could not be reached" in err and "local history (run 1)" in err and "Traceback" not in err
    with Store(str(tmp_path / "h.db")) as store:
        (row,) = store.list_runs()
        assert row["status"] == "complete"
    assert json.loads((tmp_path / "run" / "result.json").read_text())["run_id"] == 1
