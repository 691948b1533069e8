"""Model registry: ``create_model(name, ...)`` and ``list_models()``, in the style of timm."""

from __future__ import annotations

import fnmatch
import inspect
import os
from collections.abc import Callable, Mapping
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

    ``pretrained``, as in timm: ``True`` loads the model's default published weights (a hub tag, see
    :func:`inception_resnet.hub.default_tag`), ``False`` or ``None`` none; it also takes a weights file, a
    folder, a hub tag or a state dict (see :func:`inception_resnet.weights.load_weights`).
    ``options`` are the network's own (``residual_scale``, ``width_multiplier``, ``aux_logits``...); an
    option the network does not have is an error, not silently ignored.
    """
    _import_models()
    if name not in _BUILDERS:
        close = [n for n in _BUILDERS if n.split("_")[0] in name or name in n]
        hint = f" Did you mean one of {close}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_BUILDERS))}")
    source = pretrained_source(name, pretrained)
    builder = _BUILDERS[name]
    accepted = model_options(name)
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ValueError(
            f"{name} has no option {', '.join(repr(k) for k in unknown)}; its options are: {', '.join(accepted)}"
        )
    if source is not None:
        from .weights import fetch_weights

        fetch_weights(source, name)  # a missing file or an unreachable hub fails before the model is built
    model = builder(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **options)
    if source is not None:
        from .weights import load_weights

        load_weights(model, source)
    if features_only:
        model.set_features_only(tuple(out_indices))
    return model


def pretrained_source(name: str, pretrained: Any) -> Any:
    """What ``create_model(name, pretrained=...)`` loads: None, the default tag for ``True``, or the source given."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        from .hub import default_tag

        return default_tag(name)
    if isinstance(pretrained, (str, os.PathLike)):
        if not os.fspath(pretrained).strip():
            raise ValueError("pretrained is an empty string; pass True, False, a weights file or a hub tag")
        return pretrained
    if isinstance(pretrained, Mapping):
        return pretrained
    raise TypeError(
        f"pretrained must be True (the default published weights), False or None (random weights), a weights "
        f"file or folder, a hub tag such as 'timm/inception_v4.tf_in1k', or a state dict; got "
        f"{type(pretrained).__name__} {pretrained!r:.60}"
    )


def model_option_defaults(name: str) -> dict[str, Any]:
    """Each option of a registered model with the value it takes when not given."""
    _import_models()
    parameters = inspect.signature(_BUILDERS[name]).parameters
    return {option: parameters[option].default for option in model_options(name)}


def model_options(name: str) -> list[str]:
    """The options (keyword arguments besides classes, channels and dropout) a registered model takes."""
    _import_models()
    parameters = inspect.signature(_BUILDERS[name]).parameters
    common = {"num_classes", "in_chans", "drop_rate", "self", "metadata"}
    return [p for p in parameters if p not in common and parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]


def _import_models() -> None:
    from . import models  # noqa: F401  (registers the builders)
