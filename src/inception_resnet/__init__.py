"""inception-resnet: the Inception family of Szegedy et al. 2016, exact to the reference, in PyTorch."""

from .network import FeatureInfo, InceptionNet, InceptionOutput, ModelMetadata
from .registry import create_model, list_models, register_model

__version__ = "0.1.0"
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
