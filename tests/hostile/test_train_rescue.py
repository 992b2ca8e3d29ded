"""A failed final write of a trained model never loses it: the model goes to the temp folder, the
checkpoint stays, and the one-line error says where (issue 11: `train --out` into a read-only folder).

Running as root, a read-only folder is still writable, so the failing write is simulated by making
advkit's model writer raise the OSError a read-only folder gives (EACCES) for the --out path only.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from advkit.cli.main import main
from advkit.sources.models import load_model

from _hostile_fixtures import build


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return build(tmp_path_factory.mktemp("rescue"))


@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_train_keeps_the_model_when_out_cannot_be_written(env, tmp_path, monkeypatch, capsys, with_checkpoint):
    import safetensors.torch as st

    out = tmp_path / "ro" / "model.safetensors"
    real = st.save_file

    def read_only(tensors, filename, metadata=None):
        if Path(filename).parent == out.parent:
            raise PermissionError(13, "Permission denied")
        return real(tensors, filename, metadata=metadata)
    monkeypatch.setattr(st, "save_file", read_only)
    argv = (f"train --arch smallcnn --arch-kwarg padding=1 --data npz:{env['d']}/train.npz --epochs 1 "
            f"--batch-size 40 --val-size 0 --chance-patience 0 --no-progress --out {out}")
    if with_checkpoint:
        argv += f" --checkpoint-dir {tmp_path}/ckpt"
    code = main(shlex.split(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "Permission denied" in line[0], err
    rescued = Path(re.search(r"saved to (\S+) instead", line[0]).group(1))
    clf = load_model(str(rescued))  # a complete advkit model file
    assert clf.num_classes == 10 and clf.input_shape == (1, 8, 8)
    assert not out.exists() and not [p for p in out.parent.iterdir()]  # nothing half-written where it failed
    if with_checkpoint:
        assert f"{tmp_path}/ckpt/checkpoint.pt is kept" in line[0] and (tmp_path / "ckpt" / "checkpoint.pt").exists()
    rescued.unlink()
