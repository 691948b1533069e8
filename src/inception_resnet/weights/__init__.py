"""Weights: loading them in the layouts people have, the hub tags, converters, export, and ``create_model``.

* :mod:`.loading` - ``load_weights`` / ``save_weights`` and the key adaptation behind them;
* :mod:`.hub` - hub tags such as ``timm/inception_v4.tf_in1k``, read from huggingface_hub's cache;
* :mod:`.convert` - TF-slim checkpoints, Keras files and facenet-pytorch state dicts to our layout;
* :mod:`.export` - safetensors, ONNX and TorchScript files, each checked against the model;
* :mod:`.factory` - ``create_model(name, pretrained=...)``.

Its layer (above ``models/``, below ``data/``) and where a new weight format goes: docs/architecture.md.
"""

from .export import FORMATS, ExportResult, check_exportable, default_path, export_model
from .factory import create_model
from .hub import HubTag, HubUnavailableError, parse_tag, resolve_tag, tags_for, tags_table
from .loading import (
    LoadedWeights,
    adapt_state_dict,
    check_compatible,
    fit_classifiers,
    load_weights,
    load_weights_report,
    read_state_dict,
    read_weights,
    save_weights,
    unwrap_state_dict,
    weights_format,
)

__all__ = [
    "FORMATS",
    "ExportResult",
    "HubTag",
    "HubUnavailableError",
    "LoadedWeights",
    "adapt_state_dict",
    "check_compatible",
    "check_exportable",
    "create_model",
    "default_path",
    "export_model",
    "fit_classifiers",
    "load_weights",
    "load_weights_report",
    "parse_tag",
    "read_state_dict",
    "read_weights",
    "resolve_tag",
    "save_weights",
    "tags_for",
    "tags_table",
    "unwrap_state_dict",
    "weights_format",
]
