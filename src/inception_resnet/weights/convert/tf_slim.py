"""TF-slim checkpoints of Inception-v3, Inception-v4 and Inception-ResNet-v2 in this package's layout.

The released checkpoints (``inception_v3.ckpt``, ``inception_v4.ckpt``,
``inception_resnet_v2_2016_08_30.ckpt``, published with TF-slim's model library) name each variable after the
TF-slim scope that created it: ``InceptionV4/Mixed_5b/Branch_1/Conv2d_0b_3x3/weights``. A convolution unit
stores ``weights`` as [kh, kw, in, out] and a BatchNorm without gamma (``beta``, ``moving_mean``,
``moving_variance``); the residual up-projections of Inception-ResNet-v2 store ``weights`` and ``biases``;
the classifiers are fully connected layers ([in, out]) for v4 and IR-v2 and 1x1 convolutions for v3, with
1001 classes (index 0 is the background). :func:`slim_layers` lists, for a model, which of its modules each
scope fills; :func:`state_from_slim` builds the state dict (BatchNorm gamma set to 1 where the checkpoint
has none) and :func:`read_checkpoint` reads a file with TensorFlow's checkpoint reader, which both the V1
single-file format of the released checkpoints and the V2 ``.index``/``.data`` format go through.

:func:`to_slim_variables` is the inverse mapping (our weights under TF-slim names and layouts), used to
write checkpoints in the released layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import MissingDependencyError, conv_kernel, dense_kernel, vector

StateDict = dict[str, torch.Tensor]

TF_INSTALL_HINT = (
    "reading TF-slim checkpoints needs TensorFlow: pip install 'inception-resnet[tf]' (or pip install tensorflow-cpu)"
)


@dataclass(frozen=True)
class SlimLayer:
    """One TF-slim scope and the module of ours it fills.

    ``kind`` is ``unit`` (conv + BatchNorm), ``conv_bias`` (a conv with biases and no BatchNorm),
    ``fc`` (fully connected, [in, out]) or ``fc_conv`` (a classifier stored as a 1x1 conv).
    ``aux`` marks the auxiliary head, which models without ``aux_logits`` do not have.
    """

    target: str
    scope: str
    kind: str = "unit"
    aux: bool = False


def _units(target: str, scope: str, table: Mapping[str, str]) -> list[SlimLayer]:
    return [SlimLayer(f"{target}.{child}", f"{scope}/{sub}") for child, sub in table.items()]


# -- Inception-v4 (timm layout) ----------------------------------------------------------------------------
V4_MIXED_4A = {
    "branch0.0": "Branch_0/Conv2d_0a_1x1",
    "branch0.1": "Branch_0/Conv2d_1a_3x3",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_1x7",
    "branch1.2": "Branch_1/Conv2d_0c_7x1",
    "branch1.3": "Branch_1/Conv2d_1a_3x3",
}
V4_BLOCK_A = {
    "branch0": "Branch_0/Conv2d_0a_1x1",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_3x3",
    "branch2.0": "Branch_2/Conv2d_0a_1x1",
    "branch2.1": "Branch_2/Conv2d_0b_3x3",
    "branch2.2": "Branch_2/Conv2d_0c_3x3",
    "branch3.1": "Branch_3/Conv2d_0b_1x1",
}
V4_REDUCTION_A = {
    "branch0": "Branch_0/Conv2d_1a_3x3",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_3x3",
    "branch1.2": "Branch_1/Conv2d_1a_3x3",
}
V4_BLOCK_B = {
    "branch0": "Branch_0/Conv2d_0a_1x1",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_1x7",
    "branch1.2": "Branch_1/Conv2d_0c_7x1",
    "branch2.0": "Branch_2/Conv2d_0a_1x1",
    "branch2.1": "Branch_2/Conv2d_0b_7x1",
    "branch2.2": "Branch_2/Conv2d_0c_1x7",
    "branch2.3": "Branch_2/Conv2d_0d_7x1",
    "branch2.4": "Branch_2/Conv2d_0e_1x7",
    "branch3.1": "Branch_3/Conv2d_0b_1x1",
}
V4_REDUCTION_B = V4_MIXED_4A  # the same two branches and scope names as the stem's Mixed_4a
V4_BLOCK_C = {
    "branch0": "Branch_0/Conv2d_0a_1x1",
    "branch1_0": "Branch_1/Conv2d_0a_1x1",
    "branch1_1a": "Branch_1/Conv2d_0b_1x3",
    "branch1_1b": "Branch_1/Conv2d_0c_3x1",
    "branch2_0": "Branch_2/Conv2d_0a_1x1",
    "branch2_1": "Branch_2/Conv2d_0b_3x1",
    "branch2_2": "Branch_2/Conv2d_0c_1x3",
    "branch2_3a": "Branch_2/Conv2d_0d_1x3",
    "branch2_3b": "Branch_2/Conv2d_0e_3x1",
    "branch3.1": "Branch_3/Conv2d_0b_1x1",
}


def _inception_v4_layers(model: nn.Module) -> list[SlimLayer]:
    layers = [
        SlimLayer("features.0", "Conv2d_1a_3x3"),
        SlimLayer("features.1", "Conv2d_2a_3x3"),
        SlimLayer("features.2", "Conv2d_2b_3x3"),
        SlimLayer("features.3.conv", "Mixed_3a/Branch_1/Conv2d_0a_3x3"),
        *_units("features.4", "Mixed_4a", V4_MIXED_4A),
        SlimLayer("features.5.conv", "Mixed_5a/Branch_0/Conv2d_1a_3x3"),
    ]
    for index, letter in zip(range(6, 10), "bcde", strict=True):
        layers += _units(f"features.{index}", f"Mixed_5{letter}", V4_BLOCK_A)
    layers += _units("features.10", "Mixed_6a", V4_REDUCTION_A)
    for index, letter in zip(range(11, 18), "bcdefgh", strict=True):
        layers += _units(f"features.{index}", f"Mixed_6{letter}", V4_BLOCK_B)
    layers += _units("features.18", "Mixed_7a", V4_REDUCTION_B)
    for index, letter in zip(range(19, 22), "bcd", strict=True):
        layers += _units(f"features.{index}", f"Mixed_7{letter}", V4_BLOCK_C)
    layers.append(SlimLayer("last_linear", "Logits/Logits", "fc"))
    layers += [
        SlimLayer("AuxLogits.conv0", "AuxLogits/Conv2d_1b_1x1", aux=True),
        SlimLayer("AuxLogits.conv1", "AuxLogits/Conv2d_2a", aux=True),
        SlimLayer("AuxLogits.fc", "AuxLogits/Aux_logits", "fc", aux=True),
    ]
    return layers


# -- Inception-ResNet-v2 (timm layout) ---------------------------------------------------------------------
IRV2_MIXED_5B = {
    "branch0": "Branch_0/Conv2d_1x1",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_5x5",
    "branch2.0": "Branch_2/Conv2d_0a_1x1",
    "branch2.1": "Branch_2/Conv2d_0b_3x3",
    "branch2.2": "Branch_2/Conv2d_0c_3x3",
    "branch3.1": "Branch_3/Conv2d_0b_1x1",
}
IRV2_BLOCK35 = {
    "branch0": "Branch_0/Conv2d_1x1",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_3x3",
    "branch2.0": "Branch_2/Conv2d_0a_1x1",
    "branch2.1": "Branch_2/Conv2d_0b_3x3",
    "branch2.2": "Branch_2/Conv2d_0c_3x3",
}
IRV2_BLOCK17 = {
    "branch0": "Branch_0/Conv2d_1x1",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_1x7",
    "branch1.2": "Branch_1/Conv2d_0c_7x1",
}
IRV2_BLOCK8 = {
    "branch0": "Branch_0/Conv2d_1x1",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_1x3",
    "branch1.2": "Branch_1/Conv2d_0c_3x1",
}
IRV2_MIXED_6A = {
    "branch0": "Branch_0/Conv2d_1a_3x3",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_0b_3x3",
    "branch1.2": "Branch_1/Conv2d_1a_3x3",
}
IRV2_MIXED_7A = {
    "branch0.0": "Branch_0/Conv2d_0a_1x1",
    "branch0.1": "Branch_0/Conv2d_1a_3x3",
    "branch1.0": "Branch_1/Conv2d_0a_1x1",
    "branch1.1": "Branch_1/Conv2d_1a_3x3",
    "branch2.0": "Branch_2/Conv2d_0a_1x1",
    "branch2.1": "Branch_2/Conv2d_0b_3x3",
    "branch2.2": "Branch_2/Conv2d_1a_3x3",
}


def _residual(target: str, scope: str, table: Mapping[str, str]) -> list[SlimLayer]:
    """A residual block: its branch units plus the block-level up-projection ``Conv2d_1x1`` (with biases)."""
    return [*_units(target, scope, table), SlimLayer(f"{target}.conv2d", f"{scope}/Conv2d_1x1", "conv_bias")]


def _inception_resnet_v2_layers(model: nn.Module) -> list[SlimLayer]:
    layers = [
        SlimLayer("conv2d_1a", "Conv2d_1a_3x3"),
        SlimLayer("conv2d_2a", "Conv2d_2a_3x3"),
        SlimLayer("conv2d_2b", "Conv2d_2b_3x3"),
        SlimLayer("conv2d_3b", "Conv2d_3b_1x1"),
        SlimLayer("conv2d_4a", "Conv2d_4a_3x3"),
        *_units("mixed_5b", "Mixed_5b", IRV2_MIXED_5B),
    ]
    for i in range(len(model.repeat)):
        layers += _residual(f"repeat.{i}", f"Repeat/block35_{i + 1}", IRV2_BLOCK35)
    layers += _units("mixed_6a", "Mixed_6a", IRV2_MIXED_6A)
    for i in range(len(model.repeat_1)):
        layers += _residual(f"repeat_1.{i}", f"Repeat_1/block17_{i + 1}", IRV2_BLOCK17)
    layers += _units("mixed_7a", "Mixed_7a", IRV2_MIXED_7A)
    for i in range(len(model.repeat_2)):
        layers += _residual(f"repeat_2.{i}", f"Repeat_2/block8_{i + 1}", IRV2_BLOCK8)
    layers += _residual("block8", "Block8", IRV2_BLOCK8)
    layers.append(SlimLayer("conv2d_7b", "Conv2d_7b_1x1"))
    layers.append(SlimLayer("classif", "Logits/Logits", "fc"))
    layers += [
        SlimLayer("AuxLogits.conv0", "AuxLogits/Conv2d_1b_1x1", aux=True),
        SlimLayer("AuxLogits.conv1", "AuxLogits/Conv2d_2a_5x5", aux=True),
        SlimLayer("AuxLogits.fc", "AuxLogits/Logits", "fc", aux=True),
    ]
    return layers


# -- Inception-v3 (torchvision / timm layout) ---------------------------------------------------------------
def _v3_block_a(second: bool) -> dict[str, str]:
    """Mixed_5b-5d; Mixed_5c's 5x5 branch carries TF-slim's odd names ``Conv2d_0b_1x1`` / ``Conv_1_0c_5x5``."""
    return {
        "branch1x1": "Branch_0/Conv2d_0a_1x1",
        "branch5x5_1": "Branch_1/Conv2d_0b_1x1" if second else "Branch_1/Conv2d_0a_1x1",
        "branch5x5_2": "Branch_1/Conv_1_0c_5x5" if second else "Branch_1/Conv2d_0b_5x5",
        "branch3x3dbl_1": "Branch_2/Conv2d_0a_1x1",
        "branch3x3dbl_2": "Branch_2/Conv2d_0b_3x3",
        "branch3x3dbl_3": "Branch_2/Conv2d_0c_3x3",
        "branch_pool": "Branch_3/Conv2d_0b_1x1",
    }


V3_MIXED_6A = {
    "branch3x3": "Branch_0/Conv2d_1a_1x1",
    "branch3x3dbl_1": "Branch_1/Conv2d_0a_1x1",
    "branch3x3dbl_2": "Branch_1/Conv2d_0b_3x3",
    "branch3x3dbl_3": "Branch_1/Conv2d_1a_1x1",
}
V3_BLOCK_C = {
    "branch1x1": "Branch_0/Conv2d_0a_1x1",
    "branch7x7_1": "Branch_1/Conv2d_0a_1x1",
    "branch7x7_2": "Branch_1/Conv2d_0b_1x7",
    "branch7x7_3": "Branch_1/Conv2d_0c_7x1",
    "branch7x7dbl_1": "Branch_2/Conv2d_0a_1x1",
    "branch7x7dbl_2": "Branch_2/Conv2d_0b_7x1",
    "branch7x7dbl_3": "Branch_2/Conv2d_0c_1x7",
    "branch7x7dbl_4": "Branch_2/Conv2d_0d_7x1",
    "branch7x7dbl_5": "Branch_2/Conv2d_0e_1x7",
    "branch_pool": "Branch_3/Conv2d_0b_1x1",
}
V3_MIXED_7A = {
    "branch3x3_1": "Branch_0/Conv2d_0a_1x1",
    "branch3x3_2": "Branch_0/Conv2d_1a_3x3",
    "branch7x7x3_1": "Branch_1/Conv2d_0a_1x1",
    "branch7x7x3_2": "Branch_1/Conv2d_0b_1x7",
    "branch7x7x3_3": "Branch_1/Conv2d_0c_7x1",
    "branch7x7x3_4": "Branch_1/Conv2d_1a_3x3",
}


def _v3_block_e(last: bool) -> dict[str, str]:
    """Mixed_7b / 7c; the 3x1 conv of Branch_1 is ``Conv2d_0b_3x1`` in 7b and ``Conv2d_0c_3x1`` in 7c."""
    return {
        "branch1x1": "Branch_0/Conv2d_0a_1x1",
        "branch3x3_1": "Branch_1/Conv2d_0a_1x1",
        "branch3x3_2a": "Branch_1/Conv2d_0b_1x3",
        "branch3x3_2b": "Branch_1/Conv2d_0c_3x1" if last else "Branch_1/Conv2d_0b_3x1",
        "branch3x3dbl_1": "Branch_2/Conv2d_0a_1x1",
        "branch3x3dbl_2": "Branch_2/Conv2d_0b_3x3",
        "branch3x3dbl_3a": "Branch_2/Conv2d_0c_1x3",
        "branch3x3dbl_3b": "Branch_2/Conv2d_0d_3x1",
        "branch_pool": "Branch_3/Conv2d_0b_1x1",
    }


def _inception_v3_layers(model: nn.Module) -> list[SlimLayer]:
    layers = [
        SlimLayer(name, name)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
    ]
    layers += _units("Mixed_5b", "Mixed_5b", _v3_block_a(second=False))
    layers += _units("Mixed_5c", "Mixed_5c", _v3_block_a(second=True))
    layers += _units("Mixed_5d", "Mixed_5d", _v3_block_a(second=False))
    layers += _units("Mixed_6a", "Mixed_6a", V3_MIXED_6A)
    for letter in "bcde":
        layers += _units(f"Mixed_6{letter}", f"Mixed_6{letter}", V3_BLOCK_C)
    layers += _units("Mixed_7a", "Mixed_7a", V3_MIXED_7A)
    layers += _units("Mixed_7b", "Mixed_7b", _v3_block_e(last=False))
    layers += _units("Mixed_7c", "Mixed_7c", _v3_block_e(last=True))
    layers.append(SlimLayer("fc", "Logits/Conv2d_1c_1x1", "fc_conv"))
    layers += [
        SlimLayer("AuxLogits.conv0", "AuxLogits/Conv2d_1b_1x1", aux=True),
        SlimLayer("AuxLogits.conv1", "AuxLogits/Conv2d_2a_5x5", aux=True),
        SlimLayer("AuxLogits.fc", "AuxLogits/Conv2d_2b_1x1", "fc_conv", aux=True),
    ]
    return layers


# model name -> (TF-slim network scope, layer table builder)
NETWORKS: dict[str, tuple[str, Callable[[nn.Module], list[SlimLayer]]]] = {
    "inception_v4": ("InceptionV4", _inception_v4_layers),
    "inception_resnet_v2": ("InceptionResnetV2", _inception_resnet_v2_layers),
    "inception_v3": ("InceptionV3", _inception_v3_layers),
}


def slim_layers(model: nn.Module) -> tuple[str, list[SlimLayer]]:
    """The TF-slim network scope of ``model`` and the scope of each of its weighted modules."""
    name = getattr(model, "model_name", type(model).__name__)
    if name not in NETWORKS:
        raise ValueError(
            f"there is no TF-slim checkpoint layout for {name}; TF-slim checkpoints exist for "
            f"{', '.join(NETWORKS)} (build one of these with create_model)"
        )
    net, build = NETWORKS[name]
    return net, build(model)


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

    ``variables`` maps full TF names to arrays (e.g. :class:`CheckpointVariables`). The auxiliary head is
    included when the checkpoint has it (``load_weights`` drops it for a model without ``aux_logits``).
    Raises a ValueError naming the variables that are missing.
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


class CheckpointVariables(Mapping):
    """The variables of a TF checkpoint as a read-only mapping name -> numpy array, read on access."""

    def __init__(self, reader) -> None:
        self._reader = reader
        self._shapes = reader.get_variable_to_shape_map()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._shapes:
            raise KeyError(name)
        return np.asarray(self._reader.get_tensor(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def checkpoint_prefix(path: str | os.PathLike) -> str:
    """The name TensorFlow's reader takes: the V1 file itself, or the V2 prefix without ``.index``/``.data``."""
    text = str(path)
    if text.endswith(".index"):
        return text[: -len(".index")]
    if ".data-" in Path(text).name:
        return text[: text.rindex(".data-")]
    return text


def import_tensorflow():
    """TensorFlow, imported after torch's compiler stack.

    Loading TensorFlow's native libraries first makes a later import of ``torch._dynamo`` (triton, pulled in
    by ``torch.compile``, the ``meta`` device and the ONNX exporter) crash the process; the other order is
    safe, so this imports ``torch._dynamo`` first.
    """
    import torch._dynamo  # noqa: F401

    try:
        import tensorflow as tf
    except ImportError as err:
        raise MissingDependencyError(TF_INSTALL_HINT) from err
    return tf


def read_checkpoint(path: str | os.PathLike) -> CheckpointVariables:
    """Open a TF checkpoint (V1 ``.ckpt`` file or V2 prefix) with TensorFlow's reader."""
    tf = import_tensorflow()
    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as err:  # TF raises its own error types (DataLossError, NotFoundError...)
        raise ValueError(
            f"{path} could not be read as a TensorFlow checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}); pass the .ckpt file of a released TF-slim model "
            "or the prefix of a V2 checkpoint (the path without .index)"
        ) from err
    return CheckpointVariables(reader)


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
