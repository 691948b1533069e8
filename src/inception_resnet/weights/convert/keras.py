"""Keras ``InceptionResNetV2`` and ``InceptionV3`` weight files, read with h5py alone (no TensorFlow).

Two layouts are read:

* the legacy HDF5 layout of the published files (``inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5``,
  ``inception_v3_weights_tf_dim_ordering_tf_kernels[_notop].h5``) and of Keras' ``model.save("x.h5")``: the
  root (or its ``model_weights`` group) lists ``layer_names``; each layer's group lists ``weight_names``
  (``conv2d_1/kernel:0``, ``batch_normalization_1/beta:0``...) whose datasets hold the arrays;
* the Keras 3 layout of ``model.save_weights("x.weights.h5")`` (and of the ``model.weights.h5`` inside a
  ``.keras`` archive): ``layers/<key>/vars/0, 1, ...`` with the layer's name in the ``vars`` attributes.

Layers are matched by name, the way Keras numbers them: the unnamed conv/BatchNorm pairs are
``conv2d[_N]`` / ``batch_normalization[_N]`` in creation order, which is the order of our convolution units
(TF-slim's order, shared by Keras' builders); Inception-ResNet-v2's residual up-projections are
``block35_i_conv``, ``block17_i_conv``, ``block8_i_conv`` (the unscaled last block is ``block8_10``); its
last 1x1 unit is ``conv_7b`` / ``conv_7b_bn``; the classifier is the one dense layer (``predictions``).
Keras' BatchNorm of these models has no gamma (``scale=False``): it becomes 1. Kernels are [kh, kw, in, out]
and become [out, in, kh, kw]; dense kernels [in, out] become [out, in].
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...models.layers import ConvBNReLU, ScaledResidual
from . import MissingDependencyError, conv_kernel, dense_kernel, vector

StateDict = dict[str, torch.Tensor]

H5PY_HINT = "reading Keras .h5 weight files needs h5py: pip install h5py"
_NUMBERED = re.compile(r"^(?P<base>conv2d|batch_normalization)(?:_(?P<n>\d+))?$")
_UP_CONV = re.compile(r"^block(?P<kind>35|17|8)_(?P<n>\d+)_conv$")
_BN_ORDER_BY_COUNT = {
    3: ("beta", "moving_mean", "moving_variance"),
    4: ("gamma", "beta", "moving_mean", "moving_variance"),
}


@dataclass
class KerasLayer:
    """One Keras layer's weights, by Keras' weight names (``kernel``, ``bias``, ``beta``...)."""

    name: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        kernel = self.weights.get("kernel")
        if kernel is not None:
            return "conv" if kernel.ndim == 4 else "dense"
        if "moving_mean" in self.weights:
            return "bn"
        return "other"


def _open_h5(path: Path):
    try:
        import h5py
    except ImportError as err:
        raise MissingDependencyError(H5PY_HINT) from err
    if path.suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                data = archive.read("model.weights.h5")
        except (zipfile.BadZipFile, KeyError) as err:
            raise ValueError(f"{path} is not a Keras 3 .keras archive with model.weights.h5 ({err})") from err
        return h5py.File(io.BytesIO(data), "r")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err}); pass a Keras .h5 weights file") from err


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _weight_kind(name: str) -> str:
    """``conv2d_1/kernel:0`` -> ``kernel``."""
    return name.split("/")[-1].split(":")[0]


def _read_legacy(root) -> list[KerasLayer]:
    layers = []
    for layer_name in (_text(n) for n in root.attrs["layer_names"]):
        group = root[layer_name]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        if names:
            layers.append(KerasLayer(layer_name, {_weight_kind(n): np.asarray(group[n]) for n in names}))
    return layers


def _read_keras3(root) -> list[KerasLayer]:
    layers = []
    for key, group in root["layers"].items():
        if "vars" not in group or len(group["vars"]) == 0:
            continue
        variables = group["vars"]
        name = _text(variables.attrs.get("name", key))
        arrays = [np.asarray(variables[k]) for k in sorted(variables, key=int)]
        layers.append(KerasLayer(name, _name_keras3_arrays(name, arrays)))
    return layers


def _name_keras3_arrays(layer: str, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Keras 3 stores variables by creation index: kernel[, bias] or [gamma,] beta, mean, variance."""
    if arrays and arrays[0].ndim in (2, 4):
        return dict(zip(("kernel", "bias"), arrays, strict=False))
    if len(arrays) in _BN_ORDER_BY_COUNT and all(a.ndim == 1 for a in arrays):
        return dict(zip(_BN_ORDER_BY_COUNT[len(arrays)], arrays, strict=True))
    return {f"var{i}": a for i, a in enumerate(arrays)}


def read_keras_weights(path: str | os.PathLike) -> list[KerasLayer]:
    """The layers with weights of a Keras weight file (legacy ``.h5``, Keras 3 ``.weights.h5`` or ``.keras``)."""
    path = Path(path)
    with _open_h5(path) as handle:
        if "layer_names" in handle.attrs:
            return _read_legacy(handle)
        if "model_weights" in handle and "layer_names" in handle["model_weights"].attrs:
            return _read_legacy(handle["model_weights"])
        if "layers" in handle:
            return _read_keras3(handle)
    raise ValueError(
        f"{path} holds no Keras weights (no layer_names attribute, no model_weights or layers group); "
        "pass a file written by Keras' save_weights / save or a published Keras applications .h5 file"
    )


def _numbered_order(layer: KerasLayer) -> int:
    match = _NUMBERED.match(layer.name)
    return int(match.group("n") or 0) if match else -1


def _split(layers: list[KerasLayer], kind: str) -> list[KerasLayer]:
    """Layers of ``kind`` in creation order: Keras' numbered names by number, then the named ones in file order."""
    chosen = [la for la in layers if la.kind == kind and not _UP_CONV.match(la.name)]
    numbered = sorted((la for la in chosen if _NUMBERED.match(la.name)), key=_numbered_order)
    named = [la for la in chosen if not _NUMBERED.match(la.name)]
    return numbered + named


def _up_convs(layers: list[KerasLayer]) -> list[KerasLayer]:
    order = {"35": 0, "17": 1, "8": 2}
    ups = [(la, _UP_CONV.match(la.name)) for la in layers if la.kind == "conv"]
    ups = [(la, m) for la, m in ups if m]
    return [la for la, m in sorted(ups, key=lambda p: (order[p[1].group("kind")], int(p[1].group("n"))))]


def _model_targets(model: nn.Module) -> tuple[list[str], list[str]]:
    units = [name for name, m in model.named_modules() if isinstance(m, ConvBNReLU)]
    ups = [f"{name}.conv2d" for name, m in model.named_modules() if isinstance(m, ScaledResidual)]
    return units, ups


def _bn_state(prefix: str, layer: KerasLayer) -> StateDict:
    beta = vector(layer.weights["beta"])
    gamma = vector(layer.weights["gamma"]) if "gamma" in layer.weights else torch.ones_like(beta)
    return {
        f"{prefix}.weight": gamma,
        f"{prefix}.bias": beta,
        f"{prefix}.running_mean": vector(layer.weights["moving_mean"]),
        f"{prefix}.running_var": vector(layer.weights["moving_variance"]),
    }


def state_from_keras(model: nn.Module, layers: list[KerasLayer]) -> tuple[StateDict, list[str]]:
    """The state dict for ``model`` from the layers of a Keras weight file (see the module docstring)."""
    name = getattr(model, "model_name", type(model).__name__)
    if getattr(model, "aux_logits", False):
        raise ValueError("Keras weight files have no auxiliary head; build the model without aux_logits")
    units, ups = _model_targets(model)
    convs, bns, dense = _split(layers, "conv"), _split(layers, "bn"), _split(layers, "dense")
    keras_ups = _up_convs(layers)
    if len(convs) != len(units) or len(bns) != len(units) or len(keras_ups) != len(ups):
        raise ValueError(
            f"the Keras file has {len(convs)} convolutions, {len(bns)} BatchNorms and {len(keras_ups)} residual "
            f"projections; {name} needs {len(units)}, {len(units)} and {len(ups)}: Keras weights exist for "
            "InceptionResNetV2 (model inception_resnet_v2) and InceptionV3 (model inception_v3)"
        )
    state: StateDict = {}
    for prefix, conv, bn in zip(units, convs, bns, strict=True):
        state[f"{prefix}.conv.weight"] = conv_kernel(conv.weights["kernel"])
        state.update(_bn_state(f"{prefix}.bn", bn))
    for prefix, up in zip(ups, keras_ups, strict=True):
        state[f"{prefix}.weight"] = conv_kernel(up.weights["kernel"])
        state[f"{prefix}.bias"] = vector(up.weights["bias"])
    notes = [f"converted Keras weights: {len(units)} conv units, {len(ups)} residual projections"]
    classifier = getattr(model, "classifier_name", "fc")
    if len(dense) > 1:
        raise ValueError(f"the Keras file has {len(dense)} dense layers ({[d.name for d in dense]}); expected one")
    if dense and getattr(model, "num_classes", 0) > 0:
        state[f"{classifier}.weight"] = dense_kernel(dense[0].weights["kernel"])
        state[f"{classifier}.bias"] = vector(dense[0].weights["bias"])
    elif dense:
        notes.append(f"dropped the Keras classifier {dense[0].name!r} (the model has num_classes=0)")
    elif getattr(model, "num_classes", 0) > 0:
        raise ValueError(
            "the Keras file has no classifier (an include_top=False / _notop file); build the model "
            "with num_classes=0 to use it as a feature extractor"
        )
    return state, notes


def load_keras_state(model: nn.Module, path: str | os.PathLike) -> tuple[StateDict, list[str]]:
    """Read a Keras weight file into a state dict for ``model``."""
    return state_from_keras(model, read_keras_weights(path))


KERAS_METADATA = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
"""Keras' ``preprocess_input`` for these networks scales pixels to [-1, 1]."""
