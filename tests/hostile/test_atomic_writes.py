"""Every write goes through temp file + rename (advkit.atomic); a failed write leaves the old file intact."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from advkit.atomic import atomic_path, atomic_write, check_writable
from advkit.errors import StoreError

SRC = Path(__file__).parents[2] / "src" / "advkit"


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "r.json"
    atomic_write(p, "one")
    atomic_write(p, b"two")
    assert p.read_text() == "two"
    assert sorted(f.name for f in p.parent.iterdir()) == ["r.json"]


def test_a_writer_that_fails_leaves_the_previous_file(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "previous"
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_an_os_error_is_a_store_error_naming_the_path(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    p.write_text("previous")

    def no_space(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("advkit.atomic.os.replace", no_space)
    with pytest.raises(StoreError, match=r"cannot write '.*r\.json': No space left on device"):
        atomic_write(p, "new")
    assert p.read_text() == "previous" and [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_check_writable_creates_nothing(tmp_path):
    check_writable(tmp_path / "a" / "b" / "result.json")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot write"):
        check_writable(tmp_path / "file" / "run" / "result.json")
    with pytest.raises(StoreError, match="cannot write"):
        check_writable(tmp_path / "file" / "result.json")


# Calls that write a file by name; each must write into the temp path of advkit.atomic (``tmp``/``fh``)
# or into memory (``buf``).  A new direct write anywhere in the library fails this test.
WRITERS = re.compile(r"\.write_text\(|\.write_bytes\(|np\.savez(_compressed)?\(|torch\.save\(|save_file\(|"
                     r"\.savefig\(|open\([^)]*[\"'][wa]b?[\"']")
ALLOWED = re.compile(r"\((tmp|fh|buf)\b|\(tensors, str\(tmp\)|\(state, tmp\)|tmp\.write_(bytes|text)\(")


def test_no_direct_writes_in_the_library():
    offenders = []
    for f in sorted(SRC.rglob("*.py")):
        if f.name == "atomic.py":
            continue
        for no, line in enumerate(f.read_text().splitlines(), 1):
            if WRITERS.search(line) and not ALLOWED.search(line) and "np.savez(FILE" not in line:
                offenders.append(f"{f.relative_to(SRC)}: {line.strip()}")
    # the certify row journal appends and fsyncs rows on purpose (resumable); its final file is atomic
    assert offenders == ['cli/certify.py: self.fh = open(path, "a", newline="")']


def test_written_files_get_the_usual_permissions(tmp_path):
    """Not mkstemp's 0600: a result file is as readable as one written with open()."""
    import os
    plain = tmp_path / "plain"
    plain.write_text("x")
    atomic_write(tmp_path / "atomic", "x")
    assert os.stat(tmp_path / "atomic").st_mode & 0o777 == os.stat(plain).st_mode & 0o777
