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
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checks import check_compatible, check_finite
from .records import metadata_changes, read_model_config, run_weights
from .records import save_weights as save_weights  # its home is .records; imported from here too

StateDict = dict[str, torch.Tensor]

# Keys under which training scripts nest the weights, in order of preference.
_NESTED_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Read a state dict from a ``.safetensors`` or a torch-pickled file, unwrapping training checkpoints."""
    return read_weights_file(path)[0]


def read_weights_file(path: str | os.PathLike) -> tuple[StateDict, list[str] | None]:
    """``(state dict, class names)`` of a weights file; the names when it recorded them (our checkpoints and
    safetensors exports), else None."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
            with safe_open(str(path), "pt") as handle:
                header = handle.metadata() or {}
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
        return state, _classes_in_header(header)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # not a pickle at all, or a damaged one
            raise ValueError(
                f"{path} could not be read as a PyTorch weights file ({first_sentence(err)}); pass a "
                ".pth/.pt/.bin state dict or a .safetensors file"
            ) from None
        raise ValueError(  # torch's safe loader refused a pickle that names code to run
            f"{path} is not a plain weights file: its pickle names code to run ({code_named(err)}), which is "
            "never run here. If you trust the file, convert it once in Python: obj = torch.load(path, "
            "weights_only=False); torch.save(obj.state_dict() if hasattr(obj, 'state_dict') else obj, 'plain.pth')"
        ) from None
    except Exception as err:
        raise ValueError(
            f"{path} could not be read as a PyTorch weights file ({type(err).__name__}: {first_sentence(err)}); "
            "pass a .pth/.pt/.bin state dict or a .safetensors file"
        ) from None
    classes = obj.get("classes") if isinstance(obj, Mapping) else None
    return unwrap_state_dict(obj, str(path)), _class_list(classes)


def code_named(error: BaseException) -> str:
    """What torch's safe loader refused to run, e.g. ``posix.system``."""
    found = re.search(r"GLOBAL (\S+)", str(error))
    return found.group(1) if found else first_sentence(error)


def first_sentence(error: BaseException) -> str:
    """The first line of an error's message, without torch's advice to load untrusted files unsafely."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(" (1) ")[0].split(" In PyTorch 2.6")[0].rstrip(". ")


def _classes_in_header(header: Mapping[str, str]) -> list[str] | None:
    import json

    try:
        extra = json.loads(header.get("inception_resnet.metadata", "{}")).get("extra", {})
    except (ValueError, AttributeError):
        return None
    return _class_list(extra.get("classes") if isinstance(extra, Mapping) else None)


def _class_list(names: Any) -> list[str] | None:
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) for n in names):
        return list(names)
    return None


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
        state = {k[len("module.") :]: v for k, v in state.items()}
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
    flattened = {k: re.sub(r"^([A-Za-z]\w*?)_(\d+)\.", r"\1.\2.", k) for k in state if k not in own}
    flattened = {k: v for k, v in flattened.items() if v != k and v in own and v not in state}
    if flattened:  # timm's features_only networks flatten a Sequential's children: features_0 for features.0
        state = {flattened.get(k, k): v for k, v in state.items()}
        notes.append(f"renamed {len(flattened)} key(s) of timm's features_only layout (features_0. -> features.0.)")
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
        inner = run_weights(path)  # a training run directory: its final weights or best checkpoint
        if inner is not None:
            return weights_format(inner)
        raise FileNotFoundError(
            f"the folder {path} holds none of {', '.join(WEIGHT_FILES)} and is no training run "
            "directory (no model/ or checkpoints/); pass the weights file"
        )
    if path.is_file():
        name = path.name.lower()
        if name.endswith(KERAS_SUFFIXES):
            return "keras", str(path)
        if name.endswith(".index") or ".data-" in name:
            return "tf-slim", str(path)
        if name.endswith(".ckpt") and not zipfile.is_zipfile(path):
            return "tf-slim", str(path)
        return "torch", str(path)
    if path.exists():
        raise ValueError(f"weights {path} is not a regular file (a pipe, a socket or a device); pass a weights file")
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
    state, classes = read_weights_file(location)
    config = read_model_config(location)
    if config is not None:
        return LoadedWeights(state, location, metadata=metadata_changes(config))
    return LoadedWeights(state, location, metadata={"extra": {"classes": classes}} if classes else {})


def check_tag_fits(tag: str, model_name: str | None) -> str:
    """The repository of a hub tag; a ValueError when the table says its weights are for another model."""
    from .hub import KNOWN_TAGS, parse_tag

    repo_id = parse_tag(tag)[0]
    known = KNOWN_TAGS.get(repo_id)
    if known is not None and model_name is not None and known.model != model_name:
        raise ValueError(
            f"{repo_id} holds weights for {known.model}, not {model_name}; use create_model({known.model!r}, "
            f"pretrained={repo_id!r})"
        )
    return repo_id


def fetch_weights(source: Any, model_name: str | None = None) -> None:
    """Before a model is built: fail now on a source that cannot be read, download a hub tag's file now.

    A missing file, a tag for another model or an unreachable hub is reported before the (slow) model
    construction; a fetched tag is then read from huggingface_hub's cache by :func:`load_weights`.
    """
    if source is None or isinstance(source, Mapping):
        return
    kind, location = weights_format(source)
    if kind == "hub":
        from .hub import resolve_tag

        check_tag_fits(location, model_name)
        resolve_tag(location)


def _read_hub(model: nn.Module, tag: str) -> LoadedWeights:
    from .hub import resolve_tag, tag_metadata

    repo_id = check_tag_fits(tag, getattr(model, "model_name", None))
    path = resolve_tag(tag)
    notes = [f"read {repo_id} from {path}"]
    return LoadedWeights(read_state_dict(path), repo_id, notes, tag_metadata(repo_id))


def load_weights(
    model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], *, new_heads: bool = False
) -> list[str]:
    """Load ``source`` (a state dict, a weights file or a hub tag) into ``model``; returns notes on adaptations.

    Every key must fit, unless ``new_heads``: then a classifier (main or auxiliary, by the model's
    ``classifier_names()``) whose size differs from the weights' keeps the model's fresh initialisation, and
    one the model was built without (``num_classes=0``) is dropped; a note names them (fine-tuning, and
    ``create_model(name, pretrained=..., num_classes=N)``).
    """
    return load_weights_report(model, source, new_heads)[0]


def load_weights_report(
    model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor], new_heads: bool
) -> tuple[list[str], list[str]]:
    """:func:`load_weights`, returning its notes and the classifiers left new or dropped (create_model warns)."""
    if isinstance(source, Mapping):
        loaded = LoadedWeights(unwrap_state_dict(source), "state dict")
    else:
        loaded = read_weights(model, source)
    state, notes = loaded.state, list(loaded.notes)
    from .convert.facenet import adapt_facenet_state, is_facenet_model

    # facenet's keys are its own (its last_linear is not Cadene's classifier): only its adapter applies
    if is_facenet_model(model):
        state, more = adapt_facenet_state(model, state, new_logits=new_heads)
    else:
        state, more = adapt_state_dict(model, state)
    notes += more
    heads: list[str] = []
    if new_heads:
        heads, more = fit_classifiers(model, state)
        notes += more
    check_compatible(model, state)
    check_finite(state, loaded.label)
    model.load_state_dict(state)
    if loaded.tf_pooling:
        from .convert import exclude_pool_padding

        if exclude_pool_padding(model):
            notes.append("average pools switched to TensorFlow's (padding excluded), as the weights were trained")
            loaded.metadata["extra"] = {**loaded.metadata.get("extra", {}), "avg_pool": "padding excluded (TensorFlow)"}
    if hasattr(model, "set_metadata"):
        model.set_metadata(**_metadata_changes(model, loaded))
    return notes, heads


def fit_classifiers(model: nn.Module, state: StateDict) -> tuple[list[str], list[str]]:
    """Make ``state``'s classifiers fit ``model`` for fine-tuning, in place; returns (classifiers, notes).

    A classifier whose size differs from the model's, or that the weights do not have (timm's ``features_only``
    state dicts), takes the model's own (freshly initialised) weights; one the model does not have (built with
    ``num_classes=0``) is dropped from ``state``.
    """
    own = model.state_dict()
    replaced: list[str] = []
    dropped: list[str] = []
    heads: list[str] = []
    for prefix in classifier_names(model):
        keys = [f"{prefix}.{suffix}" for suffix in ("weight", "bias")]
        absent = not any(k.startswith(f"{prefix}.") for k in state)
        for key in keys:
            if key not in state and key in own and absent:
                state[key] = own[key]  # weights without this classifier (a feature extractor's): it stays new
                replaced.append(key)
            elif key in state and key not in own:
                del state[key]
                dropped.append(key)
            elif key in state and state[key].shape != own[key].shape:
                state[key] = own[key]
                replaced.append(key)
        if any(key in replaced or key in dropped for key in keys):
            heads.append(prefix)
    notes = []
    if replaced:
        notes.append(f"new classifier for {getattr(model, 'num_classes', '?')} classes ({', '.join(replaced)})")
    if dropped:
        notes.append(f"dropped the weights' classifier (the model has num_classes=0): {', '.join(dropped)}")
    return heads, notes


def _metadata_changes(model: nn.Module, loaded: LoadedWeights) -> dict[str, Any]:
    changes: dict[str, Any] = {"weights": loaded.label, **loaded.metadata}
    # the class names belong to the weights: the previous weights' names never stay behind, and names of a
    # classifier that was replaced (fine-tuning to other classes) are not the model's
    kept = {k: v for k, v in model.metadata.extra.items() if k != "classes"}
    changes["extra"] = {**kept, **changes.get("extra", {})}
    names = changes["extra"].get("classes")
    if names is not None and len(names) != getattr(model, "num_classes", 0) - int(changes.get("label_offset", 0)):
        del changes["extra"]["classes"]
    if getattr(model, "num_classes", 0) == 1001:
        changes["label_offset"] = 1  # TF-slim's background class kept at index 0
    return changes
