"""advkit.identity: what makes two runs the same run (issue 27: train and certify never mix runs)."""
from __future__ import annotations

from advkit.identity import identity_mismatch


def test_identity_mismatch_names_the_first_changed_field():
    now = {"data_hash": "a" * 64, "defense": None, "code_version": "v1"}
    assert identity_mismatch(dict(now), now) is None
    assert identity_mismatch({**now, "model_hash": "x"}, now) is None  # only the fields the caller records
    assert identity_mismatch({**now, "data_hash": "b" * 64}, now) == \
        "the data contents changed (data_hash bbbbbbbbbbbb saved, aaaaaaaaaaaa now)"
    assert identity_mismatch({**now, "defense": "bits:1"}, now) == "the defense chain changed (defense bits:1 saved, none now)"
    old = {k: v for k, v in now.items() if k != "code_version"}
    assert identity_mismatch(old, now) == "the advkit code changed (code_version not recorded saved, v1 now)"
