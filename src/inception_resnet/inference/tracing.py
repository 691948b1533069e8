"""Tracing blocks with torch.fx, and the graph helpers the rewrites share.

:mod:`inception_resnet.inference.rewrites` (folding), :mod:`inception_resnet.inference.fusion` and
:mod:`inception_resnet.inference.onednn` (the oneDNN path) trace one block at a time, edit its graph, and swap
the block's class for one whose ``forward`` is the edited graph (:func:`swap_forward`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

_FUSED_CLASSES: dict[tuple[type, str], type] = {}


class BlockTracer(fx.Tracer):
    """Traces into our modules and ``nn.Sequential``; stops at torch.nn layers and at the ``opaque`` modules."""

    def __init__(self, opaque: set[int] | None = None) -> None:
        super().__init__()
        self.opaque = opaque or set()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if id(m) in self.opaque or getattr(m, "_trace_as_leaf", False):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace_block(module: nn.Module, opaque: set[int] | None = None) -> fx.Graph | None:
    """The forward graph of ``module``, or None when its forward cannot be traced symbolically.

    ``opaque``: ids of modules called as a whole (those that could not be traced themselves).
    """
    try:
        return BlockTracer(opaque).trace(module)
    except Exception:  # noqa: BLE001 - data-dependent control flow (input checks, shape tests): not a block
        return None


def is_torch_layer(module: nn.Module) -> bool:
    if getattr(module, "_trace_as_leaf", False):
        return True
    return type(module).__module__.startswith("torch.nn") and not isinstance(module, nn.Sequential)


def module_of(block: nn.Module, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    return block.get_submodule(str(node.target))


def only_input(node: fx.Node) -> fx.Node | None:
    if len(node.args) != 1 or node.kwargs or not isinstance(node.args[0], fx.Node):
        return None
    return node.args[0]


def is_relu(block: nn.Module, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(block.get_submodule(str(node.target)), nn.ReLU)
    return node.op == "call_function" and node.target in (F.relu, torch.relu, torch.relu_)


def drop_identities(block: nn.Module, graph: fx.Graph) -> None:
    for node in list(graph.nodes):
        if isinstance(module_of(block, node), nn.Identity) and only_input(node) is not None:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


def swap_forward(block: nn.Module, graph: fx.Graph, prefix: str = "Fused", what: str = "fused 1x1 heads") -> None:
    """Give ``block`` a generated subclass of its class whose forward is ``graph``.

    Classes are shared by blocks with equal code; ``_fused_base`` names the hand-written class underneath.
    """
    graph.lint()
    for node in graph.nodes:  # unannotated code: TorchScript then takes Tensors, and cannot resolve FX's aliases
        node.type = None
    generated = fx.GraphModule(block, graph)
    base = type(block)
    key = (base, generated.code)
    cls = _FUSED_CLASSES.get(key)
    if cls is None:
        original = getattr(base, "_fused_base", base)
        cls = type(
            f"{prefix}{base.__name__}",
            (base,),
            {
                "forward": type(generated).forward,
                "__doc__": f"{original.__name__} with a generated forward ({what}; inception_resnet.inference).",
                "__module__": __name__,
                "_fused_base": original,
                "_fused_code": generated.code,
            },
        )
        _FUSED_CLASSES[key] = cls
    block.__class__ = cls
