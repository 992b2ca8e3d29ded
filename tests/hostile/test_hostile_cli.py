"""The hostile-input suite: every case runs ``advkit ...`` in-process and asserts the documented exit
code, a one-line message naming the problem, no traceback, and no partial result left on disk.

Exit codes (README "Exit codes"): 0 ok · 1 gate failed · 2 usage/config/input · 3 evaluation aborted ·
4 internal error · 5 training at chance level · 6 the model misbehaved · 7 results could not be written ·
8 experiment tracker unreachable (evaluate --mlflow).

"Read-only folder" cases: the suite may run as root, for whom a read-only folder is still writable,
so an unwritable destination is simulated by a path whose parent is a regular file (``{d}/afile/x``),
which fails for every user with ENOTDIR, like a read-only folder fails with EACCES.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from advkit.cli.main import main

from _hostile_fixtures import build, finished_run

EVAL = "evaluate {d}/spec.toml --quiet --no-autoattack --db {t}/h.db --out {t}/run"
TRAIN = ("train --arch smallcnn --arch-kwarg padding=1 --data npz:{d}/train.npz --epochs 1 --batch-size 40 "
         "--val-size 0 --no-progress")
CERT = "certify --model {d}/models.py:good --data npz:{d}/good.npz --sigma 0.25 --n0 10 --n 20 --n-images 2 --no-progress"
ATT = "attack fgsm --model {d}/models.py:good --threat linf:0.1"
INSP = "inspect --model {d}/models.py:good"
# a run's outputs; none of them may exist after a failed case (no partial result)
OUTPUTS = ("run/result.json", "run/samples.npz", "run/report.md", "cert/certify.json", "cert/samples.csv",
           "adv.npz", "model.safetensors", "report.md", "dash.html")


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    code: int
    message: str  # a regex the one-line error must match (case-insensitive)
    gpu_only_skip: bool = False
    env: tuple = ()  # (name, value) environment variables set for the case


CASES = [
    # ---------------------------------------------------------------- evaluate
    Case("eval-truncated-npz", EVAL + " --data npz:{d}/trunc.npz", 2, r"trunc\.npz.*(truncated|not a valid|cannot read)"),
    Case("eval-npy-renamed-npz", EVAL + " --data npz:{d}/renamed.npz", 2, r"renamed\.npz.*\.npy"),
    Case("eval-zero-byte-npz", EVAL + " --data npz:{d}/zero.npz", 2, r"zero\.npz.*empty"),
    Case("eval-text-as-npz", EVAL + " --data npz:{d}/text.npz", 2, r"text\.npz.*(not|cannot)"),
    Case("eval-nan-pixels", EVAL + " --data npz:{d}/nan.npz", 2, r"nan\.npz.*NaN"),
    Case("eval-empty-data", EVAL + " --data npz:{d}/empty.npz", 2, r"empty\.npz.*no (images|samples)"),
    Case("eval-label-beyond-width", EVAL + " --data npz:{d}/biglabel.npz", 2, r"label 12.*10 outputs"),
    Case("eval-float-labels", EVAL + " --data npz:{d}/floatlabels.npz", 2, r"y must be .*integer"),
    Case("eval-bad-x-shape", EVAL + " --data npz:{d}/badshape.npz", 2, r"x must have shape"),
    Case("eval-model-1-output", EVAL + " --model {d}/models.py:one", 2, r"1 output.*at least 2"),
    Case("eval-model-5-outputs", EVAL + " --model {d}/models.py:five", 2, r"label 9.*5 outputs"),
    Case("eval-model-tuple-output", EVAL + " --model {d}/models.py:tuple_out", 2, r"returned a tuple.*logits"),
    Case("eval-model-forward-raises", EVAL + " --model {d}/models.py:raises", 2, r"forward.*RuntimeError.*boom"),
    Case("eval-model-3d-output", EVAL + " --model {d}/models.py:three_d", 2, r"shape \(N, classes\)"),
    Case("eval-model-not-module", EVAL + " --model {d}/models.py:not_a_module", 2, r"must return a torch\.nn\.Module"),
    Case("eval-model-probabilities", EVAL + " --model {d}/models.py:probs", 3, r"probabilities"),
    Case("eval-model-ref-dotdot", EVAL + " --model ../../x:foo", 2, r"\.\./\.\./x:foo"),
    Case("eval-model-file-missing", EVAL + " --model {d}/nope.py:good", 2, r"nope\.py does not exist"),
    Case("eval-model-no-factory", EVAL + " --model {d}/models.py:missing", 2, r"no callable 'missing'"),
    Case("eval-model-arg-not-toml", EVAL + " --model {d}/models.py:good --model-arg width=abc", 2,
         r"--model-arg width.*TOML value.*'abc'"),
    Case("eval-model-arg-unknown", EVAL + " --model {d}/models.py:good --model-arg depth=3", 2,
         r"models\.py:good.*does not take the arguments.*depth"),
    Case("eval-model-arg-zoo", EVAL + " --model zoo:mnist5k-standard --model-arg depth=3", 2,
         r"only be given with a factory REF"),
    Case("eval-weights-truncated", EVAL + " --model {d}/models.py:arch --weights {d}/trunc.safetensors", 2,
         r"trunc\.safetensors.*(safetensors|truncated)"),
    Case("eval-weights-empty", EVAL + " --model {d}/models.py:arch --weights {d}/empty.safetensors", 2,
         r"empty\.safetensors.*empty"),
    Case("eval-weights-pickle-named-safetensors", EVAL + " --model {d}/models.py:arch --weights {d}/pickled.safetensors",
         2, r"pickled\.safetensors.*not a safetensors file"),
    Case("eval-weights-wrong-shape", EVAL + " --model {d}/models.py:arch --weights {d}/wrongshape.pt", 2,
         r"weights do not match"),
    Case("eval-weights-missing", EVAL + " --model {d}/models.py:arch --weights {d}/nope.pt", 2, r"does not exist"),
    Case("eval-seed-2-63", EVAL + " --seed 9223372036854775808", 2, r"seed.*2\^63"),
    Case("eval-seed-negative", EVAL + " --seed -1", 2, r"seed"),
    Case("eval-n-zero", EVAL + " --n 0", 2, r"\bn\b.*>= 1"),
    Case("eval-bad-threat", EVAL + " --threat linf:abc", 2, r"linf:abc"),
    Case("eval-corrupt-db", "evaluate {d}/spec.toml --quiet --no-autoattack --db {corrupt_db} --out {t}/run", 2,
         r"corrupt\.db.*(corrupt|malformed|not a database)"),
    Case("eval-db-not-sqlite", "evaluate {d}/spec.toml --quiet --no-autoattack --db {d}/notadb.db --out {t}/run", 2,
         r"notadb\.db.*not a database"),
    Case("eval-out-unwritable", "evaluate {d}/spec.toml --quiet --no-autoattack --db {t}/h.db --out {d}/afile/run", 2,
         r"cannot write.*afile"),
    Case("eval-spec-missing", "evaluate {t}/nope.toml --quiet", 2, r"nope\.toml"),
    Case("eval-curve-attack-typo", EVAL + " {t}/typo.toml", 2, r"curve\.attacks.*pgdd"),
    Case("eval-gate-typo", EVAL + " {t}/gate.toml", 2, r"gates\.require"),
    Case("eval-bad-toml", "evaluate {t}/bad.toml --quiet", 2, r"not valid TOML"),
    Case("eval-junit-unwritable", EVAL + " --junit {d}/afile/j.xml", 2, r"cannot write.*afile"),
    # ---------------------------------------------------------------- attack
    Case("attack-truncated-npz", ATT + " --data npz:{d}/trunc.npz", 2, r"trunc\.npz"),
    Case("attack-typo-in-sync-free-switch", ATT + " --data npz:{d}/good.npz", 2,
         r"ADVKIT_SYNC_FREE must be 1 \(on\), 0 \(off\) or auto, got 'sometimes'",
         env=(("ADVKIT_SYNC_FREE", "sometimes"),)),
    Case("eval-typo-in-accelerate-switch", EVAL, 2, r"ADVKIT_ACCELERATE must be 1 \(on\), 0 \(off\) or auto, got 'of'",
         env=(("ADVKIT_ACCELERATE", "of"),)),
    Case("attack-zero-byte-npz", ATT + " --data npz:{d}/zero.npz", 2, r"zero\.npz.*empty"),
    Case("attack-empty-data", ATT + " --data npz:{d}/empty.npz", 2, r"no (images|samples)"),
    Case("attack-nan-pixels", ATT + " --data npz:{d}/nan.npz", 2, r"NaN"),
    Case("attack-label-beyond-width", ATT + " --data npz:{d}/biglabel.npz", 2, r"label 12.*10 outputs"),
    Case("attack-model-1-output", "attack fgsm --model {d}/models.py:one --threat linf:0.1 --data npz:{d}/good.npz", 2,
         r"1 output"),
    Case("attack-model-tuple", "attack fgsm --model {d}/models.py:tuple_out --threat linf:0.1 --data npz:{d}/good.npz",
         2, r"tuple"),
    Case("attack-model-raises", "attack fgsm --model {d}/models.py:raises --threat linf:0.1 --data npz:{d}/good.npz",
         2, r"boom"),
    Case("attack-save-unwritable", ATT + " --data npz:{d}/good.npz --save {d}/afile/adv.npz", 2, r"cannot write.*afile"),
    Case("attack-unknown-name", "attack pgdd --model {d}/models.py:good --threat linf:0.1 --data npz:{d}/good.npz", 2,
         r"pgdd"),
    Case("attack-bad-param", ATT + " --data npz:{d}/good.npz --param steps", 2, r"KEY=VALUE"),
    Case("attack-seed-2-63", ATT + " --data npz:{d}/good.npz --seed 9223372036854775808", 2, r"seed.*2\^63"),
    Case("attack-weights-pickled", "attack fgsm --model {d}/models.py:arch --weights {d}/pickled.safetensors "
         "--threat linf:0.1 --data npz:{d}/good.npz", 2, r"not a safetensors file"),
    # ---------------------------------------------------------------- inspect
    Case("inspect-model-1-output", "inspect --model {d}/models.py:one --data npz:{d}/good.npz", 2, r"1 output"),
    Case("inspect-model-5-outputs", "inspect --model {d}/models.py:five --data npz:{d}/good.npz", 2, r"5 outputs"),
    Case("inspect-model-tuple", "inspect --model {d}/models.py:tuple_out --data npz:{d}/good.npz", 2, r"tuple"),
    Case("inspect-model-raises", "inspect --model {d}/models.py:raises --data npz:{d}/good.npz", 2, r"boom"),
    Case("inspect-probabilities", "inspect --model {d}/models.py:probs --data npz:{d}/good.npz", 3, r"probabilities"),
    Case("inspect-empty-data", INSP + " --data npz:{d}/empty.npz", 2, r"no (images|samples)"),
    Case("inspect-zero-byte-npz", INSP + " --data npz:{d}/zero.npz", 2, r"zero\.npz.*empty"),
    Case("inspect-weights-truncated", "inspect --model {d}/models.py:arch --weights {d}/trunc.safetensors "
         "--data npz:{d}/good.npz", 2, r"trunc\.safetensors"),
    Case("inspect-model-ref-dotdot", "inspect --model ../../x:foo --data npz:{d}/good.npz", 2, r"\.\./\.\./x:foo"),
    Case("inspect-n-zero", INSP + " --data npz:{d}/good.npz --n 0", 2, r"--n"),
    Case("inspect-model-arg-no-key", INSP + " --data npz:{d}/good.npz --model-arg 9=1", 2, r"--model-arg.*identifier"),
    Case("attack-model-arg-unknown", ATT + " --data npz:{d}/good.npz --model-arg depth=3", 2,
         r"does not take the arguments"),
    # ---------------------------------------------------------------- certify
    Case("certify-n-zero", CERT + " --out {t}/cert --n 0", 2, r"--n.*>= 1"),
    Case("certify-model-arg-unknown", CERT + " --out {t}/cert --model-arg depth=3", 2, r"does not take the arguments"),
    Case("certify-n0-zero", CERT + " --out {t}/cert --n0 0", 2, r"--n0.*>= 1"),
    Case("certify-sigma-negative", CERT + " --out {t}/cert --sigma -1", 2, r"--sigma"),
    Case("certify-alpha-out-of-range", CERT + " --out {t}/cert --alpha 2", 2, r"--alpha"),
    Case("certify-empty-data", "certify --model {d}/models.py:good --data npz:{d}/empty.npz --sigma 0.25 --out {t}/cert",
         2, r"no (images|samples)"),
    Case("certify-label-beyond-width", "certify --model {d}/models.py:good --data npz:{d}/biglabel.npz --sigma 0.25 "
         "--n0 10 --n 20 --out {t}/cert --no-progress", 2, r"label 12.*10 outputs"),
    Case("certify-model-tuple", "certify --model {d}/models.py:tuple_out --data npz:{d}/good.npz --sigma 0.25 "
         "--out {t}/cert", 2, r"tuple"),
    Case("certify-out-unwritable", CERT + " --out {d}/afile/cert", 2, r"cannot write.*afile"),
    Case("certify-seed-2-63", CERT + " --out {t}/cert --seed 9223372036854775808", 2, r"seed.*2\^63"),
    Case("certify-device-cuda-missing", CERT + " --out {t}/cert --device cuda", 2, r"cuda.*not available",
         gpu_only_skip=True),
    Case("certify-device-bogus", CERT + " --out {t}/cert --device potato", 2, r"potato"),
    Case("certify-truncated-npz", "certify --model {d}/models.py:good --data npz:{d}/trunc.npz --sigma 0.25 "
         "--out {t}/cert", 2, r"trunc\.npz"),
    # ---------------------------------------------------------------- train
    Case("train-resume-malicious-checkpoint", TRAIN + " --checkpoint-dir {t}/ckpt-malicious --resume", 2,
         r"checkpoint\.pt.*(arbitrary code|cannot)"),
    Case("train-resume-truncated-checkpoint", TRAIN + " --checkpoint-dir {t}/ckpt-trunc --resume", 2,
         r"checkpoint\.pt.*(truncated|cannot read)"),
    Case("train-out-unwritable", TRAIN + " --out {d}/afile/model.safetensors", 2, r"cannot write.*afile"),
    Case("train-truncated-npz", "train --arch smallcnn --data npz:{d}/trunc.npz --epochs 1", 2, r"trunc\.npz"),
    Case("train-empty-data", "train --arch smallcnn --data npz:{d}/empty.npz --epochs 1 --val-size 0", 2,
         r"no (images|samples)"),
    Case("train-epochs-zero", TRAIN + " --epochs 0", 2, r"epochs"),
    Case("train-mean-not-numbers", TRAIN + " --mean a,b", 2, r"mean: expected comma-separated numbers"),
    Case("train-std-zero", TRAIN + " --std 0", 2, r"std: expected positive"),
    Case("train-mean-wrong-channels", TRAIN + " --mean 0.1,0.2,0.3", 2, r"mean: expected 1 value, got 3"),
    Case("train-seed-2-63", TRAIN + " --seed 9223372036854775808", 2, r"seed.*2\^63"),
    Case("train-out-not-safetensors", TRAIN + " --out {t}/model.pt", 2, r"\.safetensors"),
    # ---------------------------------------------------------------- gate
    Case("gate-json-list", "gate {d}/list.json --db {t}/none.db", 2, r"list\.json.*JSON object.*list"),
    Case("gate-not-json", "gate {d}/notjson.json --db {t}/none.db", 2, r"notjson\.json.*(not valid JSON|expected)"),
    Case("gate-minimal-result", "gate {d}/minimal.json --db {t}/none.db --baseline none", 2, r"minimal\.json.*clean"),
    Case("gate-corrupt-db", "gate latest --db {corrupt_db}", 2, r"corrupt\.db.*(corrupt|malformed|not a database)"),
    Case("gate-missing-run", "gate 999 --db {db}", 2, r"999"),
    Case("gate-bad-expression", "gate {run} --db {db} --require 'robust_accuracy >= abc'", 2, r"abc"),
    Case("gate-junit-unwritable", "gate {run} --db {db} --baseline none --junit {d}/afile/j.xml", 2,
         r"cannot write.*afile"),
    Case("gate-no-db", "gate latest --db {t}/none.db", 2, r"none\.db"),
    # ---------------------------------------------------------------- history
    Case("history-list-corrupt-db", "history list --db {corrupt_db}", 2, r"corrupt\.db.*(corrupt|malformed|not a database)"),
    Case("history-list-not-sqlite", "history list --db {d}/notadb.db", 2, r"notadb\.db.*not a database"),
    Case("history-show-missing-run", "history show 999 --db {db}", 2, r"999"),
    Case("history-show-no-db", "history show latest --db {t}/none.db", 2, r"none\.db"),
    Case("history-compare-json-list", "history compare {d}/list.json {run} --db {db}", 2, r"list\.json.*JSON object"),
    Case("history-dashboard-unwritable", "history dashboard --db {db} --out {d}/afile/dash.html", 2, r"cannot write.*afile"),
    # ---------------------------------------------------------------- report
    Case("report-json-list", "report {d}/list.json --db {t}/none.db", 2, r"list\.json.*JSON object"),
    Case("report-minimal-result", "report {d}/minimal.json --db {t}/none.db", 2, r"minimal\.json.*clean"),
    Case("report-corrupt-db", "report latest --db {corrupt_db}", 2, r"corrupt\.db.*(corrupt|malformed|not a database)"),
    Case("report-out-unwritable", "report {run} --db {db} --out {d}/afile/report.md", 2, r"cannot write.*afile"),
    Case("report-missing-target", "report nothing-here --db {db}", 2, r"nothing-here"),
    Case("report-robustbench-bad-card", "report {run} --db {db} --format robustbench --card additional_data=yes", 2,
         r"RobustBench model card: additional_data: expected boolean"),
    Case("report-robustbench-unknown-threat", "report {run} --db {db} --format robustbench --threat l2:9", 2,
         r"--threat: expected one of the run's threats"),
    Case("report-truncated-samples", "report {t}/brokenrun --db {db}", 2, r"samples\.npz.*cannot read"),
    Case("gate-run-dir-bad-json", "gate {t}/badjsonrun --db {db} --baseline none", 2, r"result\.json.*not valid JSON"),
    Case("history-compare-minimal", "history compare {d}/minimal.json {run} --db {db}", 2, r"minimal\.json.*clean"),
    Case("eval-image-shape-mismatch", EVAL + " --data npz:{d}/big.npz", 2, r"forward pass raised.*shape"),
]


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    env = build(root / "in")
    env.update(finished_run(root / "done", env))
    return env


def _prepare(case: Case, env: dict, t: Path) -> list[str]:
    """The case's argv with its placeholders filled; per-case inputs that a case edits are copied to ``t``."""
    import shutil

    for name in ("ckpt-malicious", "ckpt-trunc"):
        if name in case.argv:
            shutil.copytree(Path(env["d"]) / name, t / name)
    spec = (Path(env["d"]) / "spec.toml").read_text()
    if "typo.toml" in case.argv:
        (t / "typo.toml").write_text(spec.replace("[stages.curve]", '[stages.curve]\nattacks = ["pgdd"]'))
    if "gate.toml" in case.argv:
        (t / "gate.toml").write_text(spec + '\n[gates]\nrequire = ["robust_acuracy[linf:0.1] >= 0.5"]\n')
    for name in ("brokenrun", "badjsonrun"):
        if name in case.argv:
            shutil.copytree(env["run"], t / name)
    if "brokenrun" in case.argv:
        raw = (t / "brokenrun" / "samples.npz").read_bytes()
        (t / "brokenrun" / "samples.npz").write_bytes(raw[: len(raw) // 3])
    if "badjsonrun" in case.argv:
        (t / "badjsonrun" / "result.json").write_text('{"schema_version": 1, "clean": ')
    if "bad.toml" in case.argv:
        (t / "bad.toml").write_text("n = = 3\n")
    argv = shlex.split(case.argv.format(t=t, **env))
    if argv[0] == "evaluate" and sum(a.endswith(".toml") for a in argv) > 1:  # a second spec replaces the first
        argv.remove(f"{env['d']}/spec.toml")
    return argv


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, env, tmp_path, capsys, monkeypatch):
    if case.gpu_only_skip and torch.cuda.is_available():
        pytest.skip("the machine has CUDA: --device cuda is valid here")
    monkeypatch.chdir(tmp_path)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    before_inputs = _files(Path(env["d"]))
    argv = _prepare(case, env, tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    text = out + err
    assert "Traceback" not in text, text
    assert code == case.code, f"exit {code}, expected {case.code}; output:\n{text}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    hits = [ln for ln in lines if re.search(case.message, ln, re.IGNORECASE)]
    assert hits, f"no stderr line matches {case.message!r}; stderr:\n{err}"
    assert re.match(r"(error|evaluation aborted|Error): ", hits[0]), hits[0]
    assert not [ln for ln in lines if "advkit bug" in ln], err
    # no partial or mixed result: no run outputs, no temporary files, no new files among the inputs
    left = _files(tmp_path)
    assert not [f for f in left if f in OUTPUTS or ".tmp" in f], left
    assert _files(Path(env["d"])) == before_inputs
    assert not Path(env["marker"]).exists(), "a pickle payload ran"
