"""``advkit train`` under ``torchrun --nproc_per_node 2`` (gloo, CPU) matches one process with the same
global batch: each rank takes a strided half of every batch and DDP averages the gradients."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

ARGS = ["train", "--data", "digits", "--arch", "smallcnn", "--arch-kwarg", "padding=1", "--method", "standard",
        "--epochs", "2", "--batch-size", "64", "--train-subset", "250", "--val-size", "64", "--keep", "last",
        "--optimizer", "sgd", "--lr", "0.05", "--schedule", "cosine", "--augment-shift", "1", "--seed", "2",
        "--no-progress", "--chance-patience", "0"]  # 8 optimiser steps: the test is about DDP, not learning


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    return env


def test_two_process_ddp_matches_single_process(tmp_path):
    pytest.importorskip("torch.distributed")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    from advkit.cli.main import main  # the single-process reference runs in-process, on one thread
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*ARGS, "--out", str(single)]) == 0
    finally:
        torch.set_num_threads(saved)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*launcher, "-m", "advkit", *ARGS, "--out", str(ddp)], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(str(single)), load_file(str(ddp))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4), (k, (a[k] - b[k]).abs().max())
    # the runs really trained: the weights moved far more than the DDP/single-process difference
    from advkit.training.config import TrainConfig
    from advkit.training.run import build_model
    init = build_model(TrainConfig(arch="smallcnn", arch_kwargs={"padding": 1}, seed=2), (1, 8, 8), 10).net.state_dict()
    moved = max(float((a[k] - init[k]).abs().max()) for k in a)
    gap = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert moved > 100 * gap, (moved, gap)
