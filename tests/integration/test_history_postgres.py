"""``evaluate``, ``history``, ``gate`` and ``report`` against a shared PostgreSQL history, as a CI job uses it.

The password in the URL (the test server trusts local connections and ignores it) must never be printed,
nor stored in result.json, the reports or the history.
"""
from __future__ import annotations

import json

import pytest

from advkit.cli.main import main
from advkit.results import Store

from _evalhelpers import write_inputs, write_spec

SECRET = "pw-Zq81x"


def test_evaluate_into_postgresql_then_history_gate_and_report(tmp_path, digits_model, pg_server, capsys,
                                                               monkeypatch):
    refs = write_inputs(tmp_path, digits_model)
    url = pg_server.new_database().replace("postgres@", f"postgres:{SECRET}@")
    spec = write_spec(tmp_path / "spec.toml", refs, n=20, batch_size=10)
    outs = []
    for i in range(2):
        code = main(["evaluate", str(spec), "--out", str(tmp_path / f"o{i}"), "--db", url, "--quiet"])
        outs.append(capsys.readouterr())
        assert code == 0, outs[-1]
    monkeypatch.setenv("ADVKIT_DB", url)  # the other commands find the history through the environment
    assert main(["history", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in listed] == [2, 1] and {r["status"] for r in listed} == {"complete"}
    assert main(["gate", "latest", "--require", "robust_accuracy[linf:0.1] >= 0.0", "--max-drop", "100pp",
                 "--allow-upper-bound"]) == 0  # the tiny budgets make it an upper bound
    outs.append(capsys.readouterr())
    assert main(["report", "latest", "--format", "md", "--out", str(tmp_path / "r.md")]) == 0
    outs.append(capsys.readouterr())
    assert main(["history", "list"]) == 0
    outs.append(capsys.readouterr())
    printed = "".join(o.out + o.err for o in outs)
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*")
                      if p.is_file() and p.suffix in (".json", ".md", ".html", ".xml"))
    with Store(url) as st:
        stored = json.dumps([st.load_result(r) for r in (1, 2)]) + json.dumps(
            [row for row in st.conn.execute("SELECT spec, result FROM runs").fetchall()])
    for text in (printed, written, stored):
        assert SECRET not in text
    assert "***" in printed  # the URL is shown, masked
    assert json.loads((tmp_path / "o1" / "result.json").read_text())["spec"]["db"].count("***") == 1


def test_an_unreachable_history_server_is_a_usage_error_naming_it_masked(capsys):
    code = main(["history", "list", "--db", f"postgresql://ci:{SECRET}@/h?host=/nonexistent-advkit&port=1"])
    err = capsys.readouterr().err
    assert code == 2 and SECRET not in err and "postgresql://ci:***@" in err and "Traceback" not in err
