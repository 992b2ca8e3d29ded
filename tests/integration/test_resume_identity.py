"""A run's identity is its contents: ``--resume`` refuses a run computed from other data, weights or code,
``certify`` refuses rows of other weights, and a second process cannot write into a live run."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from advkit.cli.main import main
from advkit.errors import ConfigError
from advkit.evaluation import evaluate, load_spec, with_options
from advkit.results import Store

from _evalhelpers import write_inputs, write_spec

FAST = '[stages.autoattack]\nversion = "off"\n'  # replaces the tiny spec's AutoAttack table (fewer stages)


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def refs(tmp_path_factory, digits_model):
    return write_inputs(tmp_path_factory.mktemp("inputs"), digits_model)


def _spec(tmp_path, refs, **kw):
    spec = write_spec(tmp_path / "spec.toml", refs, n=40, batch_size=20, **kw)
    text = spec.read_text().replace("[stages.autoattack]\nsteps = 10\nsquare_queries = 40\nn_targets = 2\n", FAST)
    spec.write_text(text)
    return spec


def _interrupted_run(spec_path, db, weights=None) -> int:
    """An evaluation stopped after its first stored batches (as a crash would leave it): status 'failed'."""
    def stop(label, done, total):
        if label == "clean":
            raise _Stop
    spec = with_options(load_spec(spec_path), weights=weights)
    with Store(db) as store, pytest.raises(_Stop):
        evaluate(spec, store=store, progress=stop)
    with Store(db) as store:
        (run,) = store.list_runs()
        assert run["status"] == "failed" and store.count_batches(run["run_id"]) >= 1
        return run["run_id"]


def _runs(db) -> list[tuple]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()


def test_resume_refuses_when_the_data_file_changed(refs, tmp_path, capsys):
    data = tmp_path / "data.npz"
    x, y = np.load(refs["data"][4:])["x"], np.load(refs["data"][4:])["y"]
    np.savez(data, x=x, y=y)
    spec = _spec(tmp_path, {**refs, "data": f"npz:{data}"})
    db = tmp_path / "h.db"
    _interrupted_run(spec, db)
    np.savez(data, x=x[::-1].copy(), y=y[::-1].copy())  # same file name, other contents
    code = main(["evaluate", str(spec), "--db", str(db), "--out", str(tmp_path / "out"), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "the data" in err and "without --resume" in err and "Traceback" not in err
    assert _runs(db) == [(1, "failed")]  # nothing reused, nothing new written
    assert not (tmp_path / "out").exists()


def test_resume_refuses_other_weights(refs, tmp_path, capsys):
    spec, db = _spec(tmp_path, {**refs, "model": refs["arch"]}), tmp_path / "h.db"
    _interrupted_run(spec, db, weights=refs["weights"])
    other = {k: v + 0.1 for k, v in load_file(refs["weights"]).items()}
    save_file(other, str(tmp_path / "other.safetensors"))
    code = main(["evaluate", str(spec), "--db", str(db), "--weights", str(tmp_path / "other.safetensors"),
                 "--resume", "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "model weights" in err and _runs(db) == [(1, "failed")]


def test_check_resumable_names_what_changed():
    from advkit.evaluation.run_info import check_resumable
    row = {"run_id": 4, "model_hash": "a" * 64, "data_hash": "b" * 64, "code_version": "0.1.0+gabc"}
    check_resumable(row, dict(row))  # identical: fine
    for key, what in (("model_hash", "model weights"), ("data_hash", "the data"), ("code_version", "advkit code")):
        with pytest.raises(ConfigError, match=what):
            check_resumable(row, {**row, key: "c" * 64})


def test_certify_refuses_rows_written_with_other_weights(refs, tmp_path, capsys):
    other = {k: v + 0.2 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
             for k, v in load_file(refs["weights"]).items()}
    save_file(other, str(tmp_path / "other.safetensors"))
    out = tmp_path / "cert"
    base = ["certify", "--model", refs["arch"], "--data", refs["data"], "--sigma", "0.25", "--n0", "20",
            "--n", "200", "--n-images", "4", "--out", str(out), "--no-progress", "--batch-size", "200"]
    assert main([*base, "--weights", refs["weights"], "--n-images", "2"]) == 0
    rows_before = (out / "samples.csv").read_text()
    code = main([*base, "--weights", str(tmp_path / "other.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "model weights" in err and "another --out" in err
    assert (out / "samples.csv").read_text() == rows_before  # the old rows were neither reused nor mixed
    assert main([*base, "--weights", refs["weights"]]) == 0  # same weights: resumes (2 more images)


HOLDER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from advkit.evaluation import evaluate, load_spec, with_options
    from advkit.results import Store

    spec, db, ready, go = sys.argv[1:5]

    def progress(label, done, total):
        if label == "clean" and not Path(ready).exists():
            Path(ready).write_text("x")
            while not Path(go).exists():
                time.sleep(0.05)

    with Store(db) as store:
        res = evaluate(load_spec(spec), store=store, progress=progress)
    print("run", res.run_id)
''')


def test_resume_while_the_first_run_is_writing_is_refused(refs, tmp_path, capsys):
    spec, db = _spec(tmp_path, refs), tmp_path / "h.db"
    ready, go = tmp_path / "ready", tmp_path / "go"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, str(script), str(spec), str(db), str(ready), str(go)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert first.poll() is None, first.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the first run never reached its clean stage"
            time.sleep(0.1)
        code = main(["evaluate", str(spec), "--db", str(db), "--out", str(tmp_path / "second"), "--resume",
                     "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and "being written by another live process" in err and f"pid {first.pid}" in err
        assert not (tmp_path / "second").exists()
    finally:
        go.write_text("x")
        out, errs = first.communicate(timeout=600)
    assert first.returncode == 0, errs[-2000:]
    assert out.strip() == "run 1"
    assert _runs(db) == [(1, "complete")]
    with Store(db) as store:
        assert store.lock_holder(1) is None  # released at the end
