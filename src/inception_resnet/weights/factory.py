"""``create_model(name, ...)``: a registered network, with weights when asked, in the style of timm's factory.

It sits in the weights layer because it loads weights; the table of networks is
:mod:`inception_resnet.models.registry`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from ..models.base import InceptionNet
from ..models.registry import build_model, check_model
from .loading import fetch_weights, load_weights_report
from .records import build_arguments, read_model_config


def create_model(
    name: str | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    drop_rate: float = 0.2,
    pretrained: Any = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **options: Any,
) -> InceptionNet:
    """Build a registered network.

    ``pretrained``, as in timm: ``True`` loads the model's default published weights (a hub tag, see
    :func:`inception_resnet.weights.hub.default_tag`), ``False`` or ``None`` none; it also takes a weights
    file, a folder, a training run directory, a hub tag or a state dict (see
    :func:`inception_resnet.weights.load_weights`).
    Weights that record their model (our checkpoints, a run's ``model/`` folder, our safetensors files, a
    folder with timm's ``config.json``: :mod:`.records`) give the name, options, ``in_chans``, classes and
    preprocessing: ``create_model(pretrained="runs/ft")`` is enough; a name or ``in_chans`` that contradicts
    them is a ValueError, an option given explicitly wins (as timm's keywords over a config's ``model_args``)
    and the weights must then fit it. Otherwise ``name`` is required.
    ``num_classes`` defaults to the weights' (1000 for weights that do not say; TF-slim's 1001 with the
    background class is reduced to 1000). Given explicitly and different from the weights', it works as in
    timm: the body is loaded, every classifier (main and auxiliary) is left newly initialised for
    ``num_classes`` (dropped for 0), and a warning names them.
    ``options`` are the network's own (``residual_scale``, ``width_multiplier``, ``aux_logits``...); an
    option the network does not have is an error, not silently ignored.
    What loading found is recorded on the model: ``model.load_notes`` (adaptations, the source read) and
    ``model.new_classifiers`` (the classifiers left new because the weights' did not fit ``num_classes``).
    """
    source = pretrained_source(name, pretrained)
    config = read_model_config(source) if source is not None else None
    name, default_classes, in_chans, options = from_config(name, config, num_classes, in_chans, options, source)
    check_model(name, options)
    if source is not None:
        fetch_weights(source, name)  # a missing file or an unreachable hub fails before the model is built
    model = build_model(
        name,
        num_classes=default_classes if num_classes is None else num_classes,
        in_chans=in_chans,
        drop_rate=drop_rate,
        **options,
    )
    model.set_metadata(extra={**model.metadata.extra, "options": dict(options)})
    notes: list[str] = []
    heads: list[str] = []
    if source is not None:
        # a feature extractor needs no classifier: weights without one (timm's features_only) load as well
        notes, heads = load_weights_report(model, source, num_classes is not None or features_only)
        if heads and not features_only:
            action = f"left newly initialised for num_classes={model.num_classes}" if model.num_classes else "dropped"
            warnings.warn(f"{name}: the weights' classifiers do not fit; {', '.join(heads)} {action}", stacklevel=2)
    model.load_notes = notes
    model.new_classifiers = heads
    if features_only:
        model.set_features_only(tuple(out_indices))
    return model


def from_config(
    name: str | None,
    config: Mapping[str, Any] | None,
    num_classes: int | None,
    in_chans: int | None,
    options: dict[str, Any],
    source: Any,
) -> tuple[str, int, int, dict[str, Any]]:
    """``(name, num_classes when not given, in_chans, options)``: the arguments merged with what the weights
    record; a ValueError for an argument that contradicts them."""
    if config is None:
        if name is None:
            raise ValueError(
                f"give the model name: the weights {source!r} do not record which model they are for"
                if source is not None
                else "give the model name (see list_models())"
            )
        return name, 1000, 3 if in_chans is None else in_chans, dict(options)
    recorded, kwargs = build_arguments(config)
    where = f"the weights {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else "the weights"
    if name is not None and name != recorded:
        raise ValueError(
            f"{where} are for {recorded}, not {name}; leave out the model name (or --model) to "
            f"build {recorded}, or pass weights of {name}"
        )
    if in_chans is not None and in_chans != kwargs["in_chans"]:
        raise ValueError(
            f"{where} take {kwargs['in_chans']}-channel images, not in_chans={in_chans}; leave out "
            "in_chans (--in-chans)"
        )
    # an option given explicitly wins, as timm's keywords over a config's model_args (training with aux_logits
    # from weights that have the head, a record without the option); weights that cannot fit it fail to load
    merged = {**{k: v for k, v in kwargs.items() if k not in ("num_classes", "in_chans")}, **options}
    return recorded, kwargs["num_classes"], kwargs["in_chans"], merged


def option_conflicts(config: Mapping[str, Any] | None, options: Mapping[str, Any]) -> list[str]:
    """``KEY=given (weights: recorded)`` for each option that differs from the one the weights record."""
    recorded = build_arguments(config)[1] if config else {}
    conflicts = []
    for key, value in options.items():
        if key in recorded and key not in ("num_classes", "in_chans") and _differs(recorded[key], value):
            conflicts.append(f"{key}={value!r} (the weights: {recorded[key]!r})")
    return conflicts


def _differs(recorded: Any, given: Any) -> bool:
    if isinstance(recorded, (list, tuple)) and isinstance(given, (list, tuple)):
        return list(recorded) != list(given)
    return recorded != given


def pretrained_source(name: str | None, pretrained: Any) -> Any:
    """What ``create_model(name, pretrained=...)`` loads: None, the default tag for ``True``, or the source given."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        from .hub import default_tag

        if name is None:
            raise ValueError("pretrained=True loads a model's default weights: give the model name")
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
