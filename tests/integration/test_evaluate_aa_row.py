"""evaluate's AutoAttack row is AutoAttack (issue 23, point 1).

Its members run from the clean inputs on every clean-correct sample, whatever FGSM and PGD found, with the
random streams ``advkit attack autoattack`` uses: the row equals the CLI's run sample by sample (same seed,
different batch sizes).  The speed option ``survivors_only`` is reported as a worst case, never under
AutoAttack's name, and its stored batches are kept apart from the default's.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from advkit.cli.main import main
from advkit.evaluation import evaluate, spec_from_dict
from advkit.results import load_run_dir

from _evalhelpers import write_inputs

THREAT = "linf:0.15"
# a weak AutoAttack next to a strong PGD: PGD breaks samples this AutoAttack alone does not, so a row that
# counted PGD's successes (or attacked only PGD's survivors) differs from AutoAttack's own number
AA = {"steps": 1, "square_queries": 1, "n_targets": 1}


@pytest.fixture
def refs(tmp_path, digits_model):
    return write_inputs(tmp_path, digits_model, n=40)


def _spec(refs, tmp_path, **aa) -> str:
    path = tmp_path / "spec.toml"
    path.write_text(f'model = {json.dumps(refs["model"])}\ndata = {json.dumps(refs["data"])}\n'
                    f'n = 40\nseed = 3\nbatch_size = 16\nthreats = ["{THREAT}"]\n'
                    "[stages.pgd]\nsteps = 20\nrestarts = 2\n[stages.autoattack]\n"
                    + "".join(f"{k} = {json.dumps(v)}\n" for k, v in {**AA, **aa}.items())
                    + "[stages.curve]\nenabled = false\n[stages.checks]\nenabled = false\n")
    return str(path)


def _cli_autoattack(refs, tmp_path, capsys) -> np.ndarray:
    out = tmp_path / "aa.npz"
    params = [a for k, v in AA.items() for a in ("--param", f"{k}={v}")]
    code = main(["attack", "autoattack", "--model", refs["model"], "--data", refs["data"], "--threat", THREAT,
                 "--n", "40", "--seed", "3", "--batch-size", "7", "--save", str(out), "--json", *params])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    return np.load(out)["success"]


def test_autoattack_row_equals_advkit_attack_autoattack(refs, tmp_path, capsys):
    cli_success = _cli_autoattack(refs, tmp_path, capsys)
    code = main(["evaluate", _spec(refs, tmp_path), "--out", str(tmp_path / "out"), "--db", str(tmp_path / "h.db"),
                 "--quiet"])
    assert code == 0
    result, samples = load_run_dir(tmp_path / "out")
    t = result["threats"][THREAT]
    members = t["attacks"]["autoattack"]["components"]
    correct = samples["clean_correct"].astype(bool)
    aa_broken = np.zeros_like(correct)
    for name in members:
        aa_broken |= samples[f"{THREAT}/{name}/success"].astype(bool) & correct
    # the first member attacked every clean-correct sample, not only PGD's survivors
    assert samples[f"{THREAT}/{members[0]}/attacked"].astype(bool).tolist() == correct.tolist()
    assert (~correct | aa_broken).tolist() == cli_success.astype(bool).tolist()
    assert t["attacks"]["autoattack"]["robust_accuracy"] == pytest.approx(1 - cli_success.mean())
    # the worst case stays its own row, and here it is strictly below AutoAttack's
    pgd_broken = samples[f"{THREAT}/pgd/success"].astype(bool) & correct
    assert (pgd_broken & ~aa_broken).any(), "the test needs PGD to break a sample AutoAttack misses"
    assert t["robust_accuracy"] < t["attacks"]["autoattack"]["robust_accuracy"]
    assert t["robust_accuracy"] == pytest.approx(float(samples[f"{THREAT}/robust"].mean()))


def test_survivors_only_is_a_worst_case_not_autoattack(refs, tmp_path, digits_model, capsys):
    clf, x, y = digits_model
    base = {"n": 40, "seed": 3, "batch_size": 16, "threats": [THREAT],
            "stages": {"pgd": {"steps": 20, "restarts": 2}, "autoattack": dict(AA), "curve": {"enabled": False},
                       "checks": {"enabled": False}}}
    fast = json.loads(json.dumps(base))
    fast["stages"]["autoattack"]["survivors_only"] = True
    full = evaluate(spec_from_dict(base), model=clf, data=(x[:40], y[:40]))
    quick = evaluate(spec_from_dict(fast), model=clf, data=(x[:40], y[:40]))
    t = quick.result["threats"][THREAT]
    assert "autoattack" not in t["attacks"]
    assert not t["protocol"]["name"].startswith("autoattack") and t["protocol"]["reference"] is False
    assert "worst case" in t["protocol"]["name"]
    pgd_broken = quick.samples[f"{THREAT}/pgd/success"] & quick.samples["clean_correct"]
    assert not (quick.samples[f"{THREAT}/apgd-ce/attacked"] & pgd_broken).any()   # survivors only
    # the full evaluation's AutoAttack row is graded; the worst case of both runs is at most it
    assert full.result["threats"][THREAT]["robust_accuracy"] <= full.result["threats"][THREAT]["attacks"][
        "autoattack"]["robust_accuracy"]
