"""A run's identity: content hashes of what it computes from, and the check that refuses to mix runs.

``evaluate`` (history rows), ``train`` (checkpoints) and ``certify`` (``OUT/config.json``) record the
same fields — the data contents (:func:`data_digest`), the model weights (``model_hash``), the model's
definition (``Classifier.definition``, set by :mod:`advkit.sources.definition`), the defense chain and the
advkit code (:func:`code_version`) — and refuse to continue a run whose recorded identity differs from the
current one (:func:`identity_mismatch`).  Pure helpers at the bottom layer: torch, hashlib and git only.
"""
from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from .progress import NULL, ProgressFn

# (field, what it is): the order in which a mismatch is reported
FIELDS = (("data_hash", "the data contents"), ("defense", "the defense chain"),
          ("model_definition", "the model definition"), ("model_hash", "the model weights"),
          ("code_version", "the advkit code"))


def data_digest(x: torch.Tensor, y: torch.Tensor, progress: ProgressFn = NULL) -> str:
    """sha256 (hex) of the data's contents: dtype, shape and bytes of the images and labels;
    ``progress`` hears about the files of a streamed folder being read."""
    h = hashlib.sha256()
    for t in (x, y):
        if not isinstance(t, torch.Tensor):  # streamed images (sources/streaming.py): their own content hash
            h.update(f"streamed|{t.content_digest(progress)}|".encode())
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the advkit source tree when it is a git checkout (not the caller's working directory)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def code_version() -> str:
    """``<advkit version>+<random-stream scheme>``, plus ``.g<commit>`` when the source is a git checkout:
    part of a run's identity.  The scheme (:data:`advkit.rng.SCHEME`) is there for installs without git:
    batches stored under another scheme drew other random numbers, so ``--resume`` must not mix them in."""
    from .rng import SCHEME
    from .version import __version__
    commit = git_commit()
    return f"{__version__}+{SCHEME}" + (f".g{commit[:12]}" if commit else "")


def short(value) -> str:
    """A recorded identity value for a message: hashes cut to 12 characters, None as 'not recorded'."""
    if value is None:
        return "not recorded"
    text = str(value)
    return text[:12] if len(text) == 64 else text


def identity_mismatch(saved: dict, now: dict, fields=FIELDS) -> str | None:
    """``None`` when ``saved`` and ``now`` agree on every field of ``fields`` that ``now`` holds, else a
    phrase naming the first field that changed: ``the data contents changed (data_hash 1a2b.. saved,
    9f8e.. now)``.  A field missing from ``saved`` counts as changed ('not recorded'); None reads 'none'."""
    for key, what in fields:
        if key in now and saved.get(key) != now[key]:
            then = short(saved[key]) if saved.get(key) is not None else ("none" if key in saved else "not recorded")
            return f"{what} changed ({key} {then} saved, {short(now[key]) if now[key] is not None else 'none'} now)"
    return None
