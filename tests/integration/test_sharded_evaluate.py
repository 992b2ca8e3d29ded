"""``torchrun -m advkit evaluate``: 1, 2 and 3 processes (gloo) give the same per-sample records, one
history row and the same report; a rank killed mid-run fails the run, and ``--resume`` (here with a
different number of processes) computes only the missing batches and ends with the same records."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import torch

from _evalhelpers import TINY_SPEC, write_inputs

pytestmark = pytest.mark.slow

# The digits CNN with exact forward passes (no fast-path copies), so that batches computed by the
# killed run and by the resumed run are bit-identical; ADVKIT_TEST_DIE_RANK/AFTER make one rank die.
FACTORY = '''
import os
from safetensors.torch import load_file
from torch import nn
from advkit.model import Classifier


def build():
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    net.load_state_dict(load_file({weights!r}))
    if "ADVKIT_TEST_DIE_RANK" in os.environ and os.environ["ADVKIT_TEST_DIE_RANK"] == os.environ.get("RANK"):
        calls, after = [0], int(os.environ["ADVKIT_TEST_DIE_AFTER"])
        def die(module, args):
            calls[0] += 1
            if calls[0] > after:
                os._exit(17)
        net.register_forward_pre_hook(die)
    return Classifier(net, num_classes=10, input_shape=(1, 8, 8), accelerate=False)
'''


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(k, None)
    return env


def _torchrun(n: int, spec, db, out, *extra, env=None):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
           "-m", "advkit", "evaluate", str(spec), "--db", str(db), "--out", str(out), "--quiet", "--device", "cpu",
           *extra]
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=600)


def _load(out):
    with np.load(out / "samples.npz") as z:
        samples = {k: z[k] for k in z.files}
    return json.loads((out / "result.json").read_text()), samples


def _report(out) -> list[str]:  # the report without its date line
    return [line for line in (out / "report.md").read_text().splitlines() if not line.startswith("n = ")]


def _rows(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT status FROM runs").fetchall()


def _assert_same(a, b):
    (ra, sa), (rb, sb) = a, b
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    for key in ("clean", "threats", "robust_accuracy", "curve", "findings", "preflight"):
        assert _dump(ra[key]) == _dump(rb[key]), key


def _dump(v) -> str:  # without the measured seconds, which legitimately differ
    def strip(d):
        return {k: x for k, x in d.items() if k != "seconds"}
    return json.dumps(json.loads(json.dumps(v, default=str), object_hook=strip), sort_keys=True)


def test_one_two_three_processes_and_a_killed_rank_resumed(tmp_path, digits_model):
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    refs = write_inputs(tmp_path, digits_model, n=8)
    factory = tmp_path / "exact_factory.py"
    factory.write_text(FACTORY.format(weights=refs["weights"]))
    spec = tmp_path / "spec.toml"  # the built-in digits data: 20 samples in 4 batches of 5
    spec.write_text(f'model = "{factory}:build"\ndata = "digits"\n' + TINY_SPEC.format(n=20, batch_size=5))

    from advkit.cli.main import main  # one process, in-process, on one thread
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["evaluate", str(spec), "--db", str(tmp_path / "one.db"), "--out", str(tmp_path / "one"),
                     "--quiet", "--device", "cpu"]) == 0
    finally:
        torch.set_num_threads(saved)
    one = _load(tmp_path / "one")
    assert one[0]["environment"]["processes"] == 1
    assert one[0]["environment"]["device"] == "cpu"  # what the numbers were computed on

    two = _torchrun(2, spec, tmp_path / "two.db", tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    _assert_same(one, _load(tmp_path / "two"))
    assert _rows(tmp_path / "two.db") == [("complete",)]  # one history row, written by rank 0
    assert _report(tmp_path / "two") == _report(tmp_path / "one")
    assert _load(tmp_path / "two")[0]["environment"]["processes"] == 2

    # rank 1 dies after its clean batches (preflight + 3 clean passes + a few attack passes)
    died = _torchrun(2, spec, tmp_path / "kill.db", tmp_path / "never",
                     env=_env(ADVKIT_TEST_DIE_RANK="1", ADVKIT_TEST_DIE_AFTER="10"))
    assert died.returncode != 0 and not (tmp_path / "never").exists()
    assert "exitcode" in died.stderr and "17" in died.stderr, died.stderr[-3000:]  # torchrun names the rank
    with sqlite3.connect(tmp_path / "kill.db") as c:
        stored = c.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert stored > 0 and _rows(tmp_path / "kill.db") in ([("running",)], [("failed",)]), died.stderr[-3000:]
    assert "another process of this sharded evaluation failed" in died.stderr or "SIGTERM" in died.stderr

    three = _torchrun(3, spec, tmp_path / "kill.db", tmp_path / "resumed", "--resume")
    assert three.returncode == 0, three.stderr[:6000]
    resumed = _load(tmp_path / "resumed")
    assert resumed[0]["resumed_batches"] == stored  # every stored batch reused, only the rest computed
    _assert_same(one, resumed)
    assert _rows(tmp_path / "kill.db") == [("complete",)]
    assert _report(tmp_path / "resumed") == _report(tmp_path / "one")
