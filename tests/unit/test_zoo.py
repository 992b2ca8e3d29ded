"""The zoo: catalogue, metadata from files, loading by name and through ``zoo:NAME`` REFs."""
from __future__ import annotations

import pytest
import torch

import advkit.zoo as zoo
from advkit.errors import ConfigError, ModelError
from advkit.sources.models import load_model
from advkit.zoo.architectures import build
from advkit.zoo.checkpoint import save_model
from advkit.zoo.registry import CATALOGUE


def test_defaults_point_at_the_catalogue():
    assert zoo.DEFAULT_MODEL == "mnist5k-standard" and zoo.DEFAULT_MODEL in CATALOGUE
    assert zoo.DEFAULT_DATA == "mnist5k" and zoo.DEFAULT_THREAT == "linf:0.3"
    assert CATALOGUE[zoo.DEFAULT_MODEL].data == zoo.DEFAULT_DATA


@pytest.fixture
def zoo_dir(tmp_path, monkeypatch):
    monkeypatch.setattr("advkit.zoo.registry.CHECKPOINT_DIR", tmp_path)
    torch.manual_seed(0)  # test only
    save_model(tmp_path / "mnist5k-standard.safetensors", build("lenet").eval(), arch="lenet",
               recipe={"method": "standard", "data": "mnist5k"}, metrics={"clean_accuracy": 0.97},
               input_shape=(1, 28, 28), num_classes=10)
    save_model(tmp_path / "extra-model.safetensors", build("smallcnn", input_size=8, padding=1).eval(),
               arch="smallcnn", arch_kwargs={"padding": 1}, data="digits", description="an extra file",
               input_shape=(1, 8, 8), num_classes=10)
    return tmp_path


def test_list_zoo_merges_catalogue_and_files(zoo_dir):
    entries = {e.name: e for e in zoo.list_zoo()}
    assert set(CATALOGUE) <= set(entries) and "extra-model" in entries
    std = entries["mnist5k-standard"]
    assert std.available and std.arch == "lenet" and std.metrics == {"clean_accuracy": 0.97}
    assert std.recipe["method"] == "standard" and std.data == "mnist5k" and std.path.is_file()
    extra = entries["extra-model"]
    assert extra.available and extra.data == "digits" and extra.description == "an extra file"
    trades = entries["mnist5k-trades"]
    assert not trades.available and trades.path is None and trades.description.endswith("(not yet trained)")


def test_load_by_name_and_ref(zoo_dir):
    clf = zoo.load("extra-model")
    assert clf.input_shape == (1, 8, 8) and clf(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    via_ref = load_model("zoo:mnist5k-standard")
    assert via_ref.name == "zoo:mnist5k-standard" and via_ref.metadata["arch"] == "lenet"


def test_unknown_and_untrained_names(zoo_dir):
    with pytest.raises(ConfigError, match="unknown zoo model 'nope'.*mnist5k-standard.*extra-model"):
        zoo.load("nope")
    with pytest.raises(ConfigError, match="unknown zoo model"):
        load_model("zoo:nope")
    with pytest.raises(ModelError, match="not trained yet"):
        zoo.load("fmnist-pgdat")


SHIPPED = [e for e in zoo.list_zoo() if e.available]


@pytest.mark.skipif(not SHIPPED, reason="no checkpoints shipped in advkit/zoo/checkpoints yet")
@pytest.mark.parametrize("entry", SHIPPED, ids=lambda e: e.name)
def test_shipped_checkpoints_load_and_classify_their_data(entry):
    from advkit.sources.data import load_data

    clf = zoo.load(entry.name)
    data = load_data(entry.data, "test").subset(300)
    assert tuple(data.x.shape[1:]) == clf.input_shape and clf.num_classes == data.num_classes
    accuracy = (clf.predict(data.x) == data.y).float().mean().item()
    assert accuracy > 0.7  # far above chance (0.1): the weights are trained, not random
