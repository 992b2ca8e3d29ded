"""The model wrapper: :class:`Classifier` owns normalisation, input bounds, eval mode and device.

Attacks see pixels in ``bounds`` and get logits back; nothing else in advkit normalises inputs.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from . import faults
from .errors import (AdvkitError, InputError, ModelError, ModelFault, ProbabilityOutputWarning,
                     RandomizedModelWarning, TrainModeWarning)
from .findings import Finding

_MODE_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class Classifier(nn.Module):
    """Wrap ``net`` so that ``forward(x)`` takes pixels in ``bounds`` and returns logits.

    ``mean``/``std`` (per channel) are applied inside as buffers; ``input_shape`` (C, H, W), when
    given, is checked by :meth:`check_inputs`.  ``num_classes`` is inferred on first use if absent.
    ``accelerate=False`` keeps attacks on this module itself (no compiled or channels-last copies).
    """

    def __init__(self, net: nn.Module, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 bounds: tuple[float, float] = (0.0, 1.0), num_classes: int | None = None,
                 input_shape: Sequence[int] | None = None, name: str | None = None, accelerate: bool = True):
        super().__init__()
        if isinstance(net, Classifier):
            raise ModelError("net is already a Classifier; wrap the underlying module instead")
        if not isinstance(net, nn.Module):
            raise ModelError(f"expected a torch.nn.Module, got {type(net).__name__}")
        lo, hi = float(bounds[0]), float(bounds[1])
        if not lo < hi:
            raise ModelError(f"bounds must satisfy low < high, got {bounds}")
        self.net = net
        self.bounds = (lo, hi)
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.name = name or type(net).__name__
        #: sha256 of the model's definition (factory source, archive bytes; ``sources/definition.py``)
        self.definition: str | None = None
        #: let attacks run checked faster copies of the model on CPU (``advkit.attacks.fastpath``)
        self.accelerate = bool(accelerate)
        self.was_training = net.training
        self._register_norm("mean", mean, 0.0)
        self._register_norm("std", std, 1.0)
        if self.std is not None and (self.std <= 0).any():
            raise ModelError("std must be positive")
        self.training = net.training

    def _register_norm(self, key, value, default):
        if value is None:
            self.register_buffer(key, None)
            return
        t = torch.as_tensor(value, dtype=torch.float32).flatten().view(1, -1, 1, 1)
        self.register_buffer(key, t)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        try:
            out = self.net(x)
        except AdvkitError:  # advkit's own layers (defenses) inside the net say what went wrong themselves
            raise
        except (Exception, SystemExit) as e:  # the model's own code: a fault of the model, naming it
            from .batching import is_out_of_memory
            if is_out_of_memory(e):  # the batch is halved and retried (batching.py)
                raise
            raise faults.raised(self.name, e) from e
        if self.num_classes is not None:  # known after the first (probe) batch: later batches must agree
            faults.check_output(self.name, out, len(x), self.num_classes)
        return out

    @property
    def device(self) -> torch.device:
        for t in self.net.parameters():
            return t.device
        for t in self.net.buffers():
            return t.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for t in self.net.parameters():
            if t.is_floating_point():
                return t.dtype
        return torch.float32

    @contextlib.contextmanager
    def inference(self) -> Iterator["Classifier"]:
        """Eval mode and frozen parameters inside; the caller's modes restored on exit."""
        modes = {m: m.training for m in self.modules()}
        grads = {p: p.requires_grad for p in self.parameters()}
        try:
            self.eval()
            for p in grads:
                p.requires_grad_(False)
            yield self
        finally:
            for m, mode in modes.items():
                m.training = mode
            for p, g in grads.items():
                p.requires_grad_(g)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256, *, logits: bool = False) -> torch.Tensor:
        """Labels (or logits with ``logits=True``) for ``x`` in batches (halved on out-of-memory), on
        ``x``'s device."""
        from .batching import forward_in_batches
        self.check_inputs(x)
        if len(x) == 0:
            return torch.empty(0).to(x.device)
        with self.inference():
            z = forward_in_batches(self, x, batch_size=batch_size, what="predict")
        faults.check_finite(z, self.name, "a prediction pass")
        return (z if logits else z.argmax(1)).to(x.device)

    def infer_num_classes(self, x: torch.Tensor) -> int:
        if self.num_classes is None:
            self.num_classes = self.output_width(x)
        return self.num_classes

    def output_width(self, x: torch.Tensor) -> int:
        """The number of classes, read from the width of the logits on ``x[:2]``.

        Raises :class:`ModelError` when the forward pass fails or does not return a float tensor of shape
        (N, classes) with at least 2 classes, or when it contradicts a declared ``num_classes``.
        """
        if len(x) == 0:
            raise InputError("expected at least one image to probe the model's outputs, got none")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"the model takes images of shape {self.input_shape} (C, H, W), the data has "
                             f"{tuple(x.shape[1:])}")
        declared, self.num_classes = self.num_classes, None  # this probe checks the output itself, below
        try:
            with self.inference(), torch.no_grad():
                out = self(x[:2].to(self.device, self.dtype))
        except ModelFault as e:  # the first batch checks the model's interface: a mismatch is an input error
            text = str(e) if e.__cause__ is None else f"the model's forward pass raised {faults.one_line(e.__cause__)}"
            raise ModelError(text) from e
        except Exception as e:  # noqa: BLE001 - user code: report it as the model's fault, in one line
            raise ModelError(f"the model's forward pass raised {type(e).__name__}: {' '.join(str(e).split())}") from e
        finally:
            self.num_classes = declared
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"the model returned a {type(out).__name__}; expected a tensor of logits of shape "
                             "(N, classes) (wrap the model so that forward returns only the logits)")
        if out.dim() != 2 or len(out) != len(x[:2]):
            raise ModelError(f"the model must return logits of shape (N, classes), got shape {tuple(out.shape)} "
                             f"for {len(x[:2])} inputs")
        width = int(out.shape[1])
        if width < 2:
            raise ModelError(f"the model returns {width} output per image; a classifier needs at least 2 logits "
                             "(for a binary classifier return two logits, e.g. [-z, z])")
        if self.num_classes is not None and int(self.num_classes) != width:
            raise ModelError(f"the model declares num_classes={self.num_classes} but returns {width} outputs")
        return width

    # ---------------------------------------------------------------- checks
    def check_inputs(self, x: torch.Tensor, y: torch.Tensor | None = None, *, targets: torch.Tensor | None = None) -> None:
        """Raise :class:`InputError` for malformed inputs or labels."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise InputError(f"x must be a floating-point tensor of pixels in {self.bounds}, got dtype {x.dtype}")
        if x.dim() != 4:
            raise InputError(f"x must have shape (N, C, H, W), got shape {tuple(x.shape)}")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"x must have per-sample shape {self.input_shape} (C, H, W), got {tuple(x.shape[1:])}")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x.flatten(1))).any(1).nonzero().flatten()[:5].tolist()
            raise InputError(f"x contains NaN or inf values (samples {bad}...)")
        lo, hi = self.bounds
        if x.numel() and (x.min() < lo or x.max() > hi):
            raise InputError(f"x must lie in the model's bounds [{lo}, {hi}], got values in "
                             f"[{x.min().item():.4g}, {x.max().item():.4g}]; rescale the data or set bounds")
        for name, lab in (("y", y), ("targets", targets)):
            if lab is not None:
                self._check_labels(name, lab, len(x))

    def _check_labels(self, name: str, y: torch.Tensor, n: int) -> None:
        if not isinstance(y, torch.Tensor):
            raise InputError(f"{name} must be a torch.Tensor of class indices, got {type(y).__name__}")
        if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise InputError(f"{name} must be a 1-D integer tensor, got shape {tuple(y.shape)} dtype {y.dtype}")
        if len(y) != n:
            raise InputError(f"{name} has {len(y)} entries but x has {n} samples")
        if len(y) and (y.min() < 0 or (self.num_classes is not None and y.max() >= self.num_classes)):
            raise InputError(f"{name} must lie in [0, {self.num_classes}), got values in [{y.min().item()}, {y.max().item()}]")

    def preflight(self, x: torch.Tensor, *, warn: bool = True) -> list[Finding]:
        """Pre-flight checks on a few inputs: train mode, probability outputs, randomness."""
        self.check_inputs(x)
        if len(x) == 0:
            raise InputError("expected at least one image for the pre-flight checks, got none")
        findings: list[Finding] = []
        mode_layers = [type(m).__name__ for m in self.net.modules() if isinstance(m, _MODE_LAYERS)]
        if self.net.training and mode_layers:
            findings.append(Finding("train-mode", "warning",
                                    f"the model was in train mode and has {', '.join(sorted(set(mode_layers)))} layers; "
                                    "advkit evaluates it in eval mode"))
        from .batching import forward_in_batches
        with self.inference():  # halved on out-of-memory (batching.py)
            draws = [forward_in_batches(self, x[:32], what="pre-flight check") for _ in range(RANDOMNESS_DRAWS)]
        a = draws[0]
        if a.dim() != 2:
            raise ModelError(f"the model must return logits of shape (N, classes), got shape {tuple(a.shape)}")
        faults.check_finite(a, self.name, "the pre-flight check on clean inputs")
        if (a >= 0).all() and torch.allclose(a.sum(1), torch.ones(len(a), device=a.device, dtype=a.dtype), atol=1e-4):
            findings.append(Finding("probability-outputs", "error",
                                    "outputs are non-negative and each row sums to 1: the model returns probabilities, "
                                    "not logits; remove the final softmax"))
        gap = randomness_gap(draws)
        if gap > RANDOMNESS_TOL:
            findings.append(Finding("randomized-model", "warning",
                                    f"{RANDOMNESS_DRAWS} identical forward passes differ by up to {gap:.3g} of the "
                                    f"logit norm (tolerance {RANDOMNESS_TOL:g}): the model is randomized; "
                                    "attack it with EOT"))
        if warn:
            _emit_warnings(findings)
        return findings


#: the official AutoAttack check (``checks.check_randomized``): 5 passes, each logit row divided by its
#: L2 norm, randomized when two normalised rows differ by more than 1e-4 in L2.  Relative to the logit
#: scale, so that non-deterministic accelerator kernels (jitter ~1e-6 of the logits) do not count.
RANDOMNESS_DRAWS = 5
RANDOMNESS_TOL = 1e-4


def randomness_gap(draws: list[torch.Tensor]) -> float:
    """Largest L2 distance between the same row of two draws, each row normalised to unit L2 norm."""
    rows = [d.float() / (d.float().norm(dim=1, keepdim=True) + 1e-10) for d in draws]
    gap = 0.0
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            diff = (rows[i] - rows[j]).norm(dim=1)
            gap = max(gap, float(diff.max()) if diff.numel() else 0.0)
    return gap if gap == gap else float("inf")


_WARNINGS = {"train-mode": TrainModeWarning, "probability-outputs": ProbabilityOutputWarning,
             "randomized-model": RandomizedModelWarning}


def _emit_warnings(findings: list[Finding]) -> None:
    import warnings
    for f in findings:
        cls = _WARNINGS.get(f.code)
        if cls is not None:
            warnings.warn(f.message, cls, stacklevel=3)


def resolve_classes(clf: Classifier, x: torch.Tensor, y: torch.Tensor, names=()) -> tuple[int, tuple[str, ...]]:
    """(number of classes, class names): the classes are the model's outputs, not the labels' values.

    Sets ``clf.num_classes`` to the width of the model's logits and checks every label against it, so
    that a label the model cannot predict is an :class:`InputError` (never a sample counted wrong), and
    class-dependent attacks (APGD-T, FAB-T) see the model's real class count even when the data holds
    only a few label values.  ``names`` (the data's class names) are cut or padded to that width.
    """
    width = clf.output_width(x)
    clf.num_classes = width
    if len(y) and int(y.max()) >= width:
        i = int(y.argmax())
        raise InputError(f"label {int(y[i])} (sample {i}) is outside the model's {width} outputs "
                         f"(classes 0..{width - 1}); the data and the model do not match")
    names = tuple(str(n) for n in names)[:width]
    return width, names + tuple(str(i) for i in range(len(names), width))


def as_classifier(model: nn.Module, **kwargs) -> Classifier:
    """Return ``model`` if it already is a :class:`Classifier`, else wrap it with ``kwargs``."""
    if isinstance(model, Classifier):
        return model
    return Classifier(model, **kwargs)
