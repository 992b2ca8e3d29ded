"""Training defaults per task, the ε warm-up that is not shorter than the run, the LR warm-up, and the
stall check (chance level → TrainingStalled, exit code 5, no model file) — the fast part of issue 17."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advkit.cli.main import main
from advkit.errors import ConfigError, TrainingStalled
from advkit.evaluation.metrics import at_chance, chance_accuracy
from advkit.model import Classifier
from advkit.training import TrainConfig, fit
from advkit.training.defaults import fit_warmup, task_defaults
from advkit.training.schedules import lr_factor
from advkit.training.stall import ChanceMonitor, likely_cause


def tiny_net(seed: int = 0) -> Classifier:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(128, 10))
    return Classifier(net, num_classes=10, input_shape=(1, 8, 8))


@pytest.fixture(scope="module")
def digits():
    from advkit.sources.data import load_data
    tr = load_data("digits", "train")
    return tr.x, tr.y


# ------------------------------------------------------------------ defaults
def test_old_defaults_are_gone_and_the_new_ones_are_documented():
    """The defaults that left a 3-epoch smallcnn at 10% (SGD 0.05, ×0.1 cuts at 50%/75%) are not the defaults."""
    c = TrainConfig.for_task(method="standard", epochs=3)
    assert (c.optimizer, c.lr, c.schedule, c.batch_size) == ("adam", 1e-3, "cosine", 64)
    assert c.lr_warmup_epochs == pytest.approx(0.3) and c.chance_patience == 2
    from advkit.cli.train import train
    help_text = train.get_help(__import__("click").Context(train))
    for needle in ("adam, lr 1e-3", "cosine", "Exit codes", "5 training stalled"):
        assert needle in help_text


def test_task_defaults_follow_data_method_epochs_and_optimizer():
    d = TrainConfig.for_task(data="digits", method="pgd-at", epochs=3)
    assert d.eps == 0.125 and d.arch_kwargs == {"padding": 1} and (d.val_size, d.batch_size, d.lr) == (0, 4, 2e-3)
    assert (d.mean, d.std) == ((0.305,), (0.376,))
    assert d.warmup_epochs == pytest.approx(0.9) and d.warmup_epochs < d.epochs
    long = TrainConfig.for_task(data="mnist5k", method="trades", epochs=40)
    assert long.eps == 0.3 and long.warmup_epochs == 5.0 and long.lr_warmup_epochs == 1.0
    assert TrainConfig.for_task(data="fashion-mnist:/x", method="pgd-at").eps == 0.1
    assert TrainConfig.for_task(data="torchvision:CIFAR10:/d", method="pgd-at").eps == pytest.approx(8 / 255)
    assert TrainConfig.for_task(method="standard").warmup_epochs == 0  # no ε ramp without an adversary
    sgd = TrainConfig.for_task(optimizer="sgd")
    assert (sgd.lr, sgd.weight_decay) == (0.05, 5e-4)
    assert TrainConfig.for_task(data="digits", arch="lenet").arch_kwargs == {}  # padding is a smallcnn option
    assert task_defaults("smallcnn", 3, "x", "bad") == {"lr": 1e-3, "weight_decay": 0.0}  # junk: no crash


def test_recipe_and_options_override_the_task_defaults(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('data = "digits"\nmethod = "pgd-at"\neps = 0.15\nwarmup_epochs = 1\n')
    c = TrainConfig.from_toml(p, epochs=4, lr=None)
    assert (c.eps, c.warmup_epochs, c.arch_kwargs, c.epochs, c.lr) == (0.15, 1.0, {"padding": 1}, 4, 2e-3)
    assert TrainConfig.from_toml(p, eps=0.05, arch_kwargs={"padding": 2}).arch_kwargs == {"padding": 2}


def test_lr_warmup_ramps_then_follows_the_schedule():
    cfg = TrainConfig(epochs=10, schedule="constant", lr_warmup_epochs=1.0)
    f = [lr_factor(cfg, t, 1000) for t in range(1000)]
    assert f[0] == pytest.approx(0.01) and f[49] == pytest.approx(0.5) and f[99] == 1.0 and set(f[100:]) == {1.0}
    assert f[:100] == sorted(f[:100])
    pw = TrainConfig(epochs=4, schedule="piecewise", milestones=(0.5,), lr_warmup_epochs=2.0)
    g = [lr_factor(pw, t, 400) for t in range(400)]
    assert g[199] == 1.0 and math.isclose(g[200], 0.1)  # the cut comes after the ramp, never inside it
    assert lr_factor(TrainConfig(schedule="cyclic", lr_warmup_epochs=5.0), 0, 100) == lr_factor(
        TrainConfig(schedule="cyclic"), 0, 100)  # cyclic has its own ramp


# ------------------------------------------------------------------ ε warm-up not shorter than the run
def test_fit_refuses_an_eps_ramp_not_shorter_than_the_run(digits):
    x, y = digits
    cfg = TrainConfig(method="pgd-at", eps=0.1, epochs=1, warmup_epochs=5)
    with pytest.raises(ConfigError, match="warmup_epochs must be shorter than the run.*got warmup_epochs=5"):
        fit(tiny_net(), x[:64], y[:64], cfg)


def test_fit_warmup_shortens_with_a_note_and_leaves_good_ramps_alone():
    cfg = TrainConfig(method="trades", eps=0.3, epochs=1, warmup_epochs=5)
    short, note = fit_warmup(cfg)
    assert short.warmup_epochs == 0.5 and "shortened it to 0.5 epochs" in note and "ε=0.3" in note
    ok = TrainConfig(method="trades", epochs=10, warmup_epochs=3)
    assert fit_warmup(ok) == (ok, None)
    assert fit_warmup(TrainConfig(method="standard", epochs=1, warmup_epochs=5))[1] is None


def test_cli_one_epoch_trades_trains_at_the_labelled_eps(tmp_path, capsys):
    """Issue 14: `--epochs 1` with a 5-epoch ramp trained at ε/5 but was labelled ε."""
    from advkit.zoo.checkpoint import read_metadata
    out = tmp_path / "m.safetensors"
    code = main(["train", "--data", "digits", "--method", "trades", "--epochs", "1", "--warmup-epochs", "5",
                 "--train-subset", "256", "--val-size", "100", "--steps", "1", "--chance-patience", "0",
                 "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and "shortened it to 0.5 epochs" in err
    meta = read_metadata(out)
    assert meta["recipe"]["warmup_epochs"] == 0.5 and meta["recipe"]["eps"] == 0.125


# ------------------------------------------------------------------ chance level
def test_chance_statistic():
    assert chance_accuracy(np.arange(100) % 10, 10) == 0.1
    assert chance_accuracy(np.r_[np.zeros(70), np.ones(30)], 10) == 0.7  # the best constant classifier
    assert at_chance(50, 500, 0.1) and at_chance(60, 500, 0.1)  # 12% on 500: within noise
    assert not at_chance(80, 500, 0.1) and not at_chance(900, 1000, 0.1)
    assert at_chance(3, 10, 0.1) and not at_chance(0, 0, 0.1)


def test_untrainable_lr_stops_at_chance_with_the_cause(digits):
    x, y = digits
    cfg = TrainConfig(method="standard", epochs=5, lr=1e-7, val_size=0)
    with pytest.raises(TrainingStalled) as info:
        fit(tiny_net(), x, y, cfg)
    e = info.value
    assert len(e.history) == 2  # stopped after chance_patience epochs, not after 5
    assert "chance level" in str(e) and "learning rate 1e-07 is too small for adam" in e.cause


def test_non_finite_loss_stops_at_once(digits):
    x, y = digits
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        net[1].bias[0] = float("nan")
    with pytest.raises(TrainingStalled, match="the training loss became nan in epoch 1") as info:
        fit(Classifier(net, num_classes=10), x[:128], y[:128], TrainConfig(epochs=5, val_size=0))
    assert len(info.value.history) == 1 and "diverged" in info.value.cause


def test_a_learning_run_is_not_stopped_and_patience_zero_turns_the_check_off(digits):
    x, y = digits
    fit(tiny_net(), x[:640], y[:640], TrainConfig(epochs=2, lr=3e-3, val_size=0))  # leaves chance: no raise
    result = fit(tiny_net(), x[:64], y[:64], TrainConfig(epochs=1, lr=1e-7, chance_patience=0))
    assert result.history[-1]["epoch"] == 1


def test_kept_model_at_chance_is_refused():
    mon = ChanceMonitor(0.1, 1000, 0.1, 500)
    cfg = TrainConfig(epochs=3)
    good = {"epoch": 1, "loss": 1.0, "train_clean_accuracy": 0.8, "val_clean_accuracy": 0.8}
    bad = {"epoch": 2, "loss": 2.3, "train_clean_accuracy": 0.1, "val_clean_accuracy": 0.1}
    mon.after_epoch([good, bad], cfg)  # left chance once: no stop mid-run
    mon.kept([good, bad], cfg, 1)
    with pytest.raises(TrainingStalled, match="the model of epoch 2"):
        mon.kept([good, bad], cfg, 2)


@pytest.mark.parametrize("hist, cfg, expected", [
    ([2.3026, 2.3025], TrainConfig(lr=1e-7), "too small for adam"),
    ([2.3026, 2.3025], TrainConfig(lr=1e-3, schedule="piecewise"), "schedule has already cut"),
    ([2.5, 2.0], TrainConfig(optimizer="sgd", lr=10.0), "too large for sgd"),
    ([2.3, 2.3], TrainConfig(optimizer="sgd", lr=1e8), "too large for sgd"),
    ([2.5, 2.0], TrainConfig(method="pgd-at", eps=0.5), "adversarial objective at ε=0.5"),
])
def test_likely_cause_names_the_setting(hist, cfg, expected):
    lr_last = 1e-5 if cfg.schedule == "piecewise" else cfg.lr
    history = [{"epoch": i + 1, "loss": v, "lr": lr_last} for i, v in enumerate(hist)]
    assert expected in likely_cause(history, cfg, steps=1000)
    assert "only 20 optimisation steps" in likely_cause(history, TrainConfig(method="pgd-at"), steps=20)


@pytest.mark.parametrize("epochs", [1, 3])  # 1: the kept model is at chance (issue 14's 1-epoch run); 3: stop at 2
def test_cli_untrainable_setting_exits_5_without_a_model_file(tmp_path, capsys, epochs):
    out = tmp_path / "m.safetensors"
    code = main(["train", "--data", "digits", "--epochs", str(epochs), "--lr", "1e-7", "--no-progress", "--out",
                 str(out)])
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert code == 5 and not out.exists()
    assert "training stalled at chance level" in err and "too small" in err and "No model was written" in err
    assert "Traceback" not in err


def test_mean_std_are_part_of_the_trained_model(tmp_path):
    """A recipe's mean/std normalise inside the model (ε stays in pixel units) and are saved with it."""
    from advkit.errors import ConfigError
    from advkit.sources.models import load_model
    from advkit.training.run import build_model, save
    c = TrainConfig.for_task(data="digits", method="standard", epochs=1)
    clf = build_model(c, (1, 8, 8), 10)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(clf(x), clf.net((x - 0.305) / 0.376))
    path = save(clf, c, {}, tmp_path / "m.safetensors")
    back = load_model(str(path))
    with torch.no_grad():
        assert torch.allclose(back(x), clf(x))
    assert c.to_dict()["mean"] == [0.305]
    with pytest.raises(ConfigError, match="std"):
        TrainConfig(std=(0.0,))
    with pytest.raises(ConfigError, match="mean"):
        TrainConfig(mean="a,b")
