"""Per-sample random streams: counter-based, vectorised, on any device.

An attack run with a ``torch.Generator`` draws its random numbers for the whole batch from one
sequential stream, so a sample's draws depend on its batch mates (and on the batch size).
:class:`SampleStreams` gives every sample its own stream instead: sample *i* has a 64-bit key
(derived from a seed, a label such as the evaluation stage, and the sample's global index) and a
draw counter; its k-th random word is ``mix(k·γ ⊕ key_i)``, where ``mix`` is the SplitMix64
finaliser (Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators"; the
variant-13 constants of Stafford 2011) and γ the golden-ratio increment.  The hash is written with
int64 torch ops (wrap-around multiplication; right shifts are masked so that the sign extension of
an arithmetic shift does not leak in), so draws run on the samples' device with no host round trip.

Every draw returns a tensor whose leading dimension is the samples, and advances only the counters of
the samples it drew for: :meth:`SampleStreams.subset` views a subset (an attack's still-active
samples) whose draws move only those samples' counters.  So a sample's draws depend only on its own
key and its own history of draws: an attack whose per-sample decisions depend only on that sample
gives the same result for a sample alone, in any batch, in any order, in any number of processes.

Some draws must be the same for every sample of a batch (Square's window and sign of an iteration, as
the official code draws them).  Under per-sample streams such a *shared* draw comes from a sequence that
belongs to the whole stream family, never to a batch: a family made by :meth:`SampleStreams.for_samples`
is keyed by (seed, label) alone, :meth:`SampleStreams.spawn` and :meth:`SampleStreams.shared_key` derive
keys from it and from how many keys were derived before (every batch derives them in the same order), and
:func:`shared_uniform` reads position k of a key's sequence.  So a shared draw depends on the seed, the
label, the run and the iteration, never on the batch or its size.

Attacks accept either kind through their ``generator=`` argument; the functions :func:`rand`,
:func:`randn`, :func:`randint` and :func:`take` dispatch: a ``torch.Generator`` (or
None) gets exactly the ``torch`` call it always got, a :class:`SampleStreams` its own draw.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from .errors import InputError

#: the random-stream scheme of evaluations (part of ``code_version``: stored batches of another scheme
#: are never mixed into a resumed run)
SCHEME = "ps2"

_GAMMA = 0x9E3779B97F4A7C15 - 2**64
_M1 = 0xBF58476D1CE4E5B9 - 2**64
_M2 = 0x94D049BB133111EB - 2**64
_SPAWN = 0x5851F42D4C957F2D  # decorrelates a spawned stream's keys from its parent's words


def mix(z: torch.Tensor) -> torch.Tensor:
    """The SplitMix64 finaliser on int64 tensors (bijective; wrap-around arithmetic)."""
    z = z ^ ((z >> 30) & ((1 << 34) - 1))
    z = z * _M1
    z = z ^ ((z >> 27) & ((1 << 37) - 1))
    z = z * _M2
    return z ^ ((z >> 31) & ((1 << 33) - 1))


def label_key(seed: int, label: str) -> int:
    """A 63-bit key from a seed and a label (stable across processes and platforms)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{label}".encode()).digest()[:8], "big") >> 1


def _mantissa_bits(dtype: torch.dtype) -> int:
    return round(-math.log2(torch.finfo(dtype).eps)) + 1  # float32: 24, float64: 53


class SampleStreams:
    """One random stream per sample (see the module docstring).  ``len`` is the number of samples."""

    def __init__(self, keys: torch.Tensor, counters: torch.Tensor | None = None,
                 rows: torch.Tensor | None = None, shared: "_Family | None" = None):
        self._shared = _Family(0) if shared is None else shared  # the family's key, shared with views
        self._keys = keys  # the root's keys (int64)
        self._counters = torch.zeros_like(keys) if counters is None else counters  # shared with views
        self._rows = rows  # None (all of the root) or indices into the root
        self._sub_keys = keys if rows is None else keys[rows]
        self._buf: torch.Tensor | None = None  # words drawn ahead by prefetch(), served in order
        self._used = 0

    @classmethod
    def for_samples(cls, seed: int, label: str, index, device=None) -> "SampleStreams":
        """Streams of the samples with global indices ``index`` (ints), keyed by (seed, label, index)."""
        if not isinstance(index, torch.Tensor):
            index = np.asarray(index, dtype=np.int64)
        idx = torch.as_tensor(index, dtype=torch.int64, device=device).flatten()
        return cls(mix(mix((idx * _GAMMA) ^ label_key(seed, label)) + _GAMMA), shared=_Family(label_key(seed, label)))

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self._sub_keys)

    @property
    def device(self) -> torch.device:
        return self._keys.device

    def subset(self, idx) -> "SampleStreams":
        """A view of the samples ``idx`` (indices, a bool mask or a slice into this stream's samples);
        its draws advance these samples' counters here too."""
        here = torch.arange(len(self), device=self.device) if self._rows is None else self._rows
        if isinstance(idx, slice):
            rows = here[idx]
        else:
            idx = torch.as_tensor(idx, device=self.device)
            rows = here[idx.nonzero().flatten() if idx.dtype == torch.bool else idx.long().flatten()]
        return SampleStreams(self._keys, self._counters, rows, self._shared)

    def copy(self) -> "SampleStreams":
        """An independent copy at the current counters (draws from it leave this stream as it is)."""
        return SampleStreams(self._sub_keys.clone(), self._state().clone(), shared=self._shared.copy())

    def spawn(self) -> "SampleStreams":
        """A fresh stream per sample keyed by one word of this one (advances each counter by one): the
        per-sample analogue of seeding a new generator from a draw of the caller's."""
        return SampleStreams(mix(self.bits(1)[:, 0] ^ _SPAWN), shared=_Family(self.shared_key("spawn")))

    def shared_key(self, tag: str) -> int:
        """A fresh key for draws shared by all samples (:func:`shared_uniform`): derived from the family's
        key and the number of keys derived from it so far (the same in every batch), never from the samples."""
        return self._shared.derive(tag)

    def to(self, device) -> "SampleStreams":
        """These streams on ``device``: the same object on its own device, else a copy at the current counters."""
        device = torch.device(device)
        if device == self.device:
            return self
        return SampleStreams(self._sub_keys.to(device), self._state().to(device), shared=self._shared.copy())

    # ------------------------------------------------------------------ draws
    def _state(self) -> torch.Tensor:
        return self._counters if self._rows is None else self._counters.index_select(0, self._rows)

    def prefetch(self, m: int) -> None:
        """Draw each sample's next ``m`` words now; the following draws of this object take them in order
        (the same numbers as drawing them one by one, in fewer tensor operations: for a loop that draws a
        few small tensors per iteration).  A draw that no longer fits draws afresh, after them."""
        self._buf, self._used = None, 0
        self._buf = self.bits(m)

    def bits(self, m: int) -> torch.Tensor:
        """(n, m) random int64 words; advances each sample's counter by ``m``."""
        if self._buf is not None:
            if self._used + m <= self._buf.shape[1]:
                self._used += m
                return self._buf[:, self._used - m:self._used]
            self._buf = None
        ctr = self._state()
        pos = ctr[:, None] if m == 1 else ctr[:, None] + torch.arange(m, device=self.device)
        out = mix((pos * _GAMMA) ^ self._sub_keys[:, None])
        if self._rows is None:
            self._counters += m
        else:
            self._counters.index_copy_(0, self._rows, ctr + m)
        return out

    def _per_sample(self, shape) -> tuple[tuple[int, ...], int]:
        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self):
            raise InputError(f"a per-sample draw needs a shape whose first dimension is the {len(self)} samples, "
                             f"got {shape}")
        return shape, math.prod(shape[1:])

    @staticmethod
    def _unit(words: torch.Tensor, dtype: torch.dtype, shift: int = 0) -> torch.Tensor:
        """Uniform [0, 1) in ``dtype`` from the top mantissa bits of ``words`` (below ``shift`` bits)."""
        p = _mantissa_bits(dtype)
        top = (words >> (64 - shift - p)) & ((1 << p) - 1)
        return top.to(dtype) * (2.0 ** -p)

    def uniform(self, shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform on [0, 1)."""
        shape, m = self._per_sample(shape)
        return self._unit(self.bits(m), dtype).view(shape)

    def normal(self, shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal (Box–Muller; two 24-bit uniforms from one word, or two words for float64)."""
        shape, m = self._per_sample(shape)
        if dtype == torch.float64:
            w = self.bits(2 * m)
            u1, u2 = self._unit(w[:, :m], dtype), self._unit(w[:, m:], dtype)
            work = dtype
        else:
            w, work = self.bits(m), torch.float32
            u1, u2 = self._unit(w, work), self._unit(w, work, shift=32)
        r = (-2.0 * torch.log1p(-u1)).sqrt()  # 1 − u1 ∈ (0, 1]
        return (r * torch.cos(2 * math.pi * u2)).to(dtype).view(shape)

    def integers(self, low, high, shape) -> torch.Tensor:
        """Integers in [low, high) (int64); ``low``/``high`` are ints or per-sample tensors."""
        shape, m = self._per_sample(shape)
        w = (self.bits(m) >> 11) & ((1 << 53) - 1)  # 53 uniform bits; the modulo bias is below span/2^53
        if isinstance(low, int) and isinstance(high, int):  # the common case: no bound tensors to build
            return (w % max(high - low, 1) + low).view(shape)
        low = torch.as_tensor(low, dtype=torch.int64, device=self.device).reshape(-1, 1)
        span = torch.as_tensor(high, dtype=torch.int64, device=self.device).reshape(-1, 1) - low
        return (w % span.clamp_min(1) + low).view(shape)

    def coin(self) -> torch.Tensor:
        """(n,) bool, each True with probability 1/2."""
        return self.bits(1)[:, 0] < 0


class _Family:
    """What all samples of a stream family share: a 63-bit key and how many keys were derived from it."""

    def __init__(self, key: int, derived: int = 0):
        self.key, self.derived = key, derived

    def derive(self, tag: str) -> int:
        self.derived += 1
        return label_key(self.key, f"{tag}/{self.derived}")

    def copy(self) -> "_Family":
        return _Family(self.key, self.derived)


def shared_uniform(key: int, start: int, shape, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Uniforms on [0, 1) at positions ``start``, ``start`` + 1, … of the shared sequence ``key``
    (:meth:`SampleStreams.shared_key`): one draw for a whole batch, computed on ``device`` (no host sync)."""
    m = math.prod(int(d) for d in shape)
    pos = torch.arange(start, start + m, device=device, dtype=torch.int64)
    return SampleStreams._unit(mix((pos * _GAMMA) ^ key), dtype).view(tuple(shape))


def is_stream(gen) -> bool:
    return isinstance(gen, SampleStreams)


def rand(gen, shape, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """``torch.rand`` from a generator, or per-sample uniforms from :class:`SampleStreams`."""
    if is_stream(gen):
        return gen.uniform(shape, dtype).to(device)
    return torch.rand(shape, generator=gen, device=device, dtype=dtype)


def randn(gen, shape, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """``torch.randn`` from a generator, or per-sample normals from :class:`SampleStreams`."""
    if is_stream(gen):
        return gen.normal(shape, dtype).to(device)
    return torch.randn(shape, generator=gen, device=device, dtype=dtype)


def randint(gen, low: int, high: int, shape, *, device=None) -> torch.Tensor:
    """``torch.randint`` from a generator, or per-sample integers from :class:`SampleStreams`."""
    if is_stream(gen):
        return gen.integers(low, high, shape).to(device)
    return torch.randint(low, high, shape, generator=gen, device=device)


def take(gen, idx):
    """The streams of the samples ``idx`` (a view); a generator (or None) is returned as it is."""
    return gen.subset(idx) if is_stream(gen) else gen


def check_length(gen, n: int, what: str = "inputs") -> None:
    """Refuse per-sample streams whose number of samples is not ``n``."""
    if is_stream(gen) and len(gen) != n:
        raise InputError(f"generator: expected per-sample streams for the {n} {what}, got streams for "
                         f"{len(gen)} samples")


__all__ = ["SampleStreams", "SCHEME", "mix", "label_key", "is_stream", "rand", "randn", "randint", "take",
           "check_length", "shared_uniform"]
