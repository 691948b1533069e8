"""Loading weights in the layouts people already have.

``load_weights(model, source)`` accepts a state dict or a file (``.pth``, ``.pt``, ``.bin``,
``.safetensors``) in timm's layout (Inception-v3, -v4, Inception-ResNet-v2), torchvision's Inception-v3
layout (whose ``AuxLogits`` keys are dropped when the model has no auxiliary head), or Cadene's
(``last_linear`` for Inception-ResNet-v2's classifier). Classifiers with 1001 outputs (TF-slim's background
class at index 0) are reduced to 1000 by dropping that row when the model has 1000 classes. Anything else
that does not fit raises a ValueError naming the first missing, unexpected and wrongly shaped keys.

``source`` may also be (see :func:`weights_format`):

* a hub tag such as ``timm/inception_v4.tf_in1k`` (:mod:`inception_resnet.weights.hub`): read from
  huggingface_hub's cache, downloaded into it the first time; the tag's preprocessing and published
  accuracy are recorded in the model's metadata;
* a TF-slim checkpoint (``inception_v4.ckpt``, ``inception_resnet_v2_2016_08_30.ckpt``,
  ``inception_v3.ckpt``, or a V2 checkpoint prefix), read with TensorFlow (:mod:`.convert.tf_slim`);
* a Keras weight file (``.h5``, ``.weights.h5``, ``.keras``), read with h5py (:mod:`.convert.keras`);
* a facenet-pytorch state dict for ``inception_resnet_v1_facenet`` (:mod:`.convert.facenet`);
* a folder holding ``model.safetensors`` or ``pytorch_model.bin`` (what ``hf download --local-dir`` writes).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]

# Keys under which training scripts nest the weights, in order of preference.
_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Read a state dict from a ``.safetensors`` or a torch-pickled file, unwrapping training checkpoints."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} could not be read as a PyTorch weights file ({type(err).__name__}: {err}); "
            "pass a .pth/.pt/.bin state dict or a .safetensors file"
        ) from err
    return unwrap_state_dict(obj, str(path))


def unwrap_state_dict(obj: Any, where: str = "state dict") -> StateDict:
    """Find the tensor mapping inside a checkpoint dict and strip DDP's ``module.`` prefix."""
    while isinstance(obj, Mapping) and not _is_tensor_mapping(obj):
        nested = next((obj[k] for k in _NESTED_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if nested is None:
            raise ValueError(f"{where} holds no state dict (keys: {sorted(obj)[:8]})")
        obj = nested
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where} is a {type(obj).__name__}, not a state dict")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_tensor_mapping(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def classifier_names(model: nn.Module) -> list[str]:
    """The model's classifier layers, main first (:meth:`InceptionNet.classifier_names`; ``fc`` for others)."""
    names = getattr(model, "classifier_names", None)
    if callable(names):
        return list(names())
    return [getattr(model, "classifier_name", "fc")]


def adapt_state_dict(model: nn.Module, state: StateDict) -> tuple[StateDict, list[str]]:
    """Bring a timm / torchvision / Cadene state dict to this model's layout; returns it and notes on what changed."""
    own = model.state_dict()
    state = dict(state)
    notes: list[str] = []
    classifier = getattr(model, "classifier_name", None)
    if classifier and f"{classifier}.weight" not in state and "last_linear.weight" in state:
        for suffix in ("weight", "bias"):
            if f"last_linear.{suffix}" in state:
                state[f"{classifier}.{suffix}"] = state.pop(f"last_linear.{suffix}")
        notes.append("renamed Cadene's last_linear to " + classifier)
    aux_keys = [k for k in state if k.startswith("AuxLogits.")]
    if aux_keys and not any(k.startswith("AuxLogits.") for k in own):
        for k in aux_keys:
            del state[k]
        notes.append("dropped the auxiliary head's weights (the model was built without aux_logits)")
    for prefix in classifier_names(model):
        if prefix and _drop_background_class(own, state, prefix):
            notes.append(f"dropped the background class (index 0) of {prefix}")
    if not any(k.endswith("num_batches_tracked") for k in state):
        for k, v in own.items():
            if k.endswith("num_batches_tracked"):
                state[k] = v.clone()
    return state, notes


def _drop_background_class(own: StateDict, state: StateDict, prefix: str) -> bool:
    weight, bias = f"{prefix}.weight", f"{prefix}.bias"
    if weight not in state or weight not in own:
        return False
    if state[weight].shape[0] != own[weight].shape[0] + 1 or state[weight].shape[1:] != own[weight].shape[1:]:
        return False
    state[weight] = state[weight][1:]
    if bias in state:
        state[bias] = state[bias][1:]
    return True


def check_compatible(model: nn.Module, state: StateDict) -> None:
    """Raise a ValueError naming the first missing, unexpected and mis-shaped keys, if there are any."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if not (missing or unexpected or mis_shaped):
        return
    name = getattr(model, "model_name", type(model).__name__)
    parts = [f"the weights do not fit {name}:"]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {label} key(s): {', '.join(keys[:3])}{more};")
    parts.append(
        "check the model name, num_classes (e.g. --num-classes) and options such as aux_logits or "
        "width_multiplier against the ones the weights were trained with"
    )
    raise ValueError(" ".join(parts))


@dataclass
class LoadedWeights:
    """A state dict read from some source, before adaptation: its label, notes and metadata to record."""

    state: StateDict
    label: str
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tf_pooling: bool = False  # switch the model's average pools to TF's (padding excluded) once loaded


KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def weights_format(source: str | os.PathLike) -> tuple[str, str]:
    """``(format, location)`` of a weights source: ``torch``, ``tf-slim``, ``keras`` or ``hub``.

    An existing path wins over a hub tag of the same spelling; a folder stands for the ``model.safetensors``
    or ``pytorch_model.bin`` in it. A ``.ckpt`` file is TensorFlow's unless it is a torch zip archive.
    """
    from .hub import WEIGHT_FILES, looks_like_tag

    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        for name in WEIGHT_FILES:
            if (path / name).is_file():
                return "torch", str(path / name)
        raise FileNotFoundError(f"the folder {path} holds none of {', '.join(WEIGHT_FILES)}; pass the weights file")
    if path.is_file():
        name = path.name.lower()
        if name.endswith(KERAS_SUFFIXES):
            return "keras", str(path)
        if name.endswith(".index") or ".data-" in name:
            return "tf-slim", str(path)
        if name.endswith(".ckpt") and not zipfile.is_zipfile(path):
            return "tf-slim", str(path)
        return "torch", str(path)
    if Path(text + ".index").expanduser().is_file():
        return "tf-slim", str(path)
    if isinstance(source, str) and looks_like_tag(source):
        return "hub", source
    raise FileNotFoundError(
        f"weights file not found: {path}; pass an existing file (.safetensors, .pth, .ckpt, .h5...) or a hub "
        "tag such as timm/inception_v4.tf_in1k (known tags: inception_resnet.weights.hub.KNOWN_TAGS)"
    )


def read_weights(model: nn.Module, source: str | os.PathLike) -> LoadedWeights:
    """Read ``source`` into a state dict in our layout for ``model`` (see :func:`weights_format`)."""
    kind, location = weights_format(source)
    if kind == "hub":
        return _read_hub(model, location)
    if kind == "tf-slim":
        from .convert import tf_slim

        state, notes = tf_slim.load_slim_state(model, location)
        return LoadedWeights(state, location, notes, dict(tf_slim.SLIM_METADATA), tf_pooling=True)
    if kind == "keras":
        from .convert import keras

        state, notes = keras.load_keras_state(model, location)
        return LoadedWeights(state, location, notes, dict(keras.KERAS_METADATA), tf_pooling=True)
    return LoadedWeights(read_state_dict(location), location)


def _read_hub(model: nn.Module, tag: str) -> LoadedWeights:
    from .hub import KNOWN_TAGS, parse_tag, resolve_tag, tag_metadata

    repo_id = parse_tag(tag)[0]
    name = getattr(model, "model_name", None)
    known = KNOWN_TAGS.get(repo_id)
    if known is not None and name is not None and known.model != name:
        raise ValueError(
            f"{repo_id} holds weights for {known.model}, not {name}; use create_model({known.model!r}, "
            f"pretrained={repo_id!r})"
        )
    path = resolve_tag(tag)
    notes = [f"read {repo_id} from {path}"]
    return LoadedWeights(read_state_dict(path), repo_id, notes, tag_metadata(repo_id))


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> list[str]:
    """Load ``source`` (a state dict, a weights file or a hub tag) into ``model``; returns notes on adaptations."""
    if isinstance(source, Mapping):
        loaded = LoadedWeights(unwrap_state_dict(source), "state dict")
    else:
        loaded = read_weights(model, source)
    state, notes = loaded.state, list(loaded.notes)
    from .convert.facenet import adapt_facenet_state, is_facenet_model

    # facenet's keys are its own (its last_linear is not Cadene's classifier): only its adapter applies
    adapt = adapt_facenet_state if is_facenet_model(model) else adapt_state_dict
    state, more = adapt(model, state)
    notes += more
    check_compatible(model, state)
    model.load_state_dict(state)
    if loaded.tf_pooling:
        from .convert import exclude_pool_padding

        if exclude_pool_padding(model):
            notes.append("average pools switched to TensorFlow's (padding excluded), as the weights were trained")
            loaded.metadata["extra"] = {"avg_pool": "padding excluded (TensorFlow)"}
    if hasattr(model, "set_metadata"):
        model.set_metadata(**_metadata_changes(model, loaded))
    return notes


def _metadata_changes(model: nn.Module, loaded: LoadedWeights) -> dict[str, Any]:
    changes: dict[str, Any] = {"weights": loaded.label, **loaded.metadata}
    if "extra" in changes:
        changes["extra"] = {**model.metadata.extra, **changes["extra"]}
    if getattr(model, "num_classes", 0) == 1001:
        changes["label_offset"] = 1  # TF-slim's background class kept at index 0
    return changes


def save_weights(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save the model's state dict as ``.safetensors`` (in the same key layout) or a torch ``.pth`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path
