"""Exit codes mean one thing each: 4 (and only 4) for an internal error, with the traceback only under -v;
1 only for a failed gate; 130 for Ctrl-C."""
from __future__ import annotations

import json

import pytest

from advkit.cli import inspect as inspect_cmd
from advkit.cli.main import EXIT_INTERNAL, main


def _boom(*a, **k):
    raise TypeError("unexpected None in the frobnicator")


@pytest.fixture
def broken_loader(monkeypatch):
    monkeypatch.setattr("advkit.sources.data.load_data", _boom)
    return inspect_cmd


@pytest.mark.parametrize("argv", [["inspect"], ["inspect", "--json"]])
def test_an_internal_error_is_exit_4_with_one_line_and_no_traceback(broken_loader, argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == EXIT_INTERNAL == 4
    assert "Traceback" not in out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("advkit bug: please report") and "TypeError: unexpected None in the frobnicator" in lines[0]
    assert "-v" in lines[0]  # says how to get the traceback


def test_verbose_shows_the_traceback(broken_loader, capsys):
    assert main(["-v", "inspect"]) == 4
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "_boom" in err
    assert "advkit bug: please report" in err


def test_interrupt_is_130(monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr("advkit.sources.data.load_data", interrupted)
    assert main(["inspect"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_a_stray_eof_error_is_a_bug_not_an_abort(monkeypatch, capsys):
    """click turns EOFError into Abort; advkit has no prompts, so it is an internal error (was: "aborted", 3)."""
    def eof(*a, **k):
        raise EOFError("No data left in file")
    monkeypatch.setattr("advkit.sources.data.load_data", eof)
    assert main(["inspect"]) == 4
    assert "EOFError: No data left in file" in capsys.readouterr().err


def test_exit_1_means_a_gate_failed(tmp_path, capsys):
    result = {"schema_version": 1, "n": 100, "clean": {"accuracy": 0.5}, "threats": {}, "robust_accuracy": {},
              "findings": []}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(result))
    assert main(["gate", str(f), "--db", str(tmp_path / "none.db"), "--baseline", "none",
                 "--require", "clean_accuracy >= 0.9"]) == 1
    assert main(["gate", str(f), "--db", str(tmp_path / "none.db"), "--baseline", "none",
                 "--require", "clean_accuracy >= 0.4"]) == 0


def test_readme_documents_every_exit_code():
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ("`0`", "`1`", "`2`", "`3`", "`4`", "`5`", "`130`"):
        assert f"| {code} |" in section, code
    assert "advkit bug: please report" in section and "-v" in section
