"""The public API is curated: adding or removing a name is a deliberate change to this list."""
import importlib
import subprocess
import sys

import advkit

EXPECTED = {
    "__version__", "AdvkitError", "AdvkitWarning", "AttackBug", "ConfigError", "DataError", "EvaluationAborted",
    "InputError", "ModelError", "StoreError", "UnsafeCheckpointError", "Finding", "Classifier", "ThreatModel",
    "Attack", "AttackResult", "FGSM", "PGD", "BestOf", "CarliniWagnerL2", "Square", "APGD", "FAB", "Ensemble",
    "autoattack_standard", "autoattack_rand", "BPDA", "with_eot", "build_attack", "check_attack",
    "load_data", "load_model", "Dataset", "defend", "bpda", "SmoothedClassifier", "Certificate", "ABSTAIN",
    "fit", "TrainConfig", "evaluate", "EvaluationSpec", "load_spec", "Store", "load_run_dir",
    "check_gates", "parse_gate",
}


def test_all_is_the_curated_list():
    assert set(advkit.__all__) == EXPECTED
    assert len(advkit.__all__) == len(set(advkit.__all__))


def test_every_public_name_resolves():
    for name in advkit.__all__:
        assert getattr(advkit, name) is not None, name


def test_unknown_attribute_raises():
    import pytest
    with pytest.raises(AttributeError):
        advkit.does_not_exist


def test_import_is_light():
    """`import advkit` must not pull matplotlib or the attack suite (CLI start-up time)."""
    code = "import sys, advkit; print(int('matplotlib' in sys.modules), int('advkit.attacks.apgd' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "0"]


def test_error_tree():
    for name in ["ConfigError", "InputError", "ModelError", "StoreError", "EvaluationAborted", "DataError"]:
        assert issubclass(getattr(advkit, name), advkit.AdvkitError)
    assert issubclass(advkit.UnsafeCheckpointError, advkit.ModelError)
