"""Factory arguments: ``--model-arg KEY=VALUE`` (TOML literals) and a spec's ``[model.args]`` reach the
factory of a ``.py`` file and of a ``pkg.module:factory`` REF, name the model, and are part of the run's
identity (a resume with other arguments is refused)."""
from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest

from advkit.cli.main import main
from advkit.errors import ConfigError
from advkit.evaluation import evaluate, load_spec, with_options
from advkit.results import Store

FACTORY = '''
import json
import torch
from torch import nn

SEEN = {seen!r}


def build(width=4, scale=1.0, name="plain", ws=(1, 2), flag=False):
    with open(SEEN, "w") as fh:
        json.dump({{"width": width, "scale": scale, "name": name, "ws": list(ws), "flag": flag}}, fh)
    torch.manual_seed(width)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
'''

SPEC = """
data = "digits"
n = 12
batch_size = 6
threats = ["linf:0.1"]
[stages.pgd]
steps = 2
restarts = 1
[stages.autoattack]
version = "off"
[stages.curve]
enabled = false
[stages.checks]
enabled = false
"""


@pytest.fixture
def factory(tmp_path):
    seen = tmp_path / "seen.json"
    path = tmp_path / "tiny_factory.py"
    path.write_text(FACTORY.format(seen=str(seen)))
    return path, seen


def _inspect(ref, *args):
    return main(["inspect", "--model", ref, *args, "--data", "digits", "--n", "8", "--json"])


def test_model_args_reach_a_py_factory_as_toml_values(factory, capsys):
    path, seen = factory
    code = _inspect(f"{path}:build", "--model-arg", "width=7", "--model-arg", "scale=0.5", "--model-arg",
                    'name="x y"', "--model-arg", "ws=[3, 4]", "--model-arg", "flag=true")
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(seen.read_text()) == {"width": 7, "scale": 0.5, "name": "x y", "ws": [3, 4], "flag": True}
    assert json.loads(out)["model"] == f'{path}:build(flag=true, name="x y", scale=0.5, width=7, ws=[3, 4])'


def test_model_args_reach_a_module_factory(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "pkgroot" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    seen = tmp_path / "seen.json"
    (pkg / "nets.py").write_text(FACTORY.format(seen=str(seen)))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgroot"))
    assert _inspect("mypkg.nets:build", "--model-arg", "width=5") == 0
    assert json.loads(seen.read_text())["width"] == 5
    assert json.loads(capsys.readouterr().out)["model"] == "mypkg.nets:build(width=5)"


@pytest.mark.parametrize("arg, words", [
    ("width=abc", ["--model-arg width", "TOML value", "'abc'"]),
    ("width", ["--model-arg", "KEY=VALUE"]),
    ("9x=1", ["--model-arg", "identifier"]),
    ("depth=3", ["does not take the arguments", "depth"]),
    ("ws=[1,", ["--model-arg ws", "TOML value"]),
])
def test_bad_model_args_are_usage_errors(factory, capsys, arg, words):
    path, _ = factory
    assert _inspect(f"{path}:build", "--model-arg", arg) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
    assert "Traceback" not in err and "bug" not in err


def test_model_args_need_a_factory_ref(capsys):
    assert _inspect("zoo:mnist5k-standard", "--model-arg", "width=3") == 2
    assert "only be given with a factory REF" in capsys.readouterr().err


def test_spec_model_args_table_and_option_override(factory, tmp_path):
    path, seen = factory
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(textwrap.dedent(SPEC) + f'[model]\nref = {json.dumps(f"{path}:build")}\n'
                         '[model.args]\nwidth = 6\nname = "s"\n')
    spec = load_spec(spec_file)
    assert spec.model_args == {"width": 6, "name": "s"}
    # the arguments are in the model's identity, not in the protocol's (spec) hash
    assert dataclasses.replace(spec, model_args={}).spec_hash() == spec.spec_hash()
    assert with_options(spec, model=f"{path}:other").model_args == {}  # another model: not its arguments
    over = with_options(spec, model_args={"width": 8})
    assert over.model_args == {"width": 8, "name": "s"}
    assert load_spec(spec_file).to_dict()["model_args"] == {"width": 6, "name": "s"}
    out = tmp_path / "out"
    code = main(["evaluate", str(spec_file), "--model-arg", "width=9", "--db", str(tmp_path / "h.db"),
                 "--out", str(out), "--quiet"])
    assert code in (0, 1)
    assert json.loads(seen.read_text())["width"] == 9 and json.loads(seen.read_text())["name"] == "s"
    result = json.loads((out / "result.json").read_text())
    assert result["model"] == f'{path}:build(name="s", width=9)'
    assert result["spec"]["model_args"] == {"width": 9, "name": "s"}


def test_spec_model_args_errors_name_the_key(factory, tmp_path):
    path, _ = factory
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[model]\nref = {json.dumps(f"{path}:build")}\nargs = 3\n')
    with pytest.raises(ConfigError, match="model.args: expected a table"):
        load_spec(bad)
    bad.write_text('[model]\n[model.args]\nwidth = 3\n')
    with pytest.raises(ConfigError, match="model.ref: expected the model REF"):
        load_spec(bad)


class _Stop(Exception):
    pass


def test_resume_with_other_model_args_is_refused(factory, tmp_path, capsys):
    path, _ = factory
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(f"model = {json.dumps(f'{path}:build')}\n" + textwrap.dedent(SPEC))
    db = tmp_path / "h.db"

    def stop(label, done, total):
        if label == "clean":
            raise _Stop

    with Store(db) as store, pytest.raises(_Stop):
        evaluate(with_options(load_spec(spec_file), model_args={"name": "a"}), store=store, progress=stop)
    # same weights (``name`` does not change them), same spec hash: only the arguments differ
    code = main(["evaluate", str(spec_file), "--model-arg", 'name="b"', "--db", str(db), "--out",
                 str(tmp_path / "out"), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "factory arguments" in err and 'name="a"' in err and "without --resume" in err
    assert not (tmp_path / "out").exists()


def test_attack_and_certify_pass_model_args(factory, tmp_path, capsys):
    path, seen = factory
    code = main(["attack", "fgsm", "--model", f"{path}:build", "--model-arg", "width=3", "--data", "digits",
                 "--threat", "linf:0.1", "--n", "4", "--json"])
    assert code == 0 and json.loads(seen.read_text())["width"] == 3
    assert json.loads(capsys.readouterr().out)["model"] == f"{path}:build(width=3)"
    out = tmp_path / "cert"
    code = main(["certify", "--model", f"{path}:build", "--model-arg", "width=5", "--data", "digits", "--sigma",
                 "0.25", "--n0", "5", "--n", "10", "--n-images", "2", "--out", str(out), "--no-progress", "--json"])
    assert code == 0 and json.loads(seen.read_text())["width"] == 5
    assert json.loads((out / "config.json").read_text())["model"] == f"{path}:build(width=5)"
    # the certify directory holds rows of width=5: other arguments (same weights) are refused, not mixed in
    code = main(["certify", "--model", f"{path}:build", "--model-arg", "width=5", "--model-arg", 'name="b"', "--data", "digits", "--sigma",
                 "0.25", "--n0", "5", "--n", "10", "--n-images", "2", "--out", str(out), "--no-progress"])
    assert code == 2 and "different settings" in capsys.readouterr().err
