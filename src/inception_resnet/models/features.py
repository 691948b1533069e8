"""The feature taps of a network, as timm's feature contract has them: which levels ``indices`` names, the
maps at those levels (the body run with hooks, stopped early at the deepest), and the body cut after it.

:class:`~inception_resnet.models.base.InceptionNet` exposes these as ``forward_intermediates``,
``prune_intermediate_layers`` and ``body_module_names``; each network lists its levels in ``feature_info``
(:class:`~inception_resnet.models.metadata.FeatureInfo`). See docs/architecture.md for where this sits.
"""

from __future__ import annotations

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by the hook of the deepest tap to end a ``stop_early`` pass (caught in :func:`intermediates`)."""


def feature_take_indices(
    count: int, indices: int | list[int] | tuple[int, ...] | None, name: str = "model"
) -> list[int]:
    """timm's reading of ``indices``: None all ``count`` taps, an int the last n, a sequence those (negatives
    from the end); a ValueError when one is out of range."""
    if indices is None:
        return list(range(count))
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"{name}: the last-n index {indices} must lie in 1..{count}")
        return list(range(count - indices, count))
    taken = []
    for i in indices:
        index = count + i if i < 0 else i
        if not 0 <= index < count:
            raise ValueError(f"{name}: feature index {i} is out of range (0..{count - 1}, or negative from the end)")
        taken.append(index)
    if not taken:
        raise ValueError(f"{name}: indices must name at least one feature level")
    return taken


def intermediates(
    model: nn.Module, x: torch.Tensor, take: list[int], stop_early: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(final map, the maps at the levels ``take``, shallow to deep) of ``model``'s body on a checked ``x``.

    The final map is where the pass stopped: the deepest level asked for when ``stop_early``.
    """
    deepest = max(take)
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for index in sorted(set(take)):

        def hook(_module, _inputs, output, index=index, stop=stop_early and index == deepest):
            captured[index] = output
            if stop:
                raise _StopForward

        handles.append(model.get_submodule(model.feature_info[index].module).register_forward_hook(hook))
    try:
        final = model.forward_body(x)[0]
    except _StopForward:
        final = captured[deepest]
    finally:
        for handle in handles:
            handle.remove()
    return final, [captured[i] for i in sorted(set(take))]


def cut_body_after(model: nn.Module, deepest: int) -> None:
    """Replace every stage of ``model``'s body after the feature level ``deepest`` with ``nn.Identity``."""
    body = body_module_names(model)
    for name in body[body.index(model.feature_info[deepest].module) + 1 :]:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())


def body_module_names(model: nn.Module) -> list[str]:
    """The body's modules in the order ``forward_body`` runs them, up to the last feature level.

    The children in the order they were built (each network builds them in forward order), without the
    head's; a container that holds a feature tap (``features.9``) is listed by its children.
    """
    taps = [info.module for info in model.feature_info]
    head = set(model._head_module_names())
    names: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for child_name, child in module.named_children():
            name = prefix + child_name
            if name in head:
                continue
            if any(tap.startswith(name + ".") for tap in taps):
                visit(name + ".", child)
            else:
                names.append(name)

    visit("", model)
    return names[: names.index(taps[-1]) + 1]
