"""TF-slim checkpoints of Inception-v3, Inception-v4 and Inception-ResNet-v2 in this package's layout.

The released checkpoints (``inception_v3.ckpt``, ``inception_v4.ckpt``,
``inception_resnet_v2_2016_08_30.ckpt``, published with TF-slim's model library) name each variable after the
TF-slim scope that created it: ``InceptionV4/Mixed_5b/Branch_1/Conv2d_0b_3x3/weights``. A convolution unit
stores ``weights`` as [kh, kw, in, out] and a BatchNorm without gamma (``beta``, ``moving_mean``,
``moving_variance``); the residual up-projections of Inception-ResNet-v2 store ``weights`` and ``biases``;
the classifiers are fully connected layers ([in, out]) for v4 and IR-v2 and 1x1 convolutions for v3, with
1001 classes (index 0 is the background). :func:`~.tf_slim_layout.slim_layers` lists, for a model, which
of its modules each scope fills; :func:`state_from_slim` builds the state dict (BatchNorm gamma set to 1
where the checkpoint has none) from the variables :func:`~.tf_checkpoint.read_checkpoint` reads with
TensorFlow's checkpoint reader.

:func:`to_slim_variables` is the inverse mapping (our weights under TF-slim names and layouts), used to
write checkpoints in the released layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from . import conv_kernel, dense_kernel, vector
from .tf_checkpoint import read_checkpoint
from .tf_slim_layout import SlimLayer, slim_layers

StateDict = dict[str, torch.Tensor]


def _variable_names(net: str, layer: SlimLayer) -> dict[str, str]:
    """Our key suffix -> TF variable name for one layer (gamma is optional and handled separately)."""
    base = f"{net}/{layer.scope}"
    if layer.kind == "unit":
        return {
            "conv.weight": f"{base}/weights",
            "bn.bias": f"{base}/BatchNorm/beta",
            "bn.running_mean": f"{base}/BatchNorm/moving_mean",
            "bn.running_var": f"{base}/BatchNorm/moving_variance",
        }
    return {"weight": f"{base}/weights", "bias": f"{base}/biases"}


def _convert(layer: SlimLayer, suffix: str, array: np.ndarray) -> torch.Tensor:
    if suffix.endswith("weight") and suffix != "bn.weight":
        if layer.kind in ("unit", "conv_bias"):
            return conv_kernel(array)
        return dense_kernel(array)
    return vector(array)


def state_from_slim(model: nn.Module, variables: Mapping[str, np.ndarray]) -> tuple[StateDict, list[str]]:
    """The state dict (our layout, the checkpoint's class count) filled from TF-slim ``variables``.

    ``variables`` maps full TF names to arrays (e.g. :class:`~.tf_checkpoint.CheckpointVariables`). The
    auxiliary head is included when the checkpoint has it (``load_weights`` drops it for a model without
    ``aux_logits``). Raises a ValueError naming the variables that are missing.
    """
    net, layers = slim_layers(model)
    names = set(variables)
    has_aux = any(name.startswith(f"{net}/AuxLogits/") for name in names)
    notes = [f"converted TF-slim checkpoint variables ({net}): kernels HWIO -> OIHW, BatchNorm gamma = 1"]
    wanted_aux = bool(getattr(model, "aux_logits", False))
    if wanted_aux and not has_aux:
        raise ValueError(
            f"the checkpoint has no auxiliary head ({net}/AuxLogits/...) but the model was built with "
            "aux_logits=True; build it without aux_logits"
        )
    state: StateDict = {}
    missing: list[str] = []
    for layer in layers:
        if layer.aux and not has_aux:
            continue
        for suffix, tf_name in _variable_names(net, layer).items():
            if tf_name not in names:
                missing.append(tf_name)
                continue
            state[f"{layer.target}.{suffix}"] = _convert(layer, suffix, variables[tf_name])
        if layer.kind == "unit" and f"{layer.target}.bn.bias" in state:
            gamma = f"{net}/{layer.scope}/BatchNorm/gamma"
            beta = state[f"{layer.target}.bn.bias"]
            state[f"{layer.target}.bn.weight"] = vector(variables[gamma]) if gamma in names else torch.ones_like(beta)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        present = sorted(n for n in names if "/" in n)[:2]
        raise ValueError(
            f"the checkpoint lacks {len(missing)} variable(s) that {getattr(model, 'model_name', net)} needs: "
            f"{', '.join(missing[:3])}{more}; is it a TF-slim {net} checkpoint? (it holds e.g. {present})"
        )
    return state, notes


def _slim_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(TF name, tensor in TF's layout) for each variable of the model's TF-slim checkpoint."""
    net, layers = slim_layers(model)
    own = model.state_dict()
    for layer in layers:
        if layer.aux and not getattr(model, "aux_logits", False):
            continue
        for suffix, tf_name in _variable_names(net, layer).items():
            tensor = own[f"{layer.target}.{suffix}"].detach()
            if suffix.endswith("weight"):
                if layer.kind in ("unit", "conv_bias"):
                    tensor = tensor.permute(2, 3, 1, 0)
                elif layer.kind == "fc":
                    tensor = tensor.t()
                else:
                    tensor = tensor.t()[None, None]
            yield tf_name, tensor


def to_slim_variables(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's weights under TF-slim's variable names and layouts (no gamma: it must be 1)."""
    return {name: np.ascontiguousarray(t.cpu().float().numpy()) for name, t in _slim_tensors(model)}


def slim_variable_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The variable names and shapes of the model's TF-slim checkpoint (works on a ``meta``-device model)."""
    return {name: tuple(t.shape) for name, t in _slim_tensors(model)}


def load_slim_state(model: nn.Module, path: str | os.PathLike) -> tuple[StateDict, list[str]]:
    """Read a TF-slim checkpoint file into a state dict for ``model`` (our layout, the file's classes)."""
    return state_from_slim(model, read_checkpoint(path))


SLIM_METADATA = {
    "crop_mode": "tf",
    "crop_pct": 0.875,
    "interpolation": "bilinear",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
}
"""TF-slim's evaluation preprocessing (central 87.5 % crop, bilinear resize, [-1, 1])."""
