"""Horizontal fusion: the 1x1 convolutions of a block that read the same tensor run as one convolution.

In every block whose forward applies two or more 1x1 stride-1 convolutions to the same tensor (the first layer
of most Inception branches), :func:`fuse_branches` makes them one convolution over the concatenated filters,
each branch continuing on its channel slice: the block input is read once and the matrix product is wider.
In training mode the weights are concatenated at run time, so the parameters, the state dict, the optimizer
and checkpoints are unchanged; BatchNorm still runs per branch on its slice, so its running statistics are
updated exactly as before. :func:`fuse_tree` with ``materialize=True`` (used by
:func:`~inception_resnet.inference.rewrites.rewrite_for_inference` on an eval-mode copy) stores the merged
filters once and applies the ReLU of all merged heads in one pass.

Fusion works on any block, not only on :class:`~inception_resnet.models.layers.Mixed`: each block's forward is
traced with ``torch.fx`` and the block's class is swapped for a subclass whose ``forward`` is the rewritten
graph. Module tree, names and ``isinstance`` checks are unchanged, and TorchScript, ``torch.compile`` and
``copy.deepcopy`` keep working; pickling a whole fused model (``torch.save(model)``) does not, because the
generated classes cannot be imported: save the state dict instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from .tracing import drop_identities, is_relu, is_torch_layer, module_of, only_input, swap_forward, trace_block

__all__ = ["FusionReport", "fuse_branches", "fuse_tree", "is_fused", "is_pointwise_conv", "unfuse_branches"]


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


# -- horizontal fusion --------------------------------------------------------------------------------------


def is_pointwise_conv(module: nn.Module | None) -> bool:
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
        if not is_pointwise_conv(conv) or source is None:
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
        first.in_channels,
        sum(c.out_channels for c in convs),
        1,
        bias=first.bias is not None,
        device=first.weight.device,
        dtype=first.weight.dtype,
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


def fuse_tree(module: nn.Module, materialize: bool, report: FusionReport, opaque: set[int] | None = None) -> None:
    """Bottom-up: fuse inside the children first, then the module itself (which finds nothing already fused).

    A module whose forward cannot be traced is called as a whole by its parent's trace.
    """
    opaque = set() if opaque is None else opaque
    for child in module.children():
        fuse_tree(child, materialize, report, opaque)
    if not is_torch_layer(module):
        _fuse_block(module, materialize, report, opaque)


def fuse_branches(model: nn.Module) -> FusionReport:
    """Run the 1x1 convolutions that read the same block input as one, in place, in training and eval mode.

    Parameters, buffers, the state dict and the module tree are unchanged (the merged filter is concatenated
    from the branches' weights at every call, and gradients flow back to each branch's weight); only the
    blocks' classes are swapped for fused subclasses. :func:`unfuse_branches` undoes it.
    """
    report = FusionReport()
    fuse_tree(model, materialize=False, report=report)
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
