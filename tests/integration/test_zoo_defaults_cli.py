"""``advkit evaluate --model zoo:NAME`` evaluates on the model's own data set and threat; an L∞ ε as large as
the input range is refused with exit code 2 and a k/255 hint (issue 14)."""
from __future__ import annotations

import json

import pytest

from advkit.cli.main import main

CLEAN_ONLY = """
n = 20
[stages.fgsm]
enabled = false
[stages.pgd]
enabled = false
[stages.autoattack]
version = "off"
[stages.curve]
enabled = false
[stages.checks]
enabled = false
"""


def _have_fashion_mnist() -> bool:
    from advkit.errors import AdvkitError
    from advkit.sources.data import load_data
    try:
        load_data("fashion-mnist", "test")
    except AdvkitError:
        return False
    return True


@pytest.mark.skipif(not _have_fashion_mnist(), reason="Fashion-MNIST files (Debian dataset-fashion-mnist) absent")
def test_zoo_model_evaluates_on_its_own_data(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('model = "zoo:fmnist-standard"\n' + CLEAN_ONLY)
    out = tmp_path / "run"
    code = main(["evaluate", str(spec), "--out", str(out), "--db", str(tmp_path / "h.db"), "-q"])
    _, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["data"] == "fashion-mnist" and list(result["threats"]) == ["linf:0.1"]
    assert "fashion-mnist" in err  # said once, so the user knows
    assert result["clean"]["accuracy"] >= 0.6  # ~89% on its own data (16.7% on mnist5k)


def test_explicit_data_wins(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('model = "zoo:fmnist-standard"\ndata = "mnist5k"\n' + CLEAN_ONLY)
    out = tmp_path / "run"
    assert main(["evaluate", str(spec), "--out", str(out), "--db", str(tmp_path / "h.db"), "-q"]) == 0
    assert json.loads((out / "result.json").read_text())["data"] == "mnist5k"


@pytest.mark.parametrize("cmd", [["evaluate", "--n", "5", "--threat", "linf:8"],
                                 ["attack", "fgsm", "--data", "mnist5k", "--n", "5", "--threat", "linf:8"]])
def test_linf_8_is_refused_with_a_hint(tmp_path, capsys, cmd):
    code = main([*cmd, "--model", "zoo:mnist5k-standard", *(["--db", str(tmp_path / "h.db"), "--out",
                                                              str(tmp_path / "o")] if cmd[0] == "evaluate" else [])])
    _, err = capsys.readouterr()
    assert code == 2
    assert "linf:8/255" in " ".join(err.split()) and "--force-eps" in err
    assert "Traceback" not in err
