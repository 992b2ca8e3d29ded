"""The training loop: determinism, exact resume, best-checkpoint selection, schedules, config, CLI."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from advkit.errors import ConfigError
from advkit.model import Classifier
from advkit.training import TrainConfig, fit
from advkit.training.data import random_shift, split_train_val
from advkit.training.loop import CHECKPOINT
from advkit.training.schedules import lr_factor

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def tiny_net(seed: int = 0, dropout: float = 0.0) -> Classifier:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(256, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 10))
    return Classifier(net, num_classes=10, input_shape=(1, 8, 8))


@pytest.fixture(scope="module")
def digits():
    from advkit.sources.data import load_data
    tr, te = load_data("digits", "train"), load_data("digits", "test")
    return tr.x, tr.y, te.x, te.y


def small_cfg(**kw) -> TrainConfig:
    base = dict(method="standard", epochs=3, batch_size=64, optimizer="adam", lr=3e-3, weight_decay=0.0,
                schedule="constant", keep="last", eps=0.1, steps=2, chance_patience=0)  # tiny runs: no stall check
    return TrainConfig(**{**base, **kw})


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_adversarial_training_beats_standard_training_under_pgd(digits):
    from advkit.attacks.pgd import PGD
    from advkit.threat import ThreatModel
    xtr, ytr, xte, yte = digits
    acc = {}
    for method in ("standard", "pgd-at", "trades"):
        model = tiny_net()
        fit(model, xtr, ytr, small_cfg(method=method, epochs=5, steps=5))
        res = PGD(threat=ThreatModel("linf", 0.1), steps=20)(model, xte, yte, generator=torch.Generator().manual_seed(0))
        acc[method] = res.robust_accuracy
        assert (model.predict(xte) == yte).float().mean() > 0.75  # all of them still learn the task
    assert acc["pgd-at"] > acc["standard"] + 0.1, acc
    assert acc["trades"] > acc["standard"] + 0.1, acc


def test_same_seed_same_weights_and_global_rng_untouched(digits):
    xtr, ytr = digits[0][:256], digits[1][:256]
    cfg = small_cfg(method="pgd-at", epochs=2, augment_shift=1)
    state = torch.get_rng_state()
    a, b = tiny_net(dropout=0.3), tiny_net(dropout=0.3)
    fit(a, xtr, ytr, cfg)
    fit(b, xtr, ytr, cfg)
    assert torch.equal(torch.get_rng_state(), state)
    assert _equal(_weights(a), _weights(b))
    c = tiny_net(dropout=0.3)
    fit(c, xtr, ytr, cfg.replace(seed=1))
    assert not _equal(_weights(a), _weights(c))


class _Stop(Exception):
    pass


def test_resume_after_interruption_reaches_uninterrupted_weights(digits, tmp_path):
    xtr, ytr = digits[0][:256], digits[1][:256]
    val = (digits[2][:64], digits[3][:64])
    cfg = small_cfg(method="fast-at", epochs=3, schedule="cyclic", optimizer="sgd", lr=0.05, momentum=0.9)
    ref = tiny_net()
    ref_result = fit(ref, xtr, ytr, cfg, val=val, checkpoint_dir=tmp_path / "a")

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise _Stop

    with pytest.raises(_Stop):
        fit(tiny_net(), xtr, ytr, cfg, val=val, checkpoint_dir=tmp_path / "b", on_epoch=stop_after_first)
    assert torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)["epoch"] == 1
    resumed = tiny_net(seed=5)  # different init: everything must come from the checkpoint
    result = fit(resumed, xtr, ytr, cfg, val=val, checkpoint_dir=tmp_path / "b", resume=True)
    assert _equal(_weights(ref), _weights(resumed))
    assert [r["loss"] for r in result.history] == [r["loss"] for r in ref_result.history]


def test_checkpoint_guards(digits, tmp_path):
    xtr, ytr = digits[0][:128], digits[1][:128]
    cfg = small_cfg(epochs=1)
    fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="already exists"):
        fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="recipe differs"):
        fit(tiny_net(), xtr, ytr, cfg.replace(lr=1e-3), checkpoint_dir=tmp_path, resume=True)
    assert not list(tmp_path.glob("*.tmp*"))  # atomic writes leave no temporary files


def test_resume_needs_a_checkpoint_unless_asked_to_start(digits, tmp_path):
    xtr, ytr = digits[0][:64], digits[1][:64]
    cfg = small_cfg(epochs=1)
    with pytest.raises(ConfigError, match="expected a checkpoint at .*got none"):
        fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path / "a", resume=True)
    assert not (tmp_path / "a").exists()  # nothing created by the refusal
    with pytest.raises(ConfigError, match="resume must be one of"):
        fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path / "a", resume="yes")
    fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path / "a", resume="or-start")
    assert (tmp_path / "a" / CHECKPOINT).exists()


def test_resume_refuses_another_identity(digits, tmp_path):
    xtr, ytr = digits[0][:64], digits[1][:64]
    cfg, ident = small_cfg(epochs=1), {"data_hash": "a" * 64, "code_version": "v1"}
    fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path, identity=ident)
    raw = (tmp_path / CHECKPOINT).read_bytes()
    with pytest.raises(ConfigError, match=r"the data contents changed \(data_hash aaaaaaaaaaaa saved, bbbbbbbbbbbb now"):
        fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path, resume=True, identity={**ident, "data_hash": "b" * 64})
    with pytest.raises(ConfigError, match=r"the advkit code changed \(code_version v1 saved, v2 now"):
        fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path, resume=True, identity={**ident, "code_version": "v2"})
    assert (tmp_path / CHECKPOINT).read_bytes() == raw
    fit(tiny_net(), xtr, ytr, cfg, checkpoint_dir=tmp_path, resume=True, identity=ident)  # the same run resumes


def test_keep_best_returns_the_best_robust_validation_epoch(digits):
    xtr, ytr = digits[0][:384], digits[1][:384]
    val = (digits[2][:100], digits[3][:100])
    records, snapshots = [], []
    model = tiny_net()

    def on_epoch(r):
        records.append(r)
        snapshots.append(_weights(model))

    cfg = small_cfg(method="pgd-at", epochs=4, keep="best", lr=1e-2)
    result = fit(model, xtr, ytr, cfg, val=val, on_epoch=on_epoch)
    scores = [r["val_robust_accuracy"] for r in records]
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    assert result.best_epoch == best + 1
    assert result.metrics["val_robust_accuracy"] == scores[best]
    assert _equal(_weights(model), snapshots[best])
    assert all(r["train_clean_accuracy"] is not None and r["train_perturbed_accuracy"] is not None for r in records)


def test_eps_warmup_ramps_linearly(digits):
    xtr, ytr = digits[0][:128], digits[1][:128]
    result = fit(tiny_net(), xtr, ytr, small_cfg(method="pgd-at", epochs=4, warmup_epochs=2, eps=0.2))
    assert [round(r["eps"], 6) for r in result.history] == [0.1, 0.2, 0.2, 0.2]


def test_progress_callback_counts_batches(digits):
    xtr, ytr = digits[0][:130], digits[1][:130]
    calls = []
    fit(tiny_net(), xtr, ytr, small_cfg(epochs=2, batch_size=64), progress=lambda t, d, n: calls.append((t, d, n)))
    assert calls[-1] == ("epoch 2/2", 3, 3) and len(calls) == 6


@pytest.mark.parametrize("schedule", ["constant", "piecewise", "cyclic", "cosine"])
def test_lr_schedules(schedule):
    cfg = TrainConfig(schedule=schedule, milestones=(0.5, 0.75), cycle_peak=0.4)
    f = [lr_factor(cfg, t, 100) for t in range(100)]
    assert all(0 <= v <= 1 for v in f)
    if schedule == "constant":
        assert set(f) == {1.0}
    elif schedule == "piecewise":
        assert f[0] == 1 and f[49] == 1 and math.isclose(f[50], 0.1) and math.isclose(f[99], 0.01)
    elif schedule == "cyclic":
        assert max(range(100), key=f.__getitem__) == 39 and f[0] > 0 and f[-1] == 0
    else:
        assert f[0] == 1 and f == sorted(f, reverse=True) and f[-1] < 0.01


def test_random_shift_translates_with_zero_fill():
    x = torch.zeros(50, 1, 6, 6)
    x[:, :, 2:4, 2:4] = 1.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # the blob stays inside: mass preserved
    assert len({tuple(o.nonzero()[0].tolist()) for o in out}) > 5  # and moves by different amounts
    again = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_split_train_val_is_disjoint_and_fixed():
    x = torch.arange(100, dtype=torch.float32).view(100, 1, 1, 1)
    y = torch.arange(100)
    xtr, ytr, xva, yva = split_train_val(x, y, val_size=20, subset=50, generator=torch.Generator().manual_seed(0))
    assert len(ytr) == 50 and len(yva) == 20 and not set(ytr.tolist()) & set(yva.tolist())
    assert torch.equal(xva.flatten().long(), yva)
    with pytest.raises(ConfigError):
        split_train_val(x, y, val_size=100, generator=torch.Generator())


def test_config_from_toml_and_overrides(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('name = "x"\n[train]\nmethod = "trades"\neps = 0.2\nmilestones = [0.3]\narch_kwargs = {padding = 1}\n')
    cfg = TrainConfig.from_toml(p, epochs=7, lr=None)
    assert (cfg.method, cfg.eps, cfg.epochs, cfg.milestones, cfg.arch_kwargs) == ("trades", 0.2, 7, (0.3,), {"padding": 1})
    assert cfg.lr == TrainConfig().lr and TrainConfig.from_dict(cfg.to_dict()) == cfg
    for bad in (dict(method="sgd-at"), dict(epochs=0), dict(lr=0), dict(schedule="step"), dict(milestones=[1.5]),
                dict(unknown_key=1)):
        with pytest.raises(ConfigError):
            TrainConfig().replace(**bad)
    p.write_text("method = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(p)


def test_every_recipe_parses_and_names_a_zoo_model():
    from advkit.training.config import recipe_meta
    from advkit.zoo import CATALOGUE
    recipes = sorted(RECIPES.glob("*.toml"))
    assert recipes
    for path in recipes:
        cfg = TrainConfig.from_toml(path)
        assert recipe_meta(path)["name"] == path.stem
        assert path.stem in CATALOGUE and CATALOGUE[path.stem].data == cfg.data


def test_cli_train_writes_a_model_file_with_recipe_and_metrics(tmp_path):
    from advkit.cli.main import main
    from advkit.sources.models import load_model
    out = tmp_path / "m.safetensors"
    code = main(["train", "--data", "digits", "--arch", "smallcnn", "--arch-kwarg", "padding=1", "--method", "fast-at", "--eps", "0.1", "--epochs", "1",
                 "--val-size", "100", "--train-subset", "300", "--out", str(out), "--no-progress", "--seed", "3",
                 "--chance-patience", "0"])  # 38 steps need not leave chance level: this test is about the file
    assert code == 0 and out.is_file()
    clf = load_model(str(out))
    meta = clf.metadata
    assert meta["arch"] == "smallcnn" and meta["arch_kwargs"] == {"padding": 1} and meta["recipe"]["method"] == "fast-at" and meta["recipe"]["seed"] == 3
    assert {"val_clean_accuracy", "test_clean_accuracy", "test_pgd20_accuracy"} <= set(meta["metrics"])
    assert main(["train", "--data", "digits", "--method", "free-at"]) == 2
    assert main(["train", "--data", "digits", "--resume"]) == 2
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
