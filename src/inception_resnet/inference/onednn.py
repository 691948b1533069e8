"""CPU inference with oneDNN: convolutions with prepacked weights and fused ReLU / residual add + ReLU.

Eager PyTorch hands every CPU convolution to oneDNN with plain-layout weights, which oneDNN reorders into
its blocked layout at every call, and runs the ReLU (and the Inception-ResNet residual add) as separate
passes over memory; at batch 1 with a single thread it even takes a slower im2col path for 1x1
convolutions. :func:`pack_for_cpu` rewrites an eval-mode model (best after
:func:`~inception_resnet.inference.rewrites.rewrite_for_inference`, which folds the BatchNorms into the convolutions)
so that each convolution runs through ``torch.ops.mkldnn._convolution_pointwise`` with its weights reordered
once, and with the ReLU that follows it, or the residual add and the ReLU after that, as oneDNN post-ops.
It is the rewrite inductor's CPU ``freezing`` performs, done once in eager code.

Every rewrite is exact up to floating-point rounding. The packed weights are opaque oneDNN tensors: such a
model runs inference on the CPU only, in the dtype of its weights (fp32, or bfloat16 on CPUs with native
bfloat16 instructions: see :mod:`inception_resnet.inference.precision`), and cannot be deep-copied, pickled
or moved to another device.
It scripts with TorchScript. Keep the original model for everything else.
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from .tracing import drop_identities, is_relu, is_torch_layer, module_of, swap_forward, trace_block

__all__ = ["OneDNNConv2d", "OneDNNConvAdd", "is_packable", "pack_for_cpu"]


def _explicit_padding(conv: nn.Conv2d) -> list[int] | None:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return [0, 0]
        if all(k % 2 == 1 for k in conv.kernel_size) and conv.stride == (1, 1) and conv.dilation == (1, 1):
            return [k // 2 for k in conv.kernel_size]
        return None
    return list(conv.padding)


def is_packable(conv: nn.Module) -> bool:
    """Whether ``conv`` is a 2-d fp32 or bf16 CPU convolution oneDNN can run with prepacked weights."""
    return (
        type(conv) is nn.Conv2d
        and conv.padding_mode == "zeros"
        and conv.weight.dtype in (torch.float32, torch.bfloat16)
        and conv.weight.device.type == "cpu"
        and _explicit_padding(conv) is not None
    )


class OneDNNConv2d(nn.Module):
    """An inference-only convolution with prepacked oneDNN weights and an optional fused ReLU.

    Made from a ``Conv2d`` by :func:`pack_for_cpu`; the packed weight is an opaque oneDNN tensor held as a
    plain attribute (it is not in the state dict). Outputs are channels_last.
    """

    _trace_as_leaf = True

    def __init__(self, conv: nn.Conv2d, relu: bool = False, input_size: list[int] | None = None) -> None:
        super().__init__()
        padding = _explicit_padding(conv)
        if not is_packable(conv) or padding is None:
            raise ValueError("OneDNNConv2d needs an fp32 or bf16 CPU Conv2d with zero padding")
        self.padding = padding
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.in_channels = conv.in_channels
        self.out_channels = conv.out_channels
        self.kernel_size = conv.kernel_size
        self.attr = "relu" if relu else "none"
        with torch.no_grad():
            self.packed_weight = torch.ops.mkldnn._reorder_convolution_weight(
                conv.weight.detach(), self.padding, self.stride, self.dilation, self.groups, input_size
            )
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            self.packed_weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            self.attr,
            [],
            "",
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, post_op={self.attr}"
        )


class OneDNNConvAdd(OneDNNConv2d):
    """``conv(x) + other``, then an optional ReLU, in one oneDNN call (the Inception-ResNet residual)."""

    def __init__(self, conv: nn.Conv2d, relu: bool = False, input_size: list[int] | None = None) -> None:
        super().__init__(conv, relu=False, input_size=input_size)
        self.unary = "relu" if relu else None

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.ops.mkldnn._convolution_pointwise(  # the .binary overload, chosen by the arguments
            x,
            other,
            self.packed_weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "add",
            None,
            self.unary,
            [],
            "",
        )


_ADDS = (operator.add, torch.add)


def _single_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _relu_after(block: nn.Module, node: fx.Node) -> fx.Node | None:
    user = _single_user(node)
    if user is not None and is_relu(block, user) and user.args[:1] == (node,):
        return user
    return None


def _residual_add(node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """``(add, other)`` when the only use of ``node`` is ``other + node`` or ``node + other`` (same shapes)."""
    add = _single_user(node)
    if add is None or add.op != "call_function" or add.target not in _ADDS or add.kwargs or len(add.args) != 2:
        return None
    a, b = add.args
    other = b if a is node else a
    if not isinstance(other, fx.Node) or other is node:
        return None
    return add, other


def _set_submodule(block: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, name, module)


def _pack_block(block: nn.Module, opaque: set[int], shapes: dict[int, list[int]]) -> int:
    """Rewrite the convolution calls of ``block``'s own forward; returns how many were packed."""
    graph = trace_block(block, opaque)
    if graph is None:  # its parent's trace calls it as a whole
        opaque.add(id(block))
        return 0
    if not any(isinstance(m, nn.Conv2d) for m in block.modules()):
        return 0
    drop_identities(block, graph)
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[str(node.target)] = calls.get(str(node.target), 0) + 1
    packed = changed = 0
    for node in list(graph.nodes):
        conv = module_of(block, node)
        redundant = _relu_after(block, node) if type(conv) is OneDNNConv2d and conv.attr == "relu" else None
        if redundant is not None:  # a unit packed on its own whose ReLU this block's generated code calls too
            redundant.replace_all_uses_with(node)
            graph.erase_node(redundant)
            changed += 1
        if not (isinstance(conv, nn.Conv2d) and is_packable(conv) and calls[str(node.target)] == 1):
            continue
        relu = _relu_after(block, node)
        residual = _residual_add(node) if relu is None else None
        size = shapes.get(id(conv))
        if relu is not None:
            _set_submodule(block, str(node.target), OneDNNConv2d(conv, relu=True, input_size=size))
            relu.replace_all_uses_with(node)
            graph.erase_node(relu)
        elif residual is not None:
            add, other = residual
            after = _relu_after(block, add)
            _set_submodule(block, str(node.target), OneDNNConvAdd(conv, after is not None, size))
            with graph.inserting_before(add):
                fused = graph.call_module(str(node.target), (node.args[0], other))
            last = after if after is not None else add
            last.replace_all_uses_with(fused)
            for dead in ([after] if after is not None else []) + [add, node]:
                graph.erase_node(dead)
        else:
            _set_submodule(block, str(node.target), OneDNNConv2d(conv, input_size=size))
        packed += 1
    if packed or changed:
        swap_forward(block, graph, prefix="OneDNN", what="oneDNN convolutions with fused post-ops")
    return packed


def _pack_tree(module: nn.Module, opaque: set[int], shapes: dict[int, list[int]]) -> int:
    packed = sum(_pack_tree(child, opaque, shapes) for child in list(module.children()))
    if not is_torch_layer(module):
        packed += _pack_block(module, opaque, shapes)
    return packed


def _input_shapes(model: nn.Module, example: torch.Tensor) -> dict[int, list[int]]:
    """The input shape of every convolution on ``example`` (oneDNN picks the weight layout for it)."""
    shapes: dict[int, list[int]] = {}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        shapes[id(module)] = list(inputs[0].shape)

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def pack_for_cpu(model: nn.Module, example_input: torch.Tensor | None = None) -> int:
    """Rewrite an eval-mode fp32 or bf16 CPU model in place for oneDNN (see the module docstring); returns the count.

    Convolutions whose output feeds a ReLU get it fused; a convolution whose output is only added to
    another tensor (``x + conv(h)``) gets the add, and the ReLU after it, fused. Other convolutions are
    packed without a post-op. ``example_input`` (default: one image at the model's default size) is run
    once so that oneDNN lays the weights out for the shapes they will see; other shapes work too. Feed
    channels_last inputs for the best speed.
    """
    if model.training:
        raise ValueError("pack_for_cpu needs an eval-mode model: call model.eval() first")
    if example_input is None:
        size = int(getattr(model, "default_size", 224))
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        example_input = torch.zeros(1, int(getattr(model, "in_chans", 3)), size, size, dtype=dtype)
    with torch.no_grad():
        shapes = _input_shapes(model, example_input.contiguous(memory_format=torch.channels_last))
        count = _pack_tree(model, set(), shapes)
    model.requires_grad_(False)
    return count
