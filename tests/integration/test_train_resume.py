"""A training run killed with SIGKILL after its first epoch checkpoint, then resumed with ``--resume``,
ends with exactly the weights of an uninterrupted run with the same seed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

EPOCHS = 3
ARGS = ["train", "--data", "digits", "--arch", "smallcnn", "--arch-kwarg", "padding=1", "--method", "pgd-at",
        "--eps", "0.1", "--steps", "3", "--warmup-epochs", "1", "--epochs", str(EPOCHS), "--batch-size", "32",
        "--train-subset", "300", "--val-size", "100", "--optimizer", "sgd", "--lr", "0.05", "--schedule", "cyclic",
        "--augment-shift", "1", "--keep", "best", "--seed", "4", "--no-progress",
        "--chance-patience", "0"]  # 30 optimiser steps need not leave chance level: this test is about resume


def _cmd(out, ckpt, *extra):
    return [sys.executable, "-m", "advkit", *ARGS, "--out", str(out), "--checkpoint-dir", str(ckpt), *extra]


def _wait_for_checkpoint(proc, path, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() or proc.poll() is not None:
            return
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no checkpoint appeared")


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ck = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tmp_path / "resumed.safetensors", ck), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _wait_for_checkpoint(proc, ck / "checkpoint.pt")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    state = torch.load(ck / "checkpoint.pt", weights_only=True)  # atomic writes: always loadable
    assert 1 <= state["epoch"] < EPOCHS
    assert not (tmp_path / "resumed.safetensors").exists()

    resumed = subprocess.run(_cmd(tmp_path / "resumed.safetensors", ck, "--resume"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    from advkit.cli.main import main  # the uninterrupted reference runs in-process, on one thread too
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_cmd(tmp_path / "straight.safetensors", tmp_path / "straight")[3:]) == 0
    finally:
        torch.set_num_threads(saved)
    a, b = load_file(str(tmp_path / "resumed.safetensors")), load_file(str(tmp_path / "straight.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the checkpoint of the resumed run holds the whole history, as if never interrupted
    final = torch.load(ck / "checkpoint.pt", weights_only=True)
    ref = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    assert final["epoch"] == EPOCHS and final["history"] == [
        {**r, "seconds": h["seconds"]} for r, h in zip(ref["history"], final["history"])]
