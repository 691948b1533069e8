"""Model registry: ``create_model(name, ...)`` and ``list_models()``, in the style of timm."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from .network import InceptionNet

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
    _import_models()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def create_model(
    name: str,
    *,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float = 0.2,
    pretrained: Any = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **options: Any,
) -> InceptionNet:
    """Build a registered network.

    ``pretrained`` takes a state dict or a weights file (see :func:`inception_resnet.weights.load_weights`).
    ``options`` are the network's own (``residual_scale``, ``width_multiplier``, ``aux_logits``...); an
    option the network does not have is an error, not silently ignored.
    """
    _import_models()
    if name not in _BUILDERS:
        close = [n for n in _BUILDERS if n.split("_")[0] in name or name in n]
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_BUILDERS))}")
    try:
        model = _BUILDERS[name](num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **options)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise ValueError(f"{name}: {err}".replace("__init__() ", "")) from None
        raise
    if pretrained is not None:
        from .weights import load_weights

        load_weights(model, pretrained)
    if features_only:
        model.set_features_only(tuple(out_indices))
    return model


def _import_models() -> None:
    from . import models  # noqa: F401  (registers the builders)
