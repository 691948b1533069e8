"""Building blocks shared by every Inception network.

Three pieces make up all of the Inception family:

* :class:`ConvBNReLU`, the basic unit: a convolution without bias, BatchNorm (eps 1e-3, as in TF-slim and
  the released checkpoints) and ReLU. Its state-dict keys are ``conv.*`` and ``bn.*``, the layout timm,
  torchvision, Cadene and facenet-pytorch share.
* :class:`Mixed`, a block of parallel branches whose outputs are concatenated along channels, in order.
* :class:`ScaledResidual`, the Inception-ResNet block: ``x + scale * up(concat(branches(x)))`` followed by
  ReLU, where ``up`` is a linear 1x1 convolution with bias (paper section 3.3 and Figs 10-13, 16-19);
  ``shortcut=False`` drops the identity path (``scale * up(...)``), the residual study's control.

Children are registered under the names the reference implementations use, so that a network built from
these blocks has exactly their state-dict layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (never below ``divisor``, never 10% smaller)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class Widths:
    """Scales the reference channel counts by a width multiplier (our extension, not the paper's)."""

    def __init__(self, multiplier: float = 1.0) -> None:
        self.multiplier = float(multiplier)

    def __call__(self, channels: int) -> int:
        if self.multiplier == 1.0:
            return channels
        return make_divisible(channels * self.multiplier)


def _same_padding(kernel_size: tuple[int, int]) -> tuple[int, int]:
    return (kernel_size[0] // 2, kernel_size[1] // 2)


class ConvBNReLU(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d (eps 1e-3) -> ReLU; the basic unit of every Inception network.

    ``padding`` is ``"valid"`` (no padding), ``"same"`` (k // 2 per axis; every same-padded layer in these
    networks has stride 1 and odd kernels, so this equals TF's SAME) or explicit integers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: str | int | tuple[int, int] = "valid",
    ) -> None:
        super().__init__()
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if padding == "valid":
            pad: int | tuple[int, int] = 0
        elif padding == "same":
            if stride != 1:
                raise ValueError("'same' padding is only used with stride 1 in these networks")
            pad = _same_padding(kernel)
        else:
            pad = padding
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=pad, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int] = 1,
    stride: int = 1,
    padding: str | int | tuple[int, int] | None = None,
) -> ConvBNReLU:
    """A :class:`ConvBNReLU`; padding defaults to "same" at stride 1 and "valid" at stride 2."""
    if padding is None:
        padding = "same" if stride == 1 else "valid"
    return ConvBNReLU(in_channels, out_channels, kernel_size, stride, padding)


def chain(*units: nn.Module) -> nn.Sequential:
    """Units applied in turn; state-dict keys ``<name>.0``, ``<name>.1``, ..."""
    return nn.Sequential(*units)


def max_pool_reduce() -> nn.MaxPool2d:
    """The 3x3 stride-2 valid max-pool of every reduction."""
    return nn.MaxPool2d(3, stride=2)


def avg_pool_same(count_include_pad: bool = False) -> nn.AvgPool2d:
    """The 3x3 stride-1 same average pool of the pool branch.

    TF's SAME average pooling excludes the padding from the average (v4 and the Inception-ResNets); the
    torchvision/timm Inception-v3 includes it, so v3 passes ``count_include_pad=True``.
    """
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)


def out_channels_of(module: nn.Module, in_channels: int) -> int:
    """Channels a module produces from ``in_channels`` input channels (pools keep the count)."""
    if isinstance(module, nn.Sequential):
        for child in module:
            in_channels = out_channels_of(child, in_channels)
        return in_channels
    return int(getattr(module, "out_channels", in_channels))


class Mixed(nn.ModuleDict):
    """Parallel branches concatenated along channels, in order: the Inception block.

    Each branch is one module (a unit, a :func:`chain` of units, or a pool), registered under its name,
    which fixes the state-dict keys (``branch1.0.conv.weight``...). ``branch_order`` (a TorchScript
    constant) keeps two blocks with the same branches in different orders from sharing one compiled type:
    TorchScript's type of a ModuleDict ignores the order its loop unrolls in.
    """

    __constants__ = ["branch_order"]

    def __init__(self, in_channels: int, branches: dict[str, nn.Module]) -> None:
        super().__init__(branches)
        self.branch_order = ",".join(branches)
        self.in_channels = in_channels
        self.branch_channels = [out_channels_of(b, in_channels) for b in branches.values()]
        self.out_channels = sum(self.branch_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for _name, branch in self.items():
            outputs.append(branch(x))
        return torch.cat(outputs, 1)


class ScaledResidual(nn.ModuleDict):
    """Inception-ResNet block: ``relu(x + scale * up(concat(branches(x))))`` (paper Figs 10-13, 16-19).

    The branches are children named as in TF-slim and timm (``branch0``, ``branch1``...); ``up``, registered
    as ``conv2d`` (TF-slim's block-level ``Conv2d_1x1``), is a linear 1x1 convolution with bias and no
    BatchNorm that restores the input width. ``scale`` is the paper's residual scaling (section 3.3);
    ``activate=False`` leaves out the ReLU after the sum (the released last Inception-ResNet-C block).
    ``branch_order`` is a TorchScript constant, as in :class:`Mixed`. ``shortcut=False`` leaves out the
    identity path, ``relu(scale * up(concat(branches(x))))``: the same parameters and multiply-accumulates,
    the residual connection as the only difference (the control of the README's residual study).
    """

    __constants__ = ["branch_order"]

    def __init__(
        self,
        in_channels: int,
        branches: dict[str, nn.Module],
        scale: float = 1.0,
        activate: bool = True,
        shortcut: bool = True,
    ) -> None:
        super().__init__(branches)
        self.branch_order = ",".join(branches)
        self.branch_channels = [out_channels_of(b, in_channels) for b in branches.values()]
        self.conv2d = nn.Conv2d(sum(self.branch_channels), in_channels, 1, bias=True)
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.scale = float(scale)
        self.activate = activate
        self.shortcut = bool(shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for name, branch in self.items():
            if name != "conv2d":
                outputs.append(branch(x))
        up = self.conv2d(torch.cat(outputs, 1))
        # a scale folded into the up-projection (inference.rewrites.fold_residual_scale) costs no extra pass
        if self.scale != 1.0:
            up = up * self.scale
        out = x + up if self.shortcut else up
        return F.relu(out) if self.activate else out

    def extra_repr(self) -> str:
        return f"scale={self.scale}, activate={self.activate}" + ("" if self.shortcut else ", shortcut=False")


def init_weights(module: nn.Module) -> None:
    """He (fan-in) initialisation for convolutions as in TF-slim's v3/v4 arg scope; small-normal classifiers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.01, a=-0.02, b=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
