"""Hostile cases of issue 27: train and certify never mix two runs, and every file advkit reads back
(training checkpoints, result.json, run ids, images in folders) ends in a one-line error.

Each row runs ``advkit ...`` in-process after its ``prepare`` step has set up the case's folder (a first
run to continue, a crafted checkpoint or result, a rewritten data file) and asserts the exit code, one
``error:`` line matching the row's pattern, no traceback and no ``advkit bug``.  A refused row must also
leave every file of the case's folder as it was: no checkpoint advanced, no certify row added, nothing
half-written, so nothing of two runs is ever mixed.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from advkit.cli.main import main

from _hostile_fixtures import build, finished_run

TRAIN = ("train --arch smallcnn --arch-kwarg padding=1 --data npz:{d}/train.npz --epochs 1 --batch-size 40 "
         "--val-size 0 --chance-patience 0 --no-progress")
RESUME = TRAIN + " --checkpoint-dir {t}/ck --resume"
CERT = ("certify --model {t}/models.py:good --data npz:{d}/good.npz --sigma 0.25 --n0 10 --n 20 --n-images 2 "
        "--no-progress --out {t}/cert")
WRN = "train --arch wrn-10-1 --data npz:{d}/train.npz --epochs 1 --batch-size 40 --val-size 0 --no-progress"
BIG = "99999999999999999999"


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    code: int
    message: str  # a regex the one-line error must match (case-insensitive); "" for a successful row
    prepare: str = ""  # the name of a function below that sets up {t} before the command


def _run(argv: str, **fmt) -> int:
    return main(shlex.split(argv.format(**fmt)))


# ------------------------------------------------------------------ prepare steps
def checkpoint(env, t):
    shutil.copytree(env["ck"], t / "ck")


def _craft(env, t: Path, edit) -> None:
    checkpoint(env, t)
    path = t / "ck" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def ck_wrong_shape(env, t):
    _craft(env, t, lambda s: s["model"].update({k: torch.zeros(3, 3) for k in list(s["model"])[:1]}))


def ck_epoch_text(env, t):
    _craft(env, t, lambda s: s.update(epoch="abc"))


def ck_bad_optimizer(env, t):
    def edit(s):
        st = next(iter(s["optimizer"]["state"].values()))
        st["exp_avg"] = torch.zeros(7)
    _craft(env, t, edit)


def ck_optimizer_groups(env, t):
    _craft(env, t, lambda s: s["optimizer"].update(param_groups=[]))


def ck_optimizer_no_state(env, t):
    _craft(env, t, lambda s: s["optimizer"].pop("state"))


def ck_lr_text(env, t):
    _craft(env, t, lambda s: s["optimizer"]["param_groups"][0].update(lr="abc"))


def ck_scheduler_text(env, t):
    _craft(env, t, lambda s: s["scheduler"].update(last_epoch="abc"))


def ck_bad_history(env, t):
    _craft(env, t, lambda s: s.update(history=["not a record"]))


def ck_bad_best(env, t):
    _craft(env, t, lambda s: s["best"].update(score="high"))


def ck_best_weights(env, t):
    _craft(env, t, lambda s: s["best"].update(model={"bogus": torch.zeros(1)}))


def data_rewritten(env, t):
    """A checkpoint of t/train.npz, then the file rewritten in place under the same REF (other images)."""
    shutil.copy(Path(env["d"]) / "train.npz", t / "train.npz")
    assert _run(TRAIN.replace("{d}/train.npz", "{t}/train.npz") + " --checkpoint-dir {t}/ck", d=env["d"], t=t) == 0
    with np.load(t / "train.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["x_train"] = 255 - arrays["x_train"]
    np.savez(t / "train.npz", **arrays)


def empty_folder(env, t):
    (t / "ck").mkdir()


def models(env, t):
    shutil.copy(Path(env["d"]) / "models.py", t / "models.py")


def certified_bits1(env, t):
    models(env, t)
    assert _run(CERT + " --defense bits:1", d=env["d"], t=t) == 0


def certified_plain(env, t):
    models(env, t)
    assert _run(CERT, d=env["d"], t=t) == 0


def certified_then_source_edited(env, t):
    """Same weights, other model code: the factory's forward changed after the first run (a ReLU on the
    logits, no new parameters)."""
    certified_plain(env, t)
    with open(t / "models.py", "a") as fh:
        fh.write("\n\ndef good():\n    return _lin(10).append(nn.ReLU())\n")


def certify_rows_without_config(env, t):
    certified_plain(env, t)
    (t / "cert" / "config.json").unlink()


def certify_row_label_edited(env, t):
    certified_plain(env, t)
    path = t / "cert" / "samples.csv"
    head, first, *rest = path.read_text().splitlines()
    cells = first.split(",")
    cells[1] = str((int(cells[1]) + 1) % 10)
    path.write_text("\n".join([head, ",".join(cells), *rest]) + "\n")


def crafted_results(env, t):
    result = json.loads((Path(env["run"]) / "result.json").read_text())
    threat = next(iter(result["threats"]))
    for name, edit in (("ra", lambda r: r["threats"][threat].update(robust_accuracy="x")),
                       ("ratop", lambda r: r["robust_accuracy"].update({threat: "x"})),
                       ("n", lambda r: r.update(n="abc")), ("acc5", lambda r: r["clean"].update(accuracy=5))):
        r = json.loads(json.dumps(result))
        edit(r)
        (t / f"{name}.json").write_text(json.dumps(r))


def bomb_png(path: Path, side: int = 14000) -> None:
    """A valid 1-bit PNG of side×side black pixels (196 M pixels, more than twice Pillow's limit): about 24
    MB of pixel rows that compress to a few dozen KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    comp, rows = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8) * 1000
    body = b"".join(comp.compress(rows) for _ in range(side // 1000)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def image_bomb(env, t):
    from PIL import Image
    for c in ("a", "b"):
        (t / "imgs" / c).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(t / "imgs" / c / "0.png")
    bomb_png(t / "imgs" / "a" / "1.png")
    assert (t / "imgs" / "a" / "1.png").stat().st_size < 100_000


CASES = [
    # ------------------------------------------------ train: run identity and resume
    Case("train-resume-data-content-changed", RESUME.replace("{d}/train.npz", "{t}/train.npz"), 2,
         r"cannot resume .*checkpoint\.pt: the data contents changed \(data_hash", "data_rewritten"),
    Case("train-resume-empty-checkpoint-dir", RESUME, 2, r"--resume: expected a checkpoint at .*--resume-or-start",
         "empty_folder"),
    Case("train-resume-or-start-empty-dir", TRAIN + " --checkpoint-dir {t}/ck --resume-or-start", 0, "",
         "empty_folder"),
    # ------------------------------------------------ train: crafted checkpoints
    Case("train-ckpt-wrong-shape-state-dict", RESUME, 2, r"checkpoint\.pt: expected model to be .* of shape",
         "ck_wrong_shape"),
    Case("train-ckpt-epoch-text", RESUME, 2, r"checkpoint\.pt: expected epoch to be an integer.*got 'abc'",
         "ck_epoch_text"),
    Case("train-ckpt-optimizer-state-shape", RESUME, 2, r"checkpoint\.pt: expected optimizer\.exp_avg to be shape",
         "ck_bad_optimizer"),
    Case("train-ckpt-optimizer-groups", RESUME, 2, r"checkpoint\.pt: expected optimizer\.param_groups to be like",
         "ck_optimizer_groups"),
    Case("train-ckpt-optimizer-no-state", RESUME, 2, r"checkpoint\.pt: expected optimizer to be .*does not load",
         "ck_optimizer_no_state"),
    Case("train-ckpt-optimizer-lr-text", RESUME, 2,
         r"checkpoint\.pt: expected optimizer\.param_groups\[0\]\.lr to be like the state", "ck_lr_text"),
    Case("train-ckpt-scheduler-text", RESUME, 2, r"checkpoint\.pt: expected scheduler\.last_epoch to be like the state",
         "ck_scheduler_text"),
    Case("train-ckpt-bad-history", RESUME, 2, r"checkpoint\.pt: expected history to be a list of 1 epoch records",
         "ck_bad_history"),
    Case("train-ckpt-bad-best-score", RESUME, 2, r"checkpoint\.pt: expected best\.score to be a number, got 'high'",
         "ck_bad_best"),
    Case("train-ckpt-bad-best-weights", RESUME, 2, r"checkpoint\.pt: expected best\.model to be the .* tensors",
         "ck_best_weights"),
    # ------------------------------------------------ train: architecture options
    Case("train-arch-kwarg-unknown", WRN + " --arch-kwarg padding=1", 2,
         r"invalid options .*padding.*wrn-10-1.*unexpected keyword"),
    Case("train-arch-kwarg-bad-value", WRN + " --arch-kwarg dropout=5", 2,
         r"invalid options .*dropout.*wrn-10-1.*dropout must be a probability"),
    # ------------------------------------------------ certify: run identity of OUT
    Case("certify-defense-changed", CERT + " --defense bits:5", 2,
         r"cert holds rows of another run: the defense chain changed \(defense bits:1 saved, bits:5 now\)",
         "certified_bits1"),
    Case("certify-defense-added", CERT + " --defense bits:1", 2, r"the defense chain changed \(defense none saved, bits:1 now\)",
         "certified_plain"),
    Case("certify-model-source-changed", CERT, 2, r"cert holds rows of another run: the model definition changed",
         "certified_then_source_edited"),
    Case("certify-rows-without-config", CERT, 2, r"cert holds certify rows but no config\.json",
         "certify_rows_without_config"),
    Case("certify-row-label-edited", CERT + " --n-images 3", 2, r"cert: expected row 0 of its samples to have label",
         "certify_row_label_edited"),
    # ------------------------------------------------ run ids beyond 64 bits
    Case("gate-run-id-overflow", f"gate {BIG} --db {{db}}", 2, r"run id between 1 and 2\^63-1.*" + BIG),
    Case("history-show-run-id-overflow", f"history show {BIG} --db {{db}}", 2, r"run id between 1 and 2\^63-1"),
    Case("report-run-id-overflow", f"report {BIG} --db {{db}}", 2, r"run id between 1 and 2\^63-1"),
    Case("history-compare-run-id-overflow", f"history compare 1 {BIG} --db {{db}}", 2, r"run id between 1 and 2\^63-1"),
    Case("gate-baseline-run-id-overflow", f"gate {{run}} --db {{db}} --baseline {BIG}", 2,
         r"run id between 1 and 2\^63-1"),
    # ------------------------------------------------ crafted result.json
    Case("gate-robust-accuracy-text", "gate {t}/ra.json --db {db} --baseline none", 2,
         r"ra\.json: expected threats\..*\.robust_accuracy to be a fraction in \[0, 1\].*got \"x\"", "crafted_results"),
    Case("gate-robust-accuracy-table-text", "gate {t}/ratop.json --db {db} --baseline none", 2,
         r"ratop\.json: expected robust_accuracy\..* to be a fraction", "crafted_results"),
    Case("gate-n-text", "gate {t}/n.json --db {db} --baseline none", 2,
         r"n\.json: expected n to be a count .*got \"abc\"", "crafted_results"),
    Case("gate-accuracy-500-percent", "gate {t}/acc5.json --db {db} --baseline none --clean-floor 0.5", 2,
         r"acc5\.json: expected clean\.accuracy to be a fraction in \[0, 1\].*got 5", "crafted_results"),
    Case("report-accuracy-500-percent", "report {t}/acc5.json --db {db}", 2, r"acc5\.json: expected clean\.accuracy",
         "crafted_results"),
    # ------------------------------------------------ image folders
    Case("inspect-image-decompression-bomb", "inspect --model {d}/models.py:good --data imagefolder:{t}/imgs", 2,
         r"cannot read image .*1\.png: expected at most .* pixels.*decompression bomb", "image_bomb"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile27")
    env = build(root / "in")
    env.update(finished_run(root / "done", env))
    assert _run(TRAIN + " --checkpoint-dir {ck}", d=env["d"], ck=root / "ck") == 0  # one good 1-epoch checkpoint
    env["ck"] = str(root / "ck")
    return env


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_cleanly_and_nothing_mixed(case: Case, env, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if case.prepare:
        globals()[case.prepare](env, tmp_path)
    capsys.readouterr()
    before, inputs = _snapshot(tmp_path), _snapshot(Path(env["d"]))
    code = main(shlex.split(case.argv.format(t=tmp_path, **env)))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "advkit bug" not in out + err, out + err
    assert code == case.code, f"exit {code}, expected {case.code}; output:\n{out + err}"
    assert _snapshot(Path(env["d"])) == inputs
    if case.code == 0:
        assert (tmp_path / "ck" / "checkpoint.pt").exists()
        return
    lines = [ln for ln in err.splitlines() if ln.strip()]
    hits = [ln for ln in lines if re.search(case.message, ln, re.IGNORECASE)]
    assert len(hits) == 1 and hits[0].startswith("error: "), f"no one error line matches {case.message!r}:\n{err}"
    # refused: every file of the case is as it was (no checkpoint advanced, no row added, nothing half-written)
    assert _snapshot(tmp_path) == before
