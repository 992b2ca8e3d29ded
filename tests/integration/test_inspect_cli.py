import json

from advkit.cli.main import main


def test_inspect_default_model_is_clean(capsys):
    assert main(["inspect", "--n", "50", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "zoo:mnist5k-standard" and info["findings"] == []
    assert info["clean_accuracy"] > 0.9 and info["input_shape"] == [1, 28, 28]


def test_inspect_softmax_model_aborts_with_exit_3(tmp_path, capsys):
    f = tmp_path / "m.py"
    f.write_text("import torch\n"
                 "def build():\n"
                 "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Softmax(1))\n")
    assert main(["inspect", "--model", f"{f}:build", "--n", "20"]) == 3
    assert "probabilities" in capsys.readouterr().out


def test_inspect_bad_model_ref_is_a_usage_error(tmp_path):
    assert main(["inspect", "--model", "zoo:no-such-model", "--n", "5"]) == 2
