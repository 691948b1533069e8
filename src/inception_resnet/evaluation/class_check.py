"""Whether a model's outputs fit a dataset's classes: in number always, in names and order where the weights
recorded the classes they were trained on (our training checkpoints); a ValueError (or a warning) saying
what differs and what to do. Used by :mod:`.evaluate` and :mod:`.predict`; see docs/architecture.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn

from .forward import label_offset, model_name


def trained_classes(model: nn.Module) -> list[str] | None:
    """The class names the model's weights were trained on, when the weights recorded them (our checkpoints)."""
    metadata = getattr(model, "metadata", None)
    names = getattr(metadata, "extra", {}).get("classes") if metadata is not None else None
    return list(names) if isinstance(names, (list, tuple)) and names else None


def check_classes(model: nn.Module, classes: Sequence[str] | None, *, check_names: bool = True) -> None:
    """A clear error when the model's outputs and the dataset's classes disagree.

    In number always; in names (and order) when the weights recorded the classes they were trained on: a
    mismatch raises a ValueError, or only warns with ``check_names=False``.
    """
    outputs = getattr(model, "num_classes", None)
    if classes is None or not isinstance(outputs, int) or outputs <= 0:
        return
    if outputs - label_offset(model) != len(classes):
        raise ValueError(
            f"{model_name(model)} has {outputs} outputs (label offset {label_offset(model)}) but the data has "
            f"{len(classes)} classes; use weights trained on these classes, or build the model with "
            f"num_classes={len(classes)}"
        )
    trained = trained_classes(model)
    if trained is None or trained == list(classes):
        return
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(trained, classes, strict=False)) if a != b]
    shown = ", ".join(f"#{i}: {a!r} vs {b!r}" for i, a, b in differ[:5]) + (" ..." if len(differ) > 5 else "")
    message = (
        f"the weights of {model_name(model)} were trained on classes {shorten(trained)} but the data's classes are "
        f"{shorten(list(classes))} ({len(differ)} of {len(classes)} differ: {shown}); the numbers would compare "
        "the wrong labels"
    )
    if check_names:
        raise ValueError(
            message + ". Use data with the same class folders, or pass --ignore-class-names "
            "(check_class_names=False) if the labels correspond anyway"
        )
    warnings.warn(message, stacklevel=3)


def shorten(names: Sequence[str], count: int = 6) -> str:
    """``[a, b, c, ...]`` with at most ``count`` names."""
    shown = ", ".join(names[:count]) + (", ..." if len(names) > count else "")
    return f"[{shown}]"
