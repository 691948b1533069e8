"""Rewrites that keep every output: BatchNorm and residual-scale folding, pooling branches that project first,
and the merged 1x1 convolutions of :mod:`.fusion`, applied together by :func:`rewrite_for_inference`.

Each is exact up to floating-point rounding (the tests hold them to 1e-4 in fp32):

* :func:`fold_batchnorm` (eval mode only): every convolution followed directly by a BatchNorm gets the
  normalisation folded into its weights and bias (``W' = W * g / sqrt(v + eps)``,
  ``b' = beta + (b - mu) * g / sqrt(v + eps)``) and the BatchNorm becomes an ``nn.Identity``.
* :func:`fold_residual_scale` (eval mode only): the ``scale`` of every Inception-ResNet block is folded into
  its ``conv2d`` up-projection, so ``x + scale * up(h)`` costs no separate multiplication.
* :func:`commute_pool_projections` (after folding): a pooling branch ``relu(conv1x1(avgpool(x)))`` becomes
  ``relu(avgpool(conv1x1(x)))`` (:class:`ProjectThenPool`), which pools the branch's few output channels
  instead of the block's many input channels.
* the 1x1 merge of :mod:`.fusion`, with the merged filters stored once.

:func:`rewrite_for_inference` applies them to an eval-mode copy. That copy's state dict differs from the
original (merged ``fused_1x1_*`` convolutions, biases, no BatchNorm statistics): keep the original model for
saving and loading weights. Users reach it through
:func:`~inception_resnet.inference.optimize.optimize_for_inference`, the one inference entry point, which
calls the functions here and is never called by them.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers import ConvBNReLU, ScaledResidual
from .fusion import FusionReport, fuse_tree, is_fused, is_pointwise_conv, unfuse_branches
from .onednn import pack_for_cpu
from .tracing import module_of, only_input, trace_block

__all__ = [
    "ProjectThenPool",
    "commute_pool_projections",
    "fold_batchnorm",
    "fold_residual_scale",
    "rewrite_for_inference",
]


# -- BatchNorm folding --------------------------------------------------------------------------------------


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution (with bias) equal to ``bn(conv(x))`` for an eval-mode BatchNorm with running statistics."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        mean = bn.running_mean.double()
        inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
        factor = gamma * inv_std
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
        fused.weight.copy_(conv.weight.double() * factor.reshape(-1, 1, 1, 1))
        fused.bias.copy_(beta + (bias - mean) * factor)
    fused.train(conv.training)
    return fused


def _conv_bn_pairs(unit: nn.Module) -> list[tuple[str, str]]:
    """Names of (conv, bn) children of ``unit`` where the BatchNorm reads the convolution's output only."""
    children = dict(unit.named_children())
    if not any(isinstance(c, nn.Conv2d) for c in children.values()):
        return []
    if not any(isinstance(c, nn.BatchNorm2d) for c in children.values()):
        return []
    graph = trace_block(unit)
    if graph is None:
        return []
    pairs = []
    for node in graph.nodes:
        bn = module_of(unit, node)
        source = only_input(node) if isinstance(bn, nn.BatchNorm2d) else None
        if source is None or len(source.users) != 1 or "." in str(node.target) or "." in str(source.target):
            continue
        if isinstance(module_of(unit, source), nn.Conv2d):
            pairs.append((str(source.target), str(node.target)))
    return pairs


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a convolution into it, in place; returns the count.

    A unit is any module with a ``Conv2d`` child whose output feeds only a ``BatchNorm2d`` child
    (:class:`~inception_resnet.models.layers.ConvBNReLU`, BN-Inception's unit, ``nn.Sequential(conv, bn, ...)``);
    the convolution is replaced by one with bias and the BatchNorm by ``nn.Identity``.
    """
    folded = 0
    for unit in list(model.modules()):
        for conv_name, bn_name in _conv_bn_pairs(unit):
            conv, bn = getattr(unit, conv_name), getattr(unit, bn_name)
            if bn.training:
                raise ValueError("fold_batchnorm needs an eval-mode model: call model.eval() first")
            setattr(unit, conv_name, fold_conv_bn(conv, bn))
            setattr(unit, bn_name, nn.Identity())
            folded += 1
    return folded


def fold_residual_scale(model: nn.Module) -> int:
    """Fold the residual scale of every Inception-ResNet block into its up-projection, in place; returns the count."""
    folded = 0
    for block in model.modules():
        if isinstance(block, ScaledResidual) and block.scale != 1.0:
            if block.training:
                raise ValueError("fold_residual_scale needs an eval-mode model: call model.eval() first")
            with torch.no_grad():
                block.conv2d.weight.mul_(block.scale)
                if block.conv2d.bias is not None:
                    block.conv2d.bias.mul_(block.scale)
            block.scale = 1.0
            folded += 1
    return folded


# -- pooling branches ---------------------------------------------------------------------------------------


class ProjectThenPool(nn.Module):
    """``relu(pool(conv(x)))``, equal to the pooling branch ``relu(conv(pool(x)))`` it replaces.

    A 1x1 convolution is the same linear map at every pixel and an average pool that leaves the padding out
    (TF-slim's, ``count_include_pad=False``) takes a convex combination of pixels, so the two commute, bias
    included. Projecting first pools the branch's few output channels instead of the block's many input
    channels: Inception-v4's pooling branches pool 96 instead of 384, 128 instead of 1024 and 256 instead
    of 1536 channels. The convolution's work is the same either way; as it now reads the block input, the
    1x1 merge (``fuse``) takes it into the block's merged heads.
    """

    def __init__(self, conv: nn.Conv2d, pool: nn.AvgPool2d) -> None:
        super().__init__()
        self.conv = conv
        self.pool = pool
        self.in_channels = conv.in_channels
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pool(self.conv(x)))


def _commutable(branch: nn.Module) -> tuple[nn.AvgPool2d, nn.Conv2d] | None:
    """``(pool, conv)`` of a ``Sequential(AvgPool2d, unit)`` whose unit is a folded 1x1 conv + ReLU, else None."""
    if not isinstance(branch, nn.Sequential) or len(branch) != 2:
        return None
    pool, unit = branch[0], branch[1]
    if not isinstance(pool, nn.AvgPool2d) or pool.divisor_override is not None:
        return None
    if pool.count_include_pad and pool.padding not in (0, (0, 0)):
        return None  # zeros in the average: the bias would be scaled at the borders
    if type(unit) is not ConvBNReLU or not isinstance(unit.bn, nn.Identity) or not isinstance(unit.act, nn.ReLU):
        return None  # only the plain unit, once its BatchNorm is folded: conv, Identity, ReLU
    conv = unit.conv
    if not (is_pointwise_conv(conv) and conv.padding in ((0, 0), "valid")):
        return None
    return pool, conv


def commute_pool_projections(model: nn.Module) -> int:
    """Replace every average-pool-then-1x1 branch by :class:`ProjectThenPool`, in place; returns the count.

    For eval-mode copies whose BatchNorms are folded (:func:`fold_batchnorm`): the branch must be a
    ``Sequential`` of an ``AvgPool2d`` without counted padding and a ``ConvBNReLU`` with a 1x1 convolution
    and an ``Identity`` BatchNorm, called as a whole by its block (blocks fused by :func:`fuse_branches`
    are left as they are). Exact up to floating-point rounding.
    """
    replaced = 0
    for parent in list(model.modules()):
        if hasattr(type(parent), "_fused_base"):
            continue  # a generated forward (fuse_branches) calls the branch's layers one by one
        for name, branch in list(parent.named_children()):
            found = _commutable(branch)
            if found is not None:
                setattr(parent, name, ProjectThenPool(found[1], found[0]))
                replaced += 1
    return replaced


def rewrite_for_inference(
    model: nn.Module,
    *,
    fold: bool = True,
    fuse: bool | None = None,
    project_pools: bool = True,
    channels_last: bool = False,
    onednn: bool = False,
) -> nn.Module:
    """An eval-mode copy of ``model`` with the rewrites applied (on any device); the original is not touched.

    ``fold``: fold BatchNorms and residual scales into the convolutions. ``fuse``: merge the 1x1
    convolutions that read the same input into one convolution with materialised weights, and apply their
    ReLU once; by default on, except with ``onednn``, where the merged output's channel slices must be
    copied before the next oneDNN convolution reads them, which costs more than the merge saves
    (benchmarks/README.md has the measurement). ``project_pools`` (with ``fold``):
    pooling branches project first (:func:`commute_pool_projections`). ``channels_last``: store the
    weights in NHWC (feed NHWC inputs too). ``onednn`` (fp32 CPU inference only; implies ``channels_last``):
    run the convolutions through oneDNN with prepacked weights and fused ReLU / residual add
    (:func:`inception_resnet.inference.onednn.pack_for_cpu`); such a copy cannot be copied, pickled or moved. The
    copy's parameters do not require gradients; its state dict has a different layout from the original's.
    The counts of what changed are in ``copy.optimization_report``.
    """
    optimized = copy.deepcopy(model).eval()
    if is_fused(optimized):  # fused at run time (fuse_branches): the plain forwards first, then every rewrite
        unfuse_branches(optimized)
    report = FusionReport()
    if fold:
        report.batchnorms_folded = fold_batchnorm(optimized)
        report.scales_folded = fold_residual_scale(optimized)
        report.pools_commuted = commute_pool_projections(optimized) if project_pools else 0
    if fuse if fuse is not None else not onednn:
        fuse_tree(optimized, materialize=True, report=report)
    optimized.requires_grad_(False)
    if channels_last or onednn:
        optimized = optimized.to(memory_format=torch.channels_last)
    if onednn:
        report.convs_packed = pack_for_cpu(optimized)
    optimized.optimization_report = report
    return optimized
