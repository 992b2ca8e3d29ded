"""Faster, checked copies of a model for the inner loops of attacks.

Attacks spend nearly all their time inside the model.  On CPU, PyTorch's eager NCHW kernels leave a
lot on the table for the small batches attacks use: a frozen TorchScript copy (``torch.jit.freeze``
+ ``torch.jit.optimize_for_inference``: prepacked oneDNN convolutions, fused activations, folded
batch norm) runs forward-only passes 2.5–3× faster, and a channels-last copy runs
forward+backward 1.2–1.5× faster (SmallCNN, batch 32–400, 1–2 threads; ``benchmarks/README.md``).
Both compute the same function; their logits differ from the original module's by float rounding.

:class:`FastPaths` builds each copy lazily and checks it against the original module on the first
batch it serves (logits at two batch sizes; for the backward path also the input gradient).  A copy
that cannot be built, raises, or does not agree (``FWD_TOL``, ``GRAD_TOL``) is dropped and the
original module used, with a debug log line.  Copies are never used for models on other devices than
the CPU (TF32 on GPUs: docs/scale.md), non-float32 models, models with hooks (TorchScript ignores
Python hooks), or randomised models (EOT > 1, or outputs that change between two identical calls).
``Classifier(accelerate=False)`` or ``ADVKIT_ACCELERATE=0`` turns them off.

The decisions an attack reports never rest on a copy alone: a success that a copy's logits show is
confirmed on the original module before the sample leaves the working batch (``Oracle.confirm``, called
from the contract's ``_is_success``), the final decision of every attack is taken on the module
(``Oracle.draw``), and decisions from a copy within ``BORDER_TOL`` of the boundary are re-run on it.
"""
from __future__ import annotations

import copy
import logging
import weakref

import torch
from torch import nn

from ..sync import env_switch
from .torchscript import Normalised, frozen_script

log = logging.getLogger(__name__)

#: a copy is used only when its logits agree with the module's to FWD_TOL·max(1, max |z|)
FWD_TOL = 1e-5
#: ... and its input gradients to GRAD_TOL·max |g|
GRAD_TOL = 1e-4
#: success decisions with |margin − κ| ≤ BORDER_TOL·max(1, max |z|) are re-checked on the module
BORDER_TOL = 1e-4
#: rows of the first batch on which a copy is checked against the module
PROBE_ROWS = 4
#: the forward-only path compiles (TorchScript) from this forward call of one attack on
COMPILE_AFTER = 8

_UNSET = object()


def accelerate_allowed(model: nn.Module, eot: int = 1) -> bool:
    """Whether faster copies of ``model`` may be tried at all (see the module docstring)."""
    if env_switch("ADVKIT_ACCELERATE") is False:
        return False
    if not getattr(model, "accelerate", True) or eot != 1:
        return False
    params = list(model.parameters())
    if not params or any(p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        return False
    return not _has_hooks(model)


def _has_hooks(model: nn.Module) -> bool:
    from torch.nn.modules import module as mod
    if any(getattr(mod, name, None) for name in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                                   "_global_backward_hooks", "_global_backward_pre_hooks")):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
               or getattr(m, "_backward_pre_hooks", None) for m in model.modules())


def _agree(a: torch.Tensor, b: torch.Tensor | None, tol: float, floor: float = 1.0) -> bool:
    if b is None or a.shape != b.shape or not torch.isfinite(b).all():
        return False
    if not a.numel():
        return True
    return bool((a - b).abs().max() <= tol * max(floor, float(a.abs().max())))


def _state_key(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is written in place or replaced, or a module swapped."""
    tensors = tuple((id(t), t._version, t.data_ptr()) for t in (*model.parameters(), *model.buffers()))
    return tensors, tuple(id(m) for m in model.modules())


class _Copies:
    """The faster copies of one model state, built on first request (None when impossible).

    Holds no reference to the model itself (the cache is keyed weakly by it)."""

    def __init__(self, key: tuple):
        self.key = key
        self._frozen = _UNSET
        self._cl = _UNSET

    @property
    def has_frozen(self) -> bool:
        return self._frozen not in (_UNSET, None)

    def frozen(self, clf: nn.Module, example: torch.Tensor | None = None):
        """TorchScript of ``net((x − mean)/std)``: only for a :class:`Classifier` whose forward is that.

        Scripted when the module is scriptable; otherwise traced on ``example`` (many user modules are
        not scriptable), unless the tracer warns that the trace may not generalise (Python control flow
        or numbers taken from tensors): such a copy could compute another function on other inputs."""
        from ..model import Classifier
        if self._frozen is _UNSET:
            self._frozen = None
            if not isinstance(clf, Classifier) or type(clf).forward is not Classifier.forward:
                return None
            src = Normalised(clf.net, getattr(clf, "mean", None), getattr(clf, "std", None)).eval()
            module = frozen_script(src, example)
            if module is not None:
                self._frozen = (module, torch.contiguous_format)
        return self._frozen

    def channels_last(self, model: nn.Module):
        if self._cl is _UNSET:
            self._cl = None
            if any(p.dim() == 4 for p in model.parameters()):
                try:
                    self._cl = (copy.deepcopy(model).to(memory_format=torch.channels_last), torch.channels_last)
                except Exception as exc:
                    log.debug("no channels-last copy (%s: %s)", type(exc).__name__, exc)
        return self._cl


def _try(module, x: torch.Tensor):
    """``module(x)``, or None when a copy raises (a copy that raises is a copy that does not agree)."""
    try:
        return module(x)
    except Exception as exc:
        log.debug("faster copy raised %s: %s", type(exc).__name__, exc)
        return None


_CACHE: "weakref.WeakKeyDictionary[nn.Module, _Copies]" = weakref.WeakKeyDictionary()


def _copies_for(model: nn.Module) -> _Copies:
    key = _state_key(model)
    got = _CACHE.get(model)
    if got is None or got.key != key:
        got = _CACHE[model] = _Copies(key)
    return got


class FastPaths:
    """Forward-only and forward+backward passes of ``model`` through checked faster copies.

    Forward-only passes use the channels-last copy at first and the frozen TorchScript copy from the
    ``COMPILE_AFTER``-th call on (or at once when an earlier attack on the same model state built it):
    compiling costs 40–150 ms (SmallCNN–ResNet-18), which short attacks (FGSM, PGD) do not win back.
    Each copy is checked on the first ``PROBE_ROWS`` rows of the first batch it serves, once per
    :class:`FastPaths`.
    """

    def __init__(self, model: nn.Module, enabled: bool):
        self.model = model
        self.enabled = enabled
        self._copies = _copies_for(model) if enabled else None
        self._fwd = _UNSET if enabled else None
        self._fwd_frozen = False
        self._fwd_calls = 0
        self._grad = _UNSET if enabled else None
        self._deterministic: bool | None = None
        #: whether the last pass went through the original module (False: a copy served it)
        self.last_exact = True

    @property
    def exact(self) -> bool:
        """True when every pass so far went through the original module."""
        return self._fwd in (None, _UNSET) and self._grad in (None, _UNSET)

    def _is_deterministic(self, probe: torch.Tensor, ref: torch.Tensor) -> bool:
        if self._deterministic is None:
            self._deterministic = torch.equal(self.model(probe), ref)
            if not self._deterministic:
                log.debug("fast paths off: the model's output changes between identical calls")
        return self._deterministic

    # ------------------------------------------------------------------ forward only
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.last_exact = True
        with torch.no_grad():
            if not self.enabled or self._deterministic is False or not len(x):
                return self.model(x)
            self._fwd_calls += 1
            if self._fwd is _UNSET or (not self._fwd_frozen and self._fwd_calls >= COMPILE_AFTER):
                self._fwd = self._pick_forward(x[:PROBE_ROWS])
            if self._fwd is None:  # for now: a compiled copy is still tried from COMPILE_AFTER on
                return self.model(x)
            module, fmt = self._fwd
            z = _try(module, _layout(x, fmt))
            if z is None:  # a copy that raises on a later batch is dropped for good
                self._fwd, self._fwd_frozen = None, True
                return self.model(x)
            self.last_exact = False
            return z

    def _pick_forward(self, probe: torch.Tensor):
        """The frozen copy (from ``COMPILE_AFTER`` calls on), else the channels-last copy, when it agrees
        with the module on the probe rows and on all but the last of them (a second batch size: a traced
        copy must not have the batch size baked in); None otherwise."""
        ref = self.model(probe)
        if not self._is_deterministic(probe, ref):
            return None
        short = probe[:-1] if len(probe) > 1 else None
        ref_short = self.model(short) if short is not None else None
        if self._fwd_calls >= COMPILE_AFTER or self._copies.has_frozen:
            self._fwd_frozen = True
            frozen = self._copies.frozen(self.model, probe)
            if frozen is not None and _agrees_on(frozen, (probe, ref), (short, ref_short)):
                return frozen
        cl = self._copies.channels_last(self.model)
        if cl is not None and probe.dim() == 4 and _agrees_on(cl, (probe, ref), (short, ref_short)):
            return cl
        log.debug("no faster forward copy agrees with the model; using the model")
        return None

    # ------------------------------------------------------------------ forward + backward
    def value_and_grad(self, x: torch.Tensor, loss):
        if self._grad is _UNSET and len(x):
            self._grad = self._pick_grad(x[:PROBE_ROWS])
        self.last_exact = True
        if self._grad not in (None, _UNSET):
            try:
                out = _value_and_grad(*self._grad, x, loss)
                self.last_exact = False
                return out
            except Exception as exc:  # a copy that raises on a later batch is dropped for good
                log.debug("channels-last copy raised %s: %s; using the model", type(exc).__name__, exc)
                self._grad = None
        return _value_and_grad(self.model, torch.contiguous_format, x, loss)

    def _pick_grad(self, probe: torch.Tensor):
        """The channels-last copy when its logits and input gradients (of a fixed linear functional of
        the logits, ``_probe_loss``) agree with the module's on the probe rows."""
        cl = self._copies.channels_last(self.model)
        if cl is None or probe.dim() != 4:
            return None
        ref = _value_and_grad(self.model, torch.contiguous_format, probe, _probe_loss)
        if not self._is_deterministic(probe, ref[2]):
            return None
        try:
            got = _value_and_grad(*cl, probe, _probe_loss)
        except Exception as exc:  # e.g. a .view() that channels-last strides do not allow
            log.debug("channels-last copy raised %s: %s; using the model", type(exc).__name__, exc)
            return None
        if _agree(ref[2], got[2], FWD_TOL) and _agree(ref[1], got[1], GRAD_TOL, floor=1e-12):
            return cl
        log.debug("channels-last copy disagrees with the model's gradient; using the model")
        return None


def _agrees_on(copy_fmt, *cases) -> bool:
    """Whether the copy's logits agree with the module's (``(input, reference)`` pairs; None skipped)."""
    module, fmt = copy_fmt
    return all(_agree(ref, _try(module, _layout(x, fmt)), FWD_TOL) for x, ref in cases if x is not None)


def _probe_loss(z: torch.Tensor) -> torch.Tensor:
    """A fixed generic linear functional of the logits: its gradient compares Jacobians."""
    return (z * torch.linspace(-1.0, 1.0, z.shape[1], dtype=z.dtype, device=z.device)).sum(1)


def _layout(x: torch.Tensor, fmt) -> torch.Tensor:
    return x.contiguous(memory_format=fmt) if fmt is not torch.contiguous_format and x.dim() == 4 else x


def _value_and_grad(module, fmt, x: torch.Tensor, loss):
    xg = _layout(x.detach(), fmt).requires_grad_(True)
    with torch.enable_grad():
        z = module(xg)
        l = loss(z)
        g, = torch.autograd.grad(l.sum(), xg)
    return l.detach(), g.contiguous(), z.detach()
