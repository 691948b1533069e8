"""Where each variable of a released TF-slim checkpoint goes in this package's layout: the table of scopes.

The released checkpoints of Inception-v3, Inception-v4 and Inception-ResNet-v2 (published with TF-slim's model
library) name each variable after the TF-slim scope that created it: ``InceptionV4/Mixed_5b/Branch_1/
Conv2d_0b_3x3/weights``. :func:`slim_layers` lists, for a model, which of its modules each scope fills and
what kind of layer it is (:class:`SlimLayer`); the scope names follow the reference networks of the papers
(Szegedy et al. 2016, "Rethinking the Inception Architecture" and "Inception-v4, Inception-ResNet"), including
TF-slim's irregular ones. :mod:`.tf_slim` converts the variables with this table, both ways. Part of the
``weights/`` layer; see docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn


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
