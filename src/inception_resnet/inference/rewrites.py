"""Speed-ups that keep every output: BatchNorm and residual-scale folding, and horizontal fusion of 1x1 convs.

Four rewrites, each exact up to floating-point rounding (the tests hold them to 1e-4 in fp32):

* :func:`fold_batchnorm` (eval mode only): every convolution followed directly by a BatchNorm gets the
  normalisation folded into its weights and bias (``W' = W * g / sqrt(v + eps)``,
  ``b' = beta + (b - mu) * g / sqrt(v + eps)``) and the BatchNorm becomes an ``nn.Identity``.
* :func:`fold_residual_scale` (eval mode only): the ``scale`` of every Inception-ResNet block is folded into
  its ``conv2d`` up-projection, so ``x + scale * up(h)`` costs no separate multiplication.
* :func:`fuse_branches`: in every block whose forward applies two or more 1x1 stride-1 convolutions to the
  same tensor (the first layer of most Inception branches), those convolutions run as one convolution over
  the concatenated filters and each branch continues on its channel slice. The block input is read once
  and the matrix product is wider. In training mode the weights are concatenated at run time, so the
  parameters, the state dict, the optimizer and checkpoints are unchanged; BatchNorm still runs per branch
  on its slice, so its running statistics are updated exactly as before.

* :func:`commute_pool_projections` (after folding): a pooling branch ``relu(conv1x1(avgpool(x)))`` becomes
  ``relu(avgpool(conv1x1(x)))`` (:class:`ProjectThenPool`), which pools the branch's few output channels
  instead of the block's many input channels.

:func:`optimize_for_inference` applies all four to an eval-mode copy, materialising the concatenated
filters once and applying the ReLU of all merged heads in one pass. That copy's state dict differs from
the original (merged ``fused_1x1_*`` convolutions, biases, no BatchNorm statistics): keep the original
model for saving and loading weights.

Fusion works on any block, not only on :class:`~inception_resnet.models.layers.Mixed`: each block's forward is
traced with ``torch.fx`` and the block's class is swapped for a subclass whose ``forward`` is the rewritten
graph. Module tree, names and ``isinstance`` checks are unchanged, and TorchScript, ``torch.compile`` and
``copy.deepcopy`` keep working; pickling a whole fused model (``torch.save(model)``) does not, because the
generated classes cannot be imported: save the state dict instead.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..models.layers import ConvBNReLU, ScaledResidual
from .onednn import pack_for_cpu
from .tracing import (
    drop_identities,
    is_relu,
    is_torch_layer,
    module_of,
    only_input,
    swap_forward,
    trace_block,
)

__all__ = [
    "FusionReport",
    "ProjectThenPool",
    "commute_pool_projections",
    "fold_batchnorm",
    "fold_residual_scale",
    "fuse_branches",
    "is_fused",
    "optimize_for_inference",
    "unfuse_branches",
]


@dataclass
class FusionReport:
    """What a rewrite changed: folded BatchNorms and scales, merged groups and the 1x1 convs they absorbed."""

    batchnorms_folded: int = 0
    scales_folded: int = 0
    groups_fused: int = 0
    convs_fused: int = 0
    convs_packed: int = 0
    pools_commuted: int = 0

    def __str__(self) -> str:
        text = (
            f"{self.batchnorms_folded} BatchNorms folded, {self.scales_folded} residual scales folded, "
            f"{self.convs_fused} 1x1 convolutions merged into {self.groups_fused}"
        )
        text += f", {self.pools_commuted} pool projections commuted" if self.pools_commuted else ""
        return text + (f", {self.convs_packed} convolutions packed for oneDNN" if self.convs_packed else "")


# -- tracing ------------------------------------------------------------------------------------------------
# -- BatchNorm folding --------------------------------------------------------------------------------------


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A convolution (with bias) equal to ``bn(conv(x))`` for an eval-mode BatchNorm with running statistics."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,
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
    if not (_is_pointwise_conv(conv) and conv.padding in ((0, 0), "valid")):
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


# -- horizontal fusion --------------------------------------------------------------------------------------


def _is_pointwise_conv(module: nn.Module | None) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding in ((0, 0), "valid", "same")
    )


def _pointwise_groups(block: nn.Module, graph: fx.Graph) -> list[list[fx.Node]]:
    """Calls of 1x1 stride-1 convolutions that read the same tensor, grouped; only groups of two or more."""
    groups: dict[tuple, list[fx.Node]] = {}
    for node in graph.nodes:
        conv = module_of(block, node)
        source = only_input(node)
        if not _is_pointwise_conv(conv) or source is None:
            continue
        key = (source, conv.bias is None, conv.weight.dtype, conv.weight.device, conv.in_channels)
        groups.setdefault(key, []).append(node)
    return [nodes for nodes in groups.values() if len(nodes) > 1]


def _new_name(block: nn.Module, stem: str) -> str:
    index = 0
    while hasattr(block, f"{stem}{index}"):
        index += 1
    return f"{stem}{index}"


def _merged_conv(block: nn.Module, convs: list[nn.Conv2d]) -> nn.Conv2d:
    first = convs[0]
    merged = nn.Conv2d(
        first.in_channels, sum(c.out_channels for c in convs), 1, bias=first.bias is not None,
        device=first.weight.device, dtype=first.weight.dtype,
    )
    with torch.no_grad():
        merged.weight.copy_(torch.cat([c.weight for c in convs], 0))
        if merged.bias is not None:
            merged.bias.copy_(torch.cat([c.bias for c in convs], 0))
    merged.train(block.training)
    return merged


def _hoist_relu(block: nn.Module, graph: fx.Graph, merged: fx.Node, slices: list[fx.Node]) -> None:
    """If every slice goes straight into a ReLU, apply one ReLU to the merged output instead."""
    users = [next(iter(s.users)) if len(s.users) == 1 else None for s in slices]
    pairs = list(zip(users, slices, strict=True))
    if not all(u is not None and is_relu(block, u) and only_input(u) is s for u, s in pairs):
        return
    with graph.inserting_after(merged):
        activated = graph.call_function(F.relu, (merged,), {"inplace": True})
    merged.replace_all_uses_with(activated, delete_user_cb=lambda user: user is not activated)
    for user, piece in zip(users, slices, strict=True):
        user.replace_all_uses_with(piece)
        graph.erase_node(user)


def cat_biases(biases: list[torch.Tensor | None]) -> torch.Tensor:
    """``torch.cat`` of convolution biases, typed so that TorchScript accepts ``conv.bias`` (Optional)."""
    present: list[torch.Tensor] = []
    for bias in biases:
        assert bias is not None
        present.append(bias)
    return torch.cat(present, 0)


def _fuse_group(block: nn.Module, graph: fx.Graph, nodes: list[fx.Node], materialize: bool) -> None:
    convs = [block.get_submodule(str(n.target)) for n in nodes]
    source = nodes[0].args[0]
    with graph.inserting_before(nodes[0]):
        if materialize:
            name = _new_name(block, "fused_1x1_")
            block.add_module(name, _merged_conv(block, convs))
            merged = graph.call_module(name, (source,))
        else:
            weight = graph.call_function(torch.cat, ([graph.get_attr(f"{n.target}.weight") for n in nodes], 0))
            bias = None
            if convs[0].bias is not None:
                bias = graph.call_function(cat_biases, ([graph.get_attr(f"{n.target}.bias") for n in nodes],))
            merged = graph.call_function(torch.conv2d, (source, weight, bias))
        slices = []
        offset = 0
        for node, conv in zip(nodes, convs, strict=True):
            piece = graph.call_function(torch.narrow, (merged, 1, offset, conv.out_channels))
            offset += conv.out_channels
            node.replace_all_uses_with(piece)
            slices.append(piece)
    for node in nodes:
        graph.erase_node(node)
    if materialize:
        _hoist_relu(block, graph, merged, slices)




def _unused_convs(block: nn.Module, graph: fx.Graph, targets: list[str]) -> list[str]:
    called = {str(n.target) for n in graph.nodes if n.op in ("call_module", "get_attr")}
    return [t for t in targets if not any(c == t or c.startswith(t + ".") for c in called)]


def _fuse_block(block: nn.Module, materialize: bool, report: FusionReport, opaque: set[int]) -> bool:
    graph = trace_block(block, opaque)
    if graph is None:
        opaque.add(id(block))
        return False
    groups = _pointwise_groups(block, graph)
    if not groups:
        return False
    if materialize:
        drop_identities(block, graph)
    targets = []
    for nodes in groups:
        targets += [str(n.target) for n in nodes]
        _fuse_group(block, graph, nodes, materialize)
        report.groups_fused += 1
        report.convs_fused += len(nodes)
    swap_forward(block, graph)
    if materialize:  # the merged copy holds these weights now: drop the originals
        for target in _unused_convs(block, graph, targets):
            parent, _, name = target.rpartition(".")
            setattr(block.get_submodule(parent) if parent else block, name, nn.Identity())
    return True


def _fuse_tree(module: nn.Module, materialize: bool, report: FusionReport, opaque: set[int] | None = None) -> None:
    """Bottom-up: fuse inside the children first, then the module itself (which finds nothing already fused).

    A module whose forward cannot be traced is called as a whole by its parent's trace.
    """
    opaque = set() if opaque is None else opaque
    for child in module.children():
        _fuse_tree(child, materialize, report, opaque)
    if not is_torch_layer(module):
        _fuse_block(module, materialize, report, opaque)


def fuse_branches(model: nn.Module) -> FusionReport:
    """Run the 1x1 convolutions that read the same block input as one, in place, in training and eval mode.

    Parameters, buffers, the state dict and the module tree are unchanged (the merged filter is concatenated
    from the branches' weights at every call, and gradients flow back to each branch's weight); only the
    blocks' classes are swapped for fused subclasses. :func:`unfuse_branches` undoes it.
    """
    report = FusionReport()
    _fuse_tree(model, materialize=False, report=report)
    return report


def is_fused(module: nn.Module) -> bool:
    """Whether ``module`` (or any module inside it) runs fused branches."""
    return any(hasattr(type(m), "_fused_base") for m in module.modules())


def unfuse_branches(model: nn.Module) -> int:
    """Undo :func:`fuse_branches` in place (not the materialised fusion of an inference copy); returns the count."""
    restored = 0
    for module in model.modules():
        base = getattr(type(module), "_fused_base", None)
        if base is not None:
            if any(name.startswith("fused_1x1_") for name, _ in module.named_children()):
                raise ValueError("an optimize_for_inference copy cannot be unfused; use the original model")
            module.__class__ = base
            restored += 1
    return restored


def optimize_for_inference(
    model: nn.Module,
    *,
    fold: bool = True,
    fuse: bool | None = None,
    project_pools: bool = True,
    channels_last: bool = False,
    onednn: bool = False,
    precision: str | None = None,
    calibration: Any = None,
    compile: bool | None = None,
) -> nn.Module:
    """An eval-mode copy of ``model`` that computes the same outputs faster; the original is not touched.

    ``precision`` (``"fp32"``, ``"bf16"`` or ``"int8"``): CPU inference in that precision with the kernels
    that run fastest on this CPU, falling back to fp32 where the CPU lacks bfloat16 or int8 dot products;
    the other options are then chosen for you, ``calibration`` holds the images int8 observes and
    ``compile`` asks for ``torch.compile`` with freezing (default: for int8 only). The result is an
    :class:`~inception_resnet.inference.precision.InferenceModel` whose ``plan`` says what was chosen; see
    :func:`~inception_resnet.inference.precision.optimize_for_precision`. Without ``precision``, the
    rewrites below are applied on any device:

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
    if precision is not None:
        from .precision import optimize_for_precision

        return optimize_for_precision(model, precision, calibration=calibration, compile=compile)
    if calibration is not None or compile is not None:
        raise ValueError("calibration= and compile= go with precision=: e.g. precision='int8', calibration=images")
    optimized = copy.deepcopy(model).eval()
    if is_fused(optimized):  # fused at run time (fuse_branches): the plain forwards first, then every rewrite
        unfuse_branches(optimized)
    report = FusionReport()
    if fold:
        report.batchnorms_folded = fold_batchnorm(optimized)
        report.scales_folded = fold_residual_scale(optimized)
        report.pools_commuted = commute_pool_projections(optimized) if project_pools else 0
    if fuse if fuse is not None else not onednn:
        _fuse_tree(optimized, materialize=True, report=report)
    optimized.requires_grad_(False)
    if channels_last or onednn:
        optimized = optimized.to(memory_format=torch.channels_last)
    if onednn:
        report.convs_packed = pack_for_cpu(optimized)
    optimized.optimization_report = report
    return optimized
