"""Issue 24: a misbehaving model, a full disk or a corrupt file never yields a wrong number or a lost run.

Every case runs ``advkit ...`` in-process and asserts the documented exit code (docs/errors.md: 2 input,
3 run did not complete, 6 the model misbehaved, 7 results could not be written), a one-line message, no
traceback, and that nothing was lost or mixed: no run files left in the case's folder (or, where a
folder already held a run, its files byte-identical), no history run recorded complete by a failing
case, and every input file (databases included) byte-identical with no journal or WAL file beside it.

Write failures are simulated in-process: ``advkit.atomic._fsync`` raises ENOSPC/EIO for one file name,
and the history database's ``max_page_count`` is pinned so that SQLite itself reports a full disk.
"""
from __future__ import annotations

import errno
import hashlib
import re
import shlex
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from advkit.cli.main import main

from _hostile_fixtures import build, finished_run
from _hostile_models_fixtures import build_models

ATT = "attack {a} --model {m}/flaky.py:{f} --data npz:{m}/good.npz --threat linf:0.1 --n 20"
EVAL = "evaluate {m}/spec.toml --quiet --db {t}/h.db --out {t}/run --model {m}/flaky.py:{f}"
CERT = ("certify --model {m}/flaky.py:{f} --data npz:{m}/good.npz --sigma 0.25 --n0 10 --n 20 --n-images 2 "
        "--no-progress --out {t}/cert")
INSP = "inspect --model {m}/flaky.py:{f} --data npz:{m}/good.npz --n 20"
GOOD_EVAL = "evaluate {m}/spec.toml --quiet --db {t}/h.db --out {t}/run"
NAN = r"non-finite logits"
# a run's outputs; a failing case leaves none (certify's row journal samples.csv is kept on purpose: it holds
# only images finished on finite logits, so that the run resumes)
OUTPUTS = ("run/result.json", "run/samples.npz", "run/report.md", "run/report.html", "cert/certify.json",
           "adv.npz", "dash.html", "report.md")


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    code: int
    message: str  # a regex the one-line error must match (case-insensitive)
    prep: str = ""  # a preparation step (PREPS) run before the command
    fail: str = ""  # a simulated write failure while the command runs (see _simulate)


def _a(attack: str, factory: str) -> str:
    return ATT.format(a=attack, f=factory, m="{m}")


def _f(template: str, factory: str) -> str:
    return template.format(f=factory, m="{m}", t="{t}")


CASES = [
    # ------------------------------------------- non-finite logits: never counted, exit 6 naming the model
    Case("attack-fgsm-nan-all", _a("fgsm", "nan_all"), 6, r"flaky\.py:nan_all.*" + NAN + r".*20 of 20"),
    Case("attack-pgd-nan-all", _a("pgd", "nan_all"), 6, NAN),
    Case("attack-fgsm-nan-some", _a("fgsm", "nan_some"), 6, NAN + r" .*for \d+ of 20 samples"),
    Case("attack-pgd-nan-some", _a("pgd", "nan_some"), 6, NAN),
    Case("attack-pgd-nan-after-2-calls", _a("pgd", "nan_after_2"), 6, NAN + r".*attack 'pgd'"),
    Case("attack-fgsm-nan-after-2-calls", _a("fgsm", "nan_after_2"), 6, NAN + r".*attack 'fgsm'"),
    Case("attack-apgd-inf-after-2-calls", _a("apgd-ce", "inf_after_2"), 6, NAN),
    Case("attack-square-nan-after-2-calls", _a("square", "nan_after_2") + " --param n_queries=5", 6, NAN),
    Case("attack-fgsm-inf-some", _a("fgsm", "inf_some"), 6, NAN),
    Case("attack-pgd-fp16-overflow", _a("pgd", "fp16"), 6, NAN),
    Case("attack-std-1e-50", _a("fgsm", "good") + " --std 1e-50", 6, NAN),
    Case("eval-nan-all", _f(EVAL, "nan_all"), 6, NAN),
    Case("eval-nan-some", _f(EVAL, "nan_some"), 6, NAN),
    Case("eval-nan-from-clean-pass", _f(EVAL, "nan_after_6"), 6, NAN + r".*clean pass"),
    Case("eval-nan-from-attacks", _f(EVAL, "nan_after_7"), 6, NAN + r".*attack"),
    Case("eval-inf-some", _f(EVAL, "inf_some"), 6, NAN),
    Case("eval-fp16-overflow", _f(EVAL, "fp16"), 6, NAN),
    Case("eval-std-1e-50", _f(EVAL, "good") + " --std 1e-50", 6, NAN),
    Case("certify-nan-all", _f(CERT, "nan_all"), 6, NAN + r".*randomized smoothing"),
    Case("certify-nan-after-1-call", _f(CERT, "nan_after_2"), 6, NAN),
    Case("certify-inf-some", _f(CERT, "inf_some"), 6, NAN),
    Case("inspect-nan-all", _f(INSP, "nan_all"), 6, NAN),
    # ------------------------------------------- the model's own exceptions and exits: exit 6, never 0, 1 or 4
    Case("attack-pgd-raises-part-way", _a("pgd", "raise_after_2"), 6, r"flaky\.py:raise_after_2.*RuntimeError.*flaky"),
    Case("attack-fgsm-raises-part-way", _a("fgsm", "raise_after_2"), 6, r"RuntimeError"),
    Case("attack-pgd-keyerror-part-way", _a("pgd", "keyerror_after_2"), 6, r"KeyError.*layer7"),
    Case("attack-pgd-sys-exit-0", _a("pgd", "exit0_after_2"), 6, r"flaky\.py:exit0_after_2.*sys\.exit\(0\)"),
    Case("attack-pgd-sys-exit-1", _a("pgd", "exit1_after_2"), 6, r"sys\.exit\(1\)"),
    Case("attack-pgd-fewer-logits-later", _a("pgd", "width_after_2"), 6, r"shape \(\d+, 5\).*expected \(\d+, 10\)"),
    Case("attack-pgd-fewer-rows-later", _a("pgd", "rows_after_2"), 6, r"logits of shape"),
    Case("eval-raises-in-clean-pass", _f(EVAL, "raise_after_6"), 6, r"RuntimeError.*flaky"),
    Case("eval-raises-in-attacks", _f(EVAL, "raise_after_7"), 6, r"RuntimeError.*flaky"),
    Case("eval-sys-exit-0", _f(EVAL, "exit0_after_7"), 6, r"sys\.exit\(0\)"),
    Case("eval-sys-exit-1", _f(EVAL, "exit1_after_7"), 6, r"sys\.exit\(1\)"),
    Case("eval-fewer-logits-later", _f(EVAL, "width_after_7"), 6, r"logits of shape"),
    Case("eval-tuple-later", _f(EVAL, "tuple_after_7"), 6, r"returned a tuple"),
    Case("certify-raises", _f(CERT, "raise_after_1"), 6, r"RuntimeError.*flaky"),
    Case("certify-sys-exit-0", _f(CERT, "exit0_after_1"), 6, r"sys\.exit\(0\)"),
    Case("certify-fewer-logits-later", _f(CERT, "width_after_1"), 6, r"logits of shape"),
    Case("inspect-raises-part-way", _f(INSP, "raise_after_2"), 6, r"RuntimeError"),
    # a model that cannot even be loaded stays an input error (exit 2)
    Case("eval-factory-calls-sys-exit", _f(EVAL, "exit_in_factory"), 2, r"factory.*SystemExit"),
    Case("eval-module-calls-sys-exit", GOOD_EVAL + " --model {m}/exits.py:good", 2, r"importing.*exits\.py.*SystemExit"),
    # ------------------------------------------- results that cannot be written: exit 7, the run never complete
    Case("eval-disk-full-samples", GOOD_EVAL, 7, r"cannot write.*run.*No space left", fail="samples.npz:ENOSPC"),
    Case("eval-io-error-result-json", GOOD_EVAL, 7, r"cannot write.*result\.json", fail="result.json:EIO"),
    Case("eval-disk-full-report", GOOD_EVAL, 7, r"cannot write.*report\.md", fail="report.md:ENOSPC"),
    Case("eval-disk-full-junit", GOOD_EVAL + " --junit {t}/j.xml", 7, r"cannot write.*j\.xml", fail="j.xml:ENOSPC"),
    Case("eval-history-db-full", GOOD_EVAL, 7, r"history database.*h\.db.*full", fail="db:full"),
    Case("attack-save-disk-full", _a("fgsm", "good") + " --save {t}/adv.npz", 7, r"cannot write.*adv\.npz",
         fail="adv.npz:ENOSPC"),
    Case("certify-disk-full", _f(CERT, "good"), 7, r"cannot write.*cert", fail="certify.json:ENOSPC"),
    Case("gate-latest-after-disk-full", "gate latest --db {t}/h.db", 3, r"did not complete", prep="disk-full-run"),
    Case("eval-out-holds-another-run", GOOD_EVAL, 2, r"--out .*run.*already holds the files of run 1",
         prep="finished-run"),
    Case("eval-out-holds-foreign-report", GOOD_EVAL, 2, r"already holds the files of another run.*report\.md",
         prep="stray-report"),
    # ------------------------------------------- --resume after the model's definition changed
    Case("eval-resume-factory-source-changed", "evaluate {t}/rspec.toml --resume --quiet --db {t}/h.db --out {t}/run",
         2, r"model weights or definition.*without --resume", prep="interrupted:defn.py"),
    Case("eval-resume-imported-sibling-changed", "evaluate {t}/rspec.toml --resume --quiet --db {t}/h.db "
         "--out {t}/run", 2, r"model weights or definition", prep="interrupted:helper.py"),
    Case("eval-resume-torchscript-archive-changed", "evaluate {t}/rspec.toml --resume --quiet --db {t}/h.db "
         "--out {t}/run", 2, r"model weights or definition", prep="interrupted:net.pt"),
    # ------------------------------------------- read-only commands never write; a foreign database is refused
    Case("history-list-foreign-db", "history list --db {t}/foreign.db", 2, r"foreign\.db is not an advkit history",
         prep="copy:foreign.db"),
    Case("history-show-foreign-db", "history show latest --db {t}/foreign.db", 2, r"not an advkit history",
         prep="copy:foreign.db"),
    Case("gate-latest-foreign-db", "gate latest --db {t}/foreign.db", 2, r"not an advkit history",
         prep="copy:foreign.db"),
    Case("report-latest-foreign-db", "report latest --db {t}/foreign.db", 2, r"not an advkit history",
         prep="copy:foreign.db"),
    Case("history-dashboard-foreign-db", "history dashboard --db {t}/foreign.db --out {t}/dash.html", 2,
         r"not an advkit history", prep="copy:foreign.db"),
    Case("history-compare-foreign-db", "history compare 1 2 --db {t}/foreign.db", 2, r"not an advkit history",
         prep="copy:foreign.db"),
    # ------------------------------------------- a stored history row whose JSON is corrupt
    Case("history-show-corrupt-row", "history show 1 --db {t}/badrow.db", 2, r"run 1 .*not valid JSON",
         prep="copy:badrow.db"),
    Case("history-show-latest-corrupt-row", "history show latest --db {t}/badrow.db", 2, r"run 1 .*not valid JSON",
         prep="copy:badrow.db"),
    Case("gate-latest-corrupt-row", "gate latest --db {t}/badrow.db", 2, r"run 1 .*not valid JSON",
         prep="copy:badrow.db"),
    Case("gate-n-corrupt-row", "gate 1 --db {t}/badrow.db", 2, r"run 1 .*not valid JSON", prep="copy:badrow.db"),
    Case("report-n-corrupt-row", "report 1 --db {t}/badrow.db --out {t}/report.md", 2, r"run 1 .*not valid JSON",
         prep="copy:badrow.db"),
    Case("history-compare-corrupt-row", "history compare 1 1 --db {t}/badrow.db", 2, r"run 1 .*not valid JSON",
         prep="copy:badrow.db"),
    Case("history-show-row-not-object", "history show 1 --db {t}/listrow.db", 2, r"run 1 .*JSON object",
         prep="copy:listrow.db"),
    # ------------------------------------------- malformed or absurd model-file metadata: exit 2 before building
    *[Case(f"eval-metadata-{name}", GOOD_EVAL + f" --model {{m}}/meta-{name}.safetensors", 2, pattern)
      for name, pattern in (("bounds-one", r"'bounds'"), ("bounds-text", r"'bounds'"), ("bounds-reversed", r"'bounds'"),
                            ("mean-text", r"'mean'"), ("mean-wrong-length", r"'mean' must have 1 or 1"),
                            ("std-zero", r"'std' must be positive"), ("shape-null", r"'input_shape'"),
                            ("shape-short", r"'input_shape'"), ("shape-huge", r"input_shape\[1\]"),
                            ("kwargs-bad-type", r"(invalid options|cannot be built).*padding|'int' and 'str'"), ("kwargs-unknown", r"colour"),
                            ("kwargs-list", r"arch_kwargs.*JSON object"), ("classes-huge", r"num_classes"),
                            ("wrn-1000-40", r"parameters; expected at most"),
                            ("wrn-huge-width", r"widen_factor=100000 is beyond"))],
    Case("attack-metadata-bounds-one", "attack fgsm --model {m}/meta-bounds-one.safetensors --data npz:{m}/good.npz "
         "--threat linf:0.1", 2, r"'bounds'"),
    Case("inspect-metadata-wrn-1000-40", "inspect --model {m}/meta-wrn-1000-40.safetensors --data npz:{m}/good.npz",
         2, r"parameters"),
    # ------------------------------------------- files that are not what they claim
    Case("eval-spec-not-utf8", "evaluate {m}/latin1.toml --quiet --db {t}/h.db --out {t}/run", 2, r"latin1\.toml.*UTF-8"),
    Case("train-config-not-utf8", "train {m}/latin1.toml --arch smallcnn --data npz:{m}/good.npz --epochs 1", 2,
         r"latin1\.toml.*UTF-8"),
    Case("gate-spec-not-utf8", "gate latest --db {db} --spec {m}/latin1.toml", 2, r"latin1\.toml.*UTF-8"),
    Case("eval-label-1e9", GOOD_EVAL + " --data npz:{m}/label1e9.npz", 2, r"label 1000000000 .*below 100,000"),
    Case("attack-label-2-64", _a("fgsm", "good").replace("good.npz", "labelmax.npz"), 2, r"label 18446744073709551615"),
    Case("certify-label-1e9", _f(CERT, "good").replace("good.npz", "label1e9.npz"), 2, r"label 1000000000"),
    Case("inspect-label-2-64", _f(INSP, "good").replace("good.npz", "labelmax.npz"), 2, r"label 18446744073709551615"),
]


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-models")
    env = build(root / "in")
    env.update(finished_run(root / "done", env))
    env.update(build_models(root / "m", env["db"]))
    return env


def _stop(label, done, total):
    if label == "clean":
        raise KeyboardInterrupt  # as a crash would leave it: the run is 'failed' with stored batches


def _interrupted(env: dict, t: Path, changed: str) -> None:
    """An unfinished run of {t}/rspec.toml in {t}/h.db, then the model's definition file ``changed``."""
    import shutil

    from advkit.evaluation import evaluate, load_spec
    from advkit.results import Store

    m = Path(env["m"])
    for name in ("defn.py", "helper.py", "net.pt", "spec.toml"):
        shutil.copy(m / name, t / name)
    ref = f"torchscript:{t}/net.pt" if changed == "net.pt" else f"{t}/defn.py:net"
    (t / "rspec.toml").write_text((t / "spec.toml").read_text().replace(f"{m}/flaky.py:good", ref))
    with Store(t / "h.db") as store, pytest.raises(KeyboardInterrupt):
        evaluate(load_spec(t / "rspec.toml"), store=store, progress=_stop)
    if changed == "net.pt":
        import torch
        torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.ReLU())).save(
            str(t / "net.pt"))
    else:
        (t / changed).write_text((t / changed).read_text() + "\n# edited: the model now differs\n")


def _prep(case: Case, env: dict, t: Path, monkeypatch) -> None:
    import shutil
    kind, _, arg = case.prep.partition(":")
    if kind == "copy":
        shutil.copy(Path(env["m"]) / arg, t / arg)
    elif kind == "interrupted":
        _interrupted(env, t, arg)
    elif kind == "finished-run":
        assert main(shlex.split(GOOD_EVAL.format(m=env["m"], t=t))) == 0
    elif kind == "stray-report":
        (t / "run").mkdir()
        (t / "run" / "report.md").write_text("# somebody else's report\n")
    elif kind == "disk-full-run":
        with monkeypatch.context() as mp:
            _simulate("samples.npz:ENOSPC", mp)
            assert main(shlex.split(GOOD_EVAL.format(m=env["m"], t=t))) == 7


def _simulate(fail: str, monkeypatch) -> None:
    """``NAME:ENOSPC|EIO``: writing a file whose name contains NAME fails; ``db:full``: SQLite's disk is full
    when the run is recorded complete."""
    import advkit.atomic as atomic
    from advkit.results.store import Store

    name, _, what = fail.partition(":")
    if name == "db":
        finish = Store.finish_run

        def full_finish(self, run_id, result, **kw):
            pages = self.conn.raw.execute("PRAGMA page_count").fetchone()[0]
            self.conn.raw.execute(f"PRAGMA max_page_count = {pages}")
            return finish(self, run_id, result, **kw)
        monkeypatch.setattr(Store, "finish_run", full_finish)
        return
    real = atomic._fsync
    code = getattr(errno, what)

    def failing(path):
        if name in Path(path).name:
            raise OSError(code, "No space left on device" if what == "ENOSPC" else "Input/output error")
        return real(path)
    monkeypatch.setattr(atomic, "_fsync", failing)


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def _runs(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_model_case(case: Case, env, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _prep(case, env, tmp_path, monkeypatch)
    if case.fail:
        _simulate(case.fail, monkeypatch)
    inputs = {k: _files(Path(env[k])) for k in ("d", "m")}
    runs_before = _runs(tmp_path / "h.db")
    before = _files(tmp_path)
    capsys.readouterr()
    code = main(shlex.split(case.argv.format(t=tmp_path, **env)))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    assert code == case.code, f"exit {code}, expected {case.code}; output:\n{out}{err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    hits = [ln for ln in lines if re.search(case.message, ln, re.IGNORECASE)]
    assert hits, f"no stderr line matches {case.message!r}; stderr:\n{err}"
    assert re.match(r"(error|evaluation aborted|Error): ", hits[0]), hits[0]
    assert not [ln for ln in lines if "advkit bug" in ln], err
    # nothing lost or mixed: the inputs and what was there before are byte-identical, no new run files,
    # no temporary or journal files, no run recorded complete by the failing command
    assert {k: _files(Path(env[k])) for k in ("d", "m")} == inputs
    after = _files(tmp_path)  # (the history h.db is compared by its rows below: SQLite may checkpoint its WAL)
    assert {k: v for k, v in after.items() if k in before and not k.startswith("h.db")} == \
        {k: v for k, v in before.items() if not k.startswith("h.db")}
    new = set(after) - set(before)
    # (advkit's own history h.db is in WAL mode: SQLite keeps its -wal/-shm beside it while it is read)
    assert not [f for f in new if f in OUTPUTS or ".tmp" in f
                or (f.endswith(("-wal", "-journal", "-shm")) and not f.startswith("h.db-"))], new
    runs = _runs(tmp_path / "h.db")
    assert runs[:len(runs_before)] == runs_before
    assert not [r for r in runs[len(runs_before):] if r[1] == "complete"], runs
