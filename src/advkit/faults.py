"""Model misbehaviour while advkit runs it, turned into one :class:`~advkit.errors.ModelFault`.

The checks here guard every forward pass whose logits advkit trusts (the clean pass, the success checks
of attacks, the counting passes of randomized smoothing): a sample with NaN or inf logits is never
counted as correct, robust or certified; the run stops with a message naming the model, how many
samples and where.  Exceptions and ``SystemExit`` raised by the model's own code become a fault naming
the model too (``Classifier.forward``); :func:`user_code_ref` finds the model behind an exception that
escaped elsewhere (a factory file's frames in its traceback).
"""
from __future__ import annotations

import os
from types import TracebackType

import torch

from .errors import ModelFault

#: absolute path of a loaded ``.py`` factory file (and of the folder it imports siblings from) → model REF
_USER_FILES: dict[str, str] = {}
_USER_DIRS: dict[str, str] = {}


def register_user_code(path: str | os.PathLike, ref: str, *, folder: bool = True) -> None:
    """Remember that the code in ``path`` (and, with ``folder``, beside it) is the model ``ref``'s own code."""
    full = os.path.realpath(path)
    _USER_FILES[full] = ref
    if folder:
        _USER_DIRS[os.path.dirname(full)] = ref


def user_code_ref(tb: TracebackType | None) -> str | None:
    """The model REF whose own code appears in the traceback ``tb`` (innermost frame first), else None."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    for name in reversed(frames):
        full = os.path.realpath(name) if name and not name.startswith("<") else name
        ref = _USER_FILES.get(full) or _USER_DIRS.get(os.path.dirname(full))
        if ref is not None:
            return ref
    return None


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def raised(name: str, e: BaseException) -> ModelFault:
    """The fault for an exception (or ``SystemExit``) raised by model ``name``'s code."""
    what = f"called sys.exit({e.code!r})" if isinstance(e, SystemExit) else f"raised {one_line(e)}"
    return ModelFault(f"model {name!r} {what} while advkit ran it")


def check_output(name: str, out, n: int, num_classes: int | None) -> None:
    """Logits of shape (n, num_classes) or a :class:`ModelFault` (the shape is host metadata: no sync)."""
    if not isinstance(out, torch.Tensor):
        raise ModelFault(f"model {name!r} returned a {type(out).__name__} on a later batch; expected a tensor of "
                         "logits of shape (N, classes)")
    if out.dim() != 2 or out.shape[0] != n or (num_classes is not None and out.shape[1] != num_classes):
        want = f"({n}, {num_classes})" if num_classes is not None else f"({n}, classes)"
        raise ModelFault(f"model {name!r} returned logits of shape {tuple(out.shape)} for a batch of {n}; "
                         f"expected {want} as on its first batch")


def check_finite(z: torch.Tensor, name: str, where: str) -> None:
    """Raise :class:`ModelFault` when a row of logits ``z`` holds NaN or inf (one host sync)."""
    if z.numel() == 0:
        return
    bad = int((~torch.isfinite(z.detach())).flatten(1).any(1).sum())
    if bad:
        raise ModelFault(f"model {name!r} returned non-finite logits (NaN or inf) for {bad} of {len(z)} samples "
                         f"in {where}; none of them is counted")


__all__ = ["register_user_code", "user_code_ref", "raised", "check_output", "check_finite", "one_line"]
