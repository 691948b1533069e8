"""The networks, their building blocks, the registry and the cost counters.

Importing this package registers every network with :mod:`inception_resnet.models.registry`.

The lowest layer above ``environment``/``markdown``/``version``: nothing here imports weights, data or
training. Where a new network or head layout goes: docs/architecture.md.
"""

from . import (  # noqa: F401  (registers the builders)
    bn_inception,
    googlenet,
    inception_resnet_v1,
    inception_resnet_v1_facenet,
    inception_resnet_v2,
    inception_v3,
    inception_v4,
)
from .base import InceptionNet, InceptionOutput
from .metadata import FeatureInfo, ModelMetadata
from .registry import build_model, list_models, model_options, register_model

__all__ = [
    "FeatureInfo",
    "InceptionNet",
    "InceptionOutput",
    "ModelMetadata",
    "build_model",
    "list_models",
    "model_options",
    "register_model",
]
