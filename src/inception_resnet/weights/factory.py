"""``create_model(name, ...)``: a registered network, with weights when asked, in the style of timm's factory.

It sits in the weights layer because it loads weights; the table of networks is
:mod:`inception_resnet.models.registry`.
"""

from __future__ import annotations

from typing import Any

from ..models.base import InceptionNet
from ..models.registry import build_model
from .loading import load_weights


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
    model = build_model(name, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **options)
    if pretrained is not None:
        load_weights(model, pretrained)
    if features_only:
        model.set_features_only(tuple(out_indices))
    return model
