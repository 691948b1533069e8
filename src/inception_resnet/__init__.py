"""inception-resnet: the Inception family of Szegedy et al. 2016, exact to the reference, in PyTorch."""

from .models.base import InceptionNet, InceptionOutput
from .models.metadata import FeatureInfo, ModelMetadata
from .models.registry import list_models, register_model
from .version import __version__
from .weights.factory import create_model

__all__ = [
    "FeatureInfo",
    "InceptionNet",
    "InceptionOutput",
    "ModelMetadata",
    "create_model",
    "list_models",
    "register_model",
    "__version__",
]
