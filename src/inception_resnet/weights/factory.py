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


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
    drop_rate: float = 0.2,
    pretrained: Any = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    **options: Any,
) -> InceptionNet:
    """Build a registered network.

    ``pretrained``, as in timm: ``True`` loads the model's default published weights (a hub tag, see
    :func:`inception_resnet.weights.hub.default_tag`), ``False`` or ``None`` none; it also takes a weights
    file, a folder, a hub tag or a state dict (see :func:`inception_resnet.weights.load_weights`).
    ``num_classes`` defaults to 1000, and then the weights must have as many classes (1001 with TF-slim's
    background class is reduced to 1000). Given explicitly and different from the weights', it works as in
    timm: the body is loaded, every classifier (main and auxiliary) is left newly initialised for
    ``num_classes`` (dropped for 0), and a warning names them.
    ``options`` are the network's own (``residual_scale``, ``width_multiplier``, ``aux_logits``...); an
    option the network does not have is an error, not silently ignored.
    """
    check_model(name, options)
    source = pretrained_source(name, pretrained)
    if source is not None:
        fetch_weights(source, name)  # a missing file or an unreachable hub fails before the model is built
    new_heads = num_classes is not None
    model = build_model(name, num_classes=1000 if num_classes is None else num_classes, in_chans=in_chans,
                        drop_rate=drop_rate, **options)
    if source is not None:
        heads = load_weights_report(model, source, new_heads)[1]
        if heads:
            action = f"left newly initialised for num_classes={model.num_classes}" if model.num_classes else "dropped"
            warnings.warn(f"{name}: the weights' classifiers do not fit; {', '.join(heads)} {action}",
                          stacklevel=2)
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
