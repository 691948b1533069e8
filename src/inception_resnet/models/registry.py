"""Model registry: the table of network builders, ``register_model`` and ``list_models``, in the style of timm.

Each network file registers its builders when the :mod:`inception_resnet.models` package is imported (which
happens before this module can be imported), so the table is complete whenever it is read. Building with
weights is :func:`inception_resnet.weights.factory.create_model`, one layer up.
"""

from __future__ import annotations

import fnmatch
import inspect
import typing
from collections.abc import Callable
from typing import Any

from ..checks import Bounds, check_value
from .base import InceptionNet

_BUILDERS: dict[str, Callable[..., InceptionNet]] = {}


def register_model(name: str) -> Callable[[Callable[..., InceptionNet]], Callable[..., InceptionNet]]:
    """Decorator registering a builder ``fn(num_classes, in_chans, drop_rate, **options)`` under ``name``."""

    def wrap(builder: Callable[..., InceptionNet]) -> Callable[..., InceptionNet]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


MAX_CLASSES = 1_000_000  # classifier outputs (ImageNet-21k has 21,843 classes)
# What the options that several networks share accept besides their type (declared once, for every network).
OPTION_BOUNDS: dict[str, Bounds] = {
    "width_multiplier": Bounds(gt=0, le=16),  # 16x the paper's channels is far beyond any memory
    "blocks": Bounds(ge=0, le=100),  # blocks per stage (the paper: at most 20)
}
# The arguments every builder takes, checked as create_model receives them (TrainConfig declares them with these).
COMMON_ARGUMENTS: dict[str, tuple[Any, Bounds]] = {
    "num_classes": (int, Bounds(ge=0, le=MAX_CLASSES)),
    "in_chans": (int, Bounds(ge=1, le=1024)),
    "drop_rate": (float, Bounds(ge=0, lt=1)),
}


def build_model(
    name: str, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2, **options: Any
) -> InceptionNet:
    """A registered network with fresh weights.

    ``options`` are the network's own (``residual_scale``, ``width_multiplier``, ``aux_logits``...); an
    option the network does not have is an error, not silently ignored. Every value is checked here, before
    anything is built (:func:`check_model`).
    """
    check_model(name, options)
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans), ("drop_rate", drop_rate)):
        check_value(key, value, *COMMON_ARGUMENTS[key])
    try:
        return _BUILDERS[name](num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **options)
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and "alloc" not in str(error):
            raise
        given = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "its defaults"
        raise ValueError(
            f"{name} with {given} and {num_classes} classes does not fit in memory "
            f"({str(error).splitlines()[0][:120]}); choose a smaller width_multiplier, fewer "
            "blocks or fewer classes"
        ) from None


def check_model(name: str, options: dict[str, Any] | None = None) -> None:
    """A ValueError for a name that is not registered or an option the network does not have or of a value
    its builder's annotation (and :data:`OPTION_BOUNDS`) does not accept."""
    if name not in _BUILDERS:
        close = [n for n in _BUILDERS if n.split("_")[0] in name or name in n]
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_BUILDERS))}")
    accepted = model_options(name)
    unknown = [k for k in options or {} if k not in accepted]
    if unknown:
        raise ValueError(
            f"{name} has no option {', '.join(repr(k) for k in unknown)}; its options are: {', '.join(accepted)}"
        )
    hints = option_types(name)
    for key, value in (options or {}).items():
        check_value(key, value, hints.get(key, Any), OPTION_BOUNDS.get(key, Bounds(ge=0)))


def option_types(name: str) -> dict[str, Any]:
    """The type annotations of a registered builder's options (resolved)."""
    builder = _BUILDERS[name]
    target = builder.__init__ if inspect.isclass(builder) else builder
    try:
        return typing.get_type_hints(target)
    except (NameError, TypeError):
        return {}


def model_options(name: str) -> list[str]:
    """The options (keyword arguments besides classes, channels and dropout) a registered model takes."""
    parameters = inspect.signature(_BUILDERS[name]).parameters
    common = {"num_classes", "in_chans", "drop_rate", "self", "metadata"}
    return [p for p in parameters if p not in common and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]


def model_option_defaults(name: str) -> dict[str, Any]:
    """Each option of a registered model with the value it takes when not given."""
    check_model(name)
    parameters = inspect.signature(_BUILDERS[name]).parameters
    return {option: parameters[option].default for option in model_options(name)}
