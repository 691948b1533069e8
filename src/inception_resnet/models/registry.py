"""Model registry: the table of network builders, ``register_model`` and ``list_models``, in the style of timm.

Each network file registers its builders when the :mod:`inception_resnet.models` package is imported (which
happens before this module can be imported), so the table is complete whenever it is read. Building with
weights is :func:`inception_resnet.weights.factory.create_model`, one layer up.
"""

from __future__ import annotations

import fnmatch
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

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


def build_model(
    name: str, *, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2, **options: Any
) -> InceptionNet:
    """A registered network with fresh weights.

    ``options`` are the network's own (``residual_scale``, ``width_multiplier``, ``aux_logits``...); an
    option the network does not have is an error, not silently ignored.
    """
    check_model(name, options)
    check_count("num_classes", num_classes, minimum=0)
    check_count("in_chans", in_chans, minimum=1)
    check_number("drop_rate", drop_rate)
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must lie in [0, 1), got {drop_rate}")
    return _BUILDERS[name](num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **options)


def check_model(name: str, options: dict[str, Any] | None = None) -> None:
    """A ValueError for a name that is not registered or an option the network does not have."""
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
        check_option(key, value, hints.get(key))


def option_types(name: str) -> dict[str, Any]:
    """The type annotations of a registered builder's options (resolved)."""
    builder = _BUILDERS[name]
    target = builder.__init__ if inspect.isclass(builder) else builder
    try:
        return typing.get_type_hints(target)
    except (NameError, TypeError):
        return {}


def check_count(name: str, value: Any, minimum: int = 0) -> None:
    """A ValueError unless ``value`` is a whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def check_number(name: str, value: Any) -> None:
    """A ValueError unless ``value`` is a finite real number (not a bool, not NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")


def is_sequence_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return origin in (tuple, list, Sequence, typing.Sequence)


def check_option(key: str, value: Any, annotation: Any) -> None:
    """Check a model option against its builder's annotation: ``float`` (finite number), ``int`` (whole number
    >= 0), ``bool`` (true or false), tuples/sequences of those (element by element), unions (any member fits).
    Options of other types are left to the builder."""
    if annotation is None:
        return
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        if value is None and len(members) < len(typing.get_args(annotation)):
            return
        listed = isinstance(value, Sequence) and not isinstance(value, (str, bytes))
        # the member of the value's kind (a list or a single value) says what is wrong with it
        members.sort(key=lambda m: is_sequence_type(m) != listed)
        first_error = None
        for member in members:
            try:
                check_option(key, value, member)
                return
            except ValueError as error:
                first_error = first_error or error
        raise first_error
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
    elif annotation is float:
        check_number(key, value)
    elif annotation is int:
        check_count(key, value, minimum=0)
    elif origin in (tuple, Sequence, list, typing.Sequence) or annotation in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ValueError(f"{key} must be a list, got {value!r}")
        members = typing.get_args(annotation)
        if origin is tuple and members and members[-1] is not Ellipsis and len(members) != len(value):
            raise ValueError(f"{key} must have {len(members)} entries, got {len(value)}: {list(value)!r}")
        for index, item in enumerate(value):
            member = members[0] if len(members) == 1 or (members and members[-1] is Ellipsis) else (
                members[index] if index < len(members) else None)
            check_option(f"{key}[{index}]", item, member)


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
