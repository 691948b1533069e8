"""The Inception-ResNet blocks (paper Figs 10-13 for v1, 16-19 for v2), with their widths as arguments.

Inception-ResNet-v1 and -v2 share the block shapes and differ only in widths, so each block is one
function; the networks pass the widths of their figure. Branch names follow TF-slim (``Branch_0`` ->
``branch0``) and the residual up-projection is ``conv2d``, as in timm and facenet-pytorch. Every block takes
``shortcut`` (see :class:`~inception_resnet.models.layers.ScaledResidual`): ``False`` removes its identity path and
nothing else, the networks' ``shortcut`` option.

:func:`residual_stages` builds what follows the stem in all three networks: A blocks, Reduction-A, B blocks,
Reduction-B, C blocks (paper Figs 9 and 15), from one network's :class:`ResidualWidths`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import nn

from .inception_v4 import reduction_a
from .layers import Mixed, ScaledResidual, Widths, chain, conv, max_pool_reduce


def resolve_scales(residual_scale: float | Sequence[float]) -> tuple[float, float, float]:
    """``residual_scale`` as an (A, B, C) triple; a single float applies to all three block types."""
    if isinstance(residual_scale, (int, float)):
        scales = (float(residual_scale),) * 3
    else:
        scales = tuple(float(s) for s in residual_scale)
        if len(scales) != 3:
            raise ValueError(f"residual_scale must be a float or an (A, B, C) triple, got {residual_scale!r}")
    if any(s <= 0 for s in scales):
        raise ValueError(f"residual scales must be positive, got {scales}")
    return scales  # type: ignore[return-value]


def block35(
    cin: int, c: Widths, b0: int, b1: tuple[int, int], b2: tuple[int, int, int], scale: float, shortcut: bool = True
) -> ScaledResidual:
    """Inception-ResNet-A on the 35x35 grid: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3, then the up-projection."""
    return ScaledResidual(
        cin,
        {
            "branch0": conv(cin, c(b0)),
            "branch1": chain(conv(cin, c(b1[0])), conv(c(b1[0]), c(b1[1]), 3)),
            "branch2": chain(conv(cin, c(b2[0])), conv(c(b2[0]), c(b2[1]), 3), conv(c(b2[1]), c(b2[2]), 3)),
        },
        scale=scale,
        shortcut=shortcut,
    )


def block17(
    cin: int, c: Widths, b0: int, b1: tuple[int, int, int], scale: float, shortcut: bool = True
) -> ScaledResidual:
    """Inception-ResNet-B on the 17x17 grid: 1x1 | 1x1 -> 1x7 -> 7x1, then the up-projection."""
    return ScaledResidual(
        cin,
        {
            "branch0": conv(cin, c(b0)),
            "branch1": chain(conv(cin, c(b1[0])), conv(c(b1[0]), c(b1[1]), (1, 7)), conv(c(b1[1]), c(b1[2]), (7, 1))),
        },
        scale=scale,
        shortcut=shortcut,
    )


def block8(
    cin: int, c: Widths, b0: int, b1: tuple[int, int, int], scale: float, activate: bool = True, shortcut: bool = True
) -> ScaledResidual:
    """Inception-ResNet-C on the 8x8 grid: 1x1 | 1x1 -> 1x3 -> 3x1, then the up-projection."""
    return ScaledResidual(
        cin,
        {
            "branch0": conv(cin, c(b0)),
            "branch1": chain(conv(cin, c(b1[0])), conv(c(b1[0]), c(b1[1]), (1, 3)), conv(c(b1[1]), c(b1[2]), (3, 1))),
        },
        scale=scale,
        activate=activate,
        shortcut=shortcut,
    )


def residual_reduction_b(cin: int, c: Widths, b0: int, b1: int, b2: tuple[int, int]) -> Mixed:
    """Reduction-B of the Inception-ResNets (Figs 12, 18): 256 -> 3x3/2 | 256 -> 3x3/2 | 256 -> 3x3 -> 3x3/2 | pool."""
    return Mixed(
        cin,
        {
            "branch0": chain(conv(cin, c(256)), conv(c(256), c(b0), 3, 2)),
            "branch1": chain(conv(cin, c(256)), conv(c(256), c(b1), 3, 2)),
            "branch2": chain(conv(cin, c(256)), conv(c(256), c(b2[0]), 3), conv(c(b2[0]), c(b2[1]), 3, 2)),
            "branch3": max_pool_reduce(),
        },
    )


@dataclass(frozen=True)
class ResidualWidths:
    """The widths of one Inception-ResNet as its figures give them: the arguments of :func:`block35`,
    :func:`block17` and :func:`block8` (``b0``, ``b1``...), of Reduction-A (``k, l, m, n``) and of
    :func:`residual_reduction_b`."""

    block_a: Mapping[str, Any]
    block_b: Mapping[str, Any]
    block_c: Mapping[str, Any]
    reduction_a: Mapping[str, int]
    reduction_b: Mapping[str, Any]


class ResidualStages(NamedTuple):
    """The stages after the stem, in the order of the figures (a network unpacks them into its own names)."""

    blocks_a: nn.Sequential
    reduction_a: Mixed
    blocks_b: nn.Sequential
    reduction_b: Mixed
    blocks_c: nn.Sequential

    @property
    def channels(self) -> tuple[int, int, int]:
        """The widths the A, B and C blocks work at."""
        return self.reduction_a.in_channels, self.reduction_a.out_channels, self.reduction_b.out_channels


def residual_stages(
    cin: int,
    c: Widths,
    widths: ResidualWidths,
    residual_scale: float | Sequence[float],
    blocks: tuple[int, int, int],
    shortcut: bool = True,
) -> ResidualStages:
    """``blocks[0]`` A blocks at ``cin`` channels, Reduction-A, ``blocks[1]`` B blocks, Reduction-B and
    ``blocks[2]`` C blocks, with the scales of ``residual_scale`` (see :func:`resolve_scales`)."""
    scale_a, scale_b, scale_c = resolve_scales(residual_scale)
    blocks_a = nn.Sequential(
        *[block35(cin, c, **widths.block_a, scale=scale_a, shortcut=shortcut) for _ in range(blocks[0])]
    )
    reduce_a = reduction_a(cin, c, **widths.reduction_a)
    cin_b = reduce_a.out_channels
    blocks_b = nn.Sequential(
        *[block17(cin_b, c, **widths.block_b, scale=scale_b, shortcut=shortcut) for _ in range(blocks[1])]
    )
    reduce_b = residual_reduction_b(cin_b, c, **widths.reduction_b)
    cin_c = reduce_b.out_channels
    blocks_c = nn.Sequential(
        *[block8(cin_c, c, **widths.block_c, scale=scale_c, shortcut=shortcut) for _ in range(blocks[2])]
    )
    return ResidualStages(blocks_a, reduce_a, blocks_b, reduce_b, blocks_c)
