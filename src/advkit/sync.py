"""Host synchronisation in attack inner loops: when the working batch is compacted, and a detector.

Attacks drop samples that are already broken from their working batch, so that the remaining
iterations only pay for the samples still being attacked.  Finding those samples
(``mask.nonzero()``, boolean indexing, ``if mask.any():``) needs the mask's *values* on the host: on an
accelerator that is a host synchronisation, which stalls the queue of kernels the host has launched
ahead and leaves the device idle while the host catches up.  One per iteration costs little against a
ResNet pass, but a lot against the small models and batches many evaluations use.

The rule (:func:`sync_free`):

* on CPU there is nothing to synchronise with: loops compact after every iteration (every saved
  row is saved work);
* on accelerators (any device that is not the CPU) loops compact only at the iterations
  :func:`compacts_at` names — 1, 2, 4, 8, 16 and then every 16th (``log2`` points early, where weak
  models lose most of their samples, then a fixed cadence) — and between them update every row with
  masked tensor operations (``torch.where``, index tensors), never reading a value on the host.  A
  broken sample waits in the batch until the next compaction, frozen: its result is fixed at its first
  success, so the returned points are those of the compacting loop (exactly, with per-sample random
  streams; with one ``torch.Generator`` per batch the frozen rows still consume draws).

``ADVKIT_SYNC_FREE=1`` forces the accelerator behaviour on CPU (how the tests check it), ``0`` forces
per-iteration compaction everywhere.  :class:`HostSyncCounter` counts the operations that synchronise
on an accelerator, on any device (it watches the dispatched ATen operations), so a CPU test can prove
a loop free of them.
"""
from __future__ import annotations

import os
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: accelerator loops compact at these iterations and then every COMPACT_EVERY-th
EARLY_POINTS = (1, 2, 4, 8, 16)
COMPACT_EVERY = 16


def env_switch(name: str) -> bool | None:
    """An on/off environment variable: True (1/true/yes/on), False (0/false/no/off), None (unset, empty or
    ``auto``); anything else is a :class:`~advkit.errors.ConfigError` (a typo must not pick a default)."""
    raw = os.environ.get(name, "")
    mode = raw.strip().lower()
    if mode in ("1", "true", "yes", "on"):
        return True
    if mode in ("0", "false", "no", "off"):
        return False
    if mode in ("", "auto"):
        return None
    from .errors import ConfigError
    raise ConfigError(f"{name} must be 1 (on), 0 (off) or auto, got {raw!r}")


#: the on/off environment switches of the attack loops (sync.py, attacks/fastpath.py)
SWITCHES = ("ADVKIT_SYNC_FREE", "ADVKIT_ACCELERATE")


def check_switches() -> None:
    """Raise :class:`~advkit.errors.ConfigError` when a switch of :data:`SWITCHES` holds an unknown value."""
    for name in SWITCHES:
        env_switch(name)


def sync_free(device: torch.device | str) -> bool:
    """Whether loops on ``device`` avoid host synchronisation between compaction points (module docstring)."""
    forced = env_switch("ADVKIT_SYNC_FREE")
    return forced if forced is not None else torch.device(device).type != "cpu"


def _is_point(iteration: int) -> bool:
    """An accelerator compaction point: after iteration 1, 2, 4, 8, 16 and every COMPACT_EVERY-th."""
    return iteration in EARLY_POINTS or (iteration > 0 and iteration % COMPACT_EVERY == 0)


def compacts_at(iteration: int, device: torch.device | str) -> bool:
    """Whether a loop compacts its working batch after ``iteration`` iterations (counted from 1)."""
    return not sync_free(device) or _is_point(iteration)


def compaction_points(steps: int) -> int:
    """How many accelerator compaction points a loop of ``steps`` iterations passes (for tests/docs)."""
    return sum(map(_is_point, range(1, steps + 1)))


def _has_bool_index(args) -> bool:
    for a in args:
        if isinstance(a, (list, tuple)):
            if any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in a):
                return True
    return False


#: ATen operations whose result size or value must reach the host (they synchronise on CUDA)
_SYNCING = {"aten::nonzero", "aten::argwhere", "aten::_local_scalar_dense", "aten::is_nonzero",
            "aten::masked_select", "aten::equal", "aten::unique_dim", "aten::_unique2",
            "aten::unique_consecutive", "aten::item",
            # a tensor built from Python data (torch.tensor(0.3, device=...)) is a host-to-device copy on
            # a GPU, which PyTorch completes synchronously; build constants with torch.full instead
            "aten::lift_fresh"}
#: ... and these when indexed by a boolean mask
_SYNCING_WITH_MASK = {"aten::index", "aten::index_put_", "aten::index_put", "aten::_index_put_impl_"}


class HostSyncCounter(TorchDispatchMode):
    """Context manager counting the dispatched operations that need a host synchronisation on an
    accelerator: ``nonzero``, reading a scalar (``.item()``, ``bool(t)``, ``if t.any():``), boolean-mask
    indexing and assignment, ``masked_select``, ``torch.equal``, ``unique``, and tensors built from Python
    data (``torch.tensor(...)``: a host-to-device copy there).  ``counts`` maps each
    operation to its count; ``total`` is their sum.  Works on CPU tensors, where nothing actually waits."""

    def __init__(self):
        super().__init__()
        self.counts: Counter = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in _SYNCING or (name in _SYNCING_WITH_MASK and _has_bool_index(args)):
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))
