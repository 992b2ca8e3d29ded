"""The :class:`Dataset` every data source resolves to, and :func:`make_dataset` that builds one from arrays.

The data model of :mod:`advkit.sources`: the readers (:mod:`.data`, :mod:`.files`,
:mod:`.torchvision_formats`) import it; it imports none of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

SPLITS = ("train", "test")
DIGIT_CLASSES = tuple(str(i) for i in range(10))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images ``x`` (N, C, H, W) float32 in [0, 1], labels ``y`` (N,) int64, and their metadata.

    Compared by identity (tensors have no single truth value).
    """

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str
    classes: tuple[str, ...]
    split: str = "test"

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None) -> "Dataset":
        """The first ``n`` samples (all of them when ``n`` is None or exceeds the size)."""
        if n is None:
            return self
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"subset size must be a non-negative integer or None, got {n!r}")
        x = self.x[:n] if isinstance(self.x, torch.Tensor) else self.x.take(n)
        return Dataset(x, self.y[:n], self.num_classes, self.name, self.classes, self.split)

    @property
    def streamed(self) -> bool:
        return not isinstance(self.x, torch.Tensor)


def make_dataset(x: np.ndarray, y: np.ndarray, *, name: str, split: str, classes: tuple[str, ...],
                 scale: float | None = None, stream: bool = False) -> Dataset:
    """Build a Dataset from numpy arrays: ``x`` (N, C, H, W), divided by ``scale`` when given;
    ``stream`` keeps uint8 images (scale 255) as bytes and converts them per batch."""
    if stream and x.dtype == np.uint8 and scale == 255.0:
        from .streaming import ArrayImages
        yt = torch.from_numpy(np.ascontiguousarray(y).astype(np.int64))
        return Dataset(ArrayImages(np.ascontiguousarray(x)), yt, len(classes), name, tuple(classes), split)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    if scale is not None:
        xt = xt / scale
    xt = xt.clamp_(0.0, 1.0) if scale is not None else xt
    yt = torch.from_numpy(np.ascontiguousarray(y).astype(np.int64))
    return Dataset(xt, yt, len(classes), name, tuple(classes), split)
