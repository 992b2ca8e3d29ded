"""Small, standard architectures for the zoo and for ``advkit train``.

- ``smallcnn``: the small CNN of the TRADES MNIST experiments (Zhang et al., "Theoretically Principled
  Trade-off between Robustness and Accuracy", ICML 2019): conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10,
  3×3 convolutions without padding (``padding=1`` for inputs smaller than 20 pixels, e.g. 8×8 digits).
- ``lenet``: LeNet-5 style (LeCun et al. 1998) with ReLU and max pooling: conv6(5×5)-pool-conv16(5×5)-pool-fc120-fc84.
- ``preact-resnet18``: pre-activation ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks",
  ECCV 2016), the model of Wong et al. 2020 / Rice et al. 2020 for 32×32 inputs.
- ``wrn-28-10`` (and ``wrn-D-K``): Wide ResNet (Zagoruyko & Komodakis, BMVC 2016), depth D = 6n+4, widen
  factor K; WRN-28-10 has ≈36.5M parameters.

Flattened feature sizes are computed from ``input_size`` (square inputs), never hard-coded.
"""
from __future__ import annotations

import re
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError


def _conv_out(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class SmallCNN(nn.Module):
    """TRADES small CNN; ``dropout`` (0.5 in TRADES) sits between the fully connected layers."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, *,
                 padding: int = 0, dropout: float = 0.0):
        super().__init__()
        s = input_size
        for _ in range(2):
            s = _conv_out(_conv_out(s, 3, padding), 3, padding) // 2
        if s < 1:
            raise ConfigError(f"smallcnn: input_size {input_size} is too small with padding={padding} "
                              "(expected a positive feature map); use padding=1 for inputs under 20 pixels")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=padding), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=padding), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=padding), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * s * s, 200), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(nn.Module):
    """LeNet-5 style network (ReLU, max pooling); 28×28 inputs are padded by 2 as in the 32×32 original."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28):
        super().__init__()
        pad = 2 if input_size < 32 else 0
        s = _conv_out(_conv_out(input_size, 5, pad) // 2, 5) // 2
        if s < 1:
            raise ConfigError(f"lenet: input_size {input_size} is too small (expected at least 12 pixels)")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * s * s, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class PreActBlock(nn.Module):
    """BN-ReLU-conv3×3-(dropout)-BN-ReLU-conv3×3 with an identity (or 1×1 projection) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if not 0 <= dropout < 1:  # F.dropout would refuse it only in the first training step
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout}")
        self.dropout = dropout
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = F.relu(self.bn2(self.conv1(out)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + skip


def _stages(make_block: Callable[[int, int, int], nn.Module], in_planes: int,
            plan: list[tuple[int, int]]) -> tuple[nn.Sequential, int]:
    """The blocks of each ``(planes, count)`` stage (stride 2 on entering every stage after the first)."""
    layers = []
    for i, (planes, n) in enumerate(plan):
        for j in range(n):
            layers.append(make_block(in_planes, planes, 2 if (i > 0 and j == 0) else 1))
            in_planes = planes
    return nn.Sequential(*layers), in_planes


class PreActResNet(nn.Module):
    """Pre-activation ResNet; ``blocks=(2, 2, 2, 2)`` is PreActResNet-18."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32,
                 blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        if input_size < 8:
            raise ConfigError(f"preact-resnet: input_size must be at least 8, got {input_size}")
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.layers, in_planes = _stages(PreActBlock, 64, [(64 * 2 ** i, n) for i, n in enumerate(blocks)])
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class WideBlock(PreActBlock):
    """Wide-ResNet basic block: the pre-activation block with dropout between its convolutions."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float = 0.0):
        super().__init__(in_planes, planes, stride, dropout)


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``: three groups of (depth−4)/6 blocks with 16k, 32k, 64k channels."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32, *,
                 depth: int = 28, widen_factor: int = 10, dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ConfigError(f"wide resnet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if input_size < 4:
            raise ConfigError(f"wide resnet: input_size must be at least 4, got {input_size}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.layers, in_planes = _stages(lambda i, p, s: WideBlock(i, p, s, dropout), widths[0],
                                         [(planes, n) for planes in widths[1:]])
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


_BUILDERS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "smallcnn": (SmallCNN, "TRADES small CNN: conv32-conv32-pool-conv64-conv64-pool-fc200-fc200 (MNIST-sized inputs)"),
    "lenet": (LeNet, "LeNet-5 style: conv6-pool-conv16-pool-fc120-fc84"),
    "preact-resnet18": (PreActResNet, "pre-activation ResNet-18 (32×32 colour inputs)"),
    "wrn-28-10": (lambda **kw: WideResNet(**{"depth": 28, "widen_factor": 10, **kw}),
                  "Wide ResNet 28-10, ≈36.5M parameters (32×32 colour inputs); also wrn-D-K"),
}
_WRN = re.compile(r"wrn-(\d+)-(\d+)")


def list_architectures() -> list[tuple[str, str]]:
    """(name, description) of every architecture :func:`build` knows."""
    return [(k, d) for k, (_, d) in _BUILDERS.items()]


def build(arch: str, *, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, **kw) -> nn.Module:
    """Build architecture ``arch`` for ``in_channels``×``input_size``×``input_size`` inputs."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("input_size", input_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    common = {"num_classes": num_classes, "in_channels": in_channels, "input_size": input_size}
    m = _WRN.fullmatch(arch) if isinstance(arch, str) else None
    if arch not in _BUILDERS and m is not None:
        return _construct(WideResNet, arch, kw, **common, depth=int(m.group(1)), widen_factor=int(m.group(2)))
    if arch not in _BUILDERS:
        raise ConfigError(f"unknown architecture {arch!r}; expected one of: {', '.join(_BUILDERS)} (or wrn-D-K)")
    return _construct(_BUILDERS[arch][0], arch, kw, **common)


def _construct(builder: Callable[..., nn.Module], arch: str, options: dict, **fixed) -> nn.Module:
    """``builder(**fixed, **options)``; an option the architecture does not take (TypeError) or a value it
    refuses (ValueError, e.g. dropout=5) is a one-line ConfigError naming the options."""
    clash = sorted(set(options) & set(fixed))
    if clash:
        raise ConfigError(f"invalid options for architecture {arch!r}: expected options other than {clash} "
                          f"(set by the architecture name and the data), got {clash}")
    try:
        return builder(**fixed, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid options {options} for architecture {arch!r}: "
                          f"{' '.join(str(e).split())[:200]}") from None
