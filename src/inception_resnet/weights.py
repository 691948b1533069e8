"""Loading weights in the layouts people already have.

``load_weights(model, source)`` accepts a state dict or a file (``.pth``, ``.pt``, ``.bin``,
``.safetensors``) in timm's layout (Inception-v3, -v4, Inception-ResNet-v2), torchvision's Inception-v3
layout (whose ``AuxLogits`` keys are dropped when the model has no auxiliary head), or Cadene's
(``last_linear`` for Inception-ResNet-v2's classifier). Classifiers with 1001 outputs (TF-slim's background
class at index 0) are reduced to 1000 by dropping that row when the model has 1000 classes. Anything else
that does not fit raises a ValueError naming the first missing, unexpected and wrongly shaped keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    for prefix in (classifier, "AuxLogits.fc"):
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


def load_weights(model: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> list[str]:
    """Load ``source`` (a state dict or a weights file) into ``model``; returns notes on adaptations made."""
    if isinstance(source, Mapping):
        state = unwrap_state_dict(source)
        label = "state dict"
    else:
        state = read_state_dict(source)
        label = str(source)
    state, notes = adapt_state_dict(model, state)
    check_compatible(model, state)
    model.load_state_dict(state)
    if hasattr(model, "set_metadata"):
        model.set_metadata(weights=label)
    return notes


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
