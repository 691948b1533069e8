"""Inception-ResNet-v2, as released with the authors' ImageNet checkpoint and as drawn in the paper.

``inception_resnet_v2`` follows TF-slim ``inception_resnet_v2`` (checkpoint
``inception_resnet_v2_2016_08_30``; the layout timm, Keras and Cadene use): an Inception-v3-style stem
and Mixed_5b block to 35x35x320, 10 x A (scale 0.17), Reduction-A (k, l, m, n = 256, 256, 384, 384),
20 x B (0.10), Reduction-B, 9 x C (0.20) plus a last C block with scale 1.0 and no ReLU, and a 1x1
convolution to 1536 before pooling. Module names are timm's, so timm's weights load key for key. In both,
``shortcut=False`` removes the identity path of every Inception-ResNet block (the residual study's control).

``inception_resnet_v2_paper`` is the network of the paper's figures: the Inception-v4 stem (Fig 3),
5 x A (Fig 16), Reduction-A (Fig 7), 10 x B (Fig 17), Reduction-B (Fig 18), 5 x C (Fig 19), pooling,
dropout and the classifier. The figures' widths do not add up (Fig 17 prints 1154 and Fig 19 2048 for
the up-projections, where the concatenations give 1152 and 2144); we use the self-consistent 1152 and
2144. No Mixed_5b, no 1536 projection, no unscaled last block and no auxiliary head (those belong to
the released network, ``inception_resnet_v2``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import InceptionNet
from .inception_resnet_blocks import ResidualWidths, block8, residual_stages
from .inception_resnet_v1 import InceptionResNetStem
from .inception_v4 import stem
from .layers import Mixed, Widths, avg_pool_same, chain, conv, init_weights, max_pool_reduce
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model

# Widths of the v2 blocks (Figs 16-19; TF-slim block35 / block17 / block8 / Mixed_7a) and Reduction-A (Fig 7).
WIDTHS = ResidualWidths(
    block_a={"b0": 32, "b1": (32, 32), "b2": (32, 48, 64)},
    block_b={"b0": 192, "b1": (128, 160, 192)},
    block_c={"b0": 192, "b1": (192, 224, 256)},
    reduction_a={"k": 256, "l": 256, "m": 384, "n": 384},
    reduction_b={"b0": 384, "b1": 288, "b2": (288, 320)},
)
RELEASED_SCALES = (0.17, 0.10, 0.20)


def mixed_5b(cin: int, c: Widths) -> Mixed:
    """The released network's Inception-v3-style A block: 96 | 48 -> 5x5 64 | 64 -> 96 -> 96 | pool -> 64."""
    return Mixed(
        cin,
        {
            "branch0": conv(cin, c(96)),
            "branch1": chain(conv(cin, c(48)), conv(c(48), c(64), 5)),
            "branch2": chain(conv(cin, c(64)), conv(c(64), c(96), 3), conv(c(96), c(96), 3)),
            "branch3": chain(avg_pool_same(), conv(cin, c(64))),
        },
    )


RELEASED_METADATA = ModelMetadata(
    name="inception_resnet_v2",
    source="TF-slim inception_resnet_v2 as released (checkpoint 2016_08_30; timm/Keras layout)",
    crop_pct=0.8975,
)


class InceptionResNetV2(InceptionResNetStem):
    """Inception-ResNet-v2 as released (TF-slim ``inception_resnet_v2``; timm layout)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        width_multiplier: float = 1.0,
        aux_logits: bool = False,
        residual_scale: float | Sequence[float] = RELEASED_SCALES,
        blocks: tuple[int, int, int] = (10, 20, 10),
        shortcut: bool = True,
    ) -> None:
        super().__init__(metadata=RELEASED_METADATA, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        if blocks[2] < 1:
            raise ValueError(f"blocks[2] must be at least 1 (the last Block C is the unactivated one), got {blocks[2]}")
        c = Widths(width_multiplier)
        stem_channels = self._build_stem(in_chans, c)
        self.maxpool_5a = max_pool_reduce()
        self.mixed_5b = mixed_5b(stem_channels, c)
        # the last C block is the unscaled, unactivated block8 below
        stages = residual_stages(
            self.mixed_5b.out_channels, c, WIDTHS, residual_scale, (blocks[0], blocks[1], blocks[2] - 1), shortcut
        )
        self.repeat, self.mixed_6a, self.repeat_1, self.mixed_7a, self.repeat_2 = stages
        cin_a, aux_channels, cin = stages.channels
        self.block8 = block8(cin, c, **WIDTHS.block_c, scale=1.0, activate=False, shortcut=shortcut)
        self.conv2d_7b = conv(cin, c(1536))
        self.feature_info = [
            FeatureInfo("conv2d_2b", c(64), 2),
            FeatureInfo("conv2d_4a", c(192), 4),
            FeatureInfo("repeat", cin_a, 8),
            FeatureInfo("repeat_1", aux_channels, 16),
            FeatureInfo("conv2d_7b", c(1536), 32),
        ]
        self._build_head(c(1536), "classif", aux_channels if aux_logits else 0)
        init_weights(self)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.forward_stem(x)
        x = self.maxpool_5a(x)
        x = self.mixed_5b(x)
        x = self.repeat(x)
        x = self.mixed_6a(x)
        x = self.repeat_1(x)
        aux_input: torch.Tensor | None = x if self.aux_logits else None
        x = self.mixed_7a(x)
        x = self.repeat_2(x)
        x = self.block8(x)
        return self.conv2d_7b(x), aux_input

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classif(x)


PAPER_METADATA = ModelMetadata(
    name="inception_resnet_v2_paper",
    source="Szegedy et al. 2016 Figs 3, 7, 15-19 as drawn (widths made self-consistent: 1152, 2144)",
    crop_pct=0.875,
)


class InceptionResNetV2Paper(InceptionNet):
    """Inception-ResNet-v2 as drawn in the paper (Fig 15 with Figs 3, 16, 7, 17, 18, 19)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        width_multiplier: float = 1.0,
        residual_scale: float | Sequence[float] = RELEASED_SCALES,
        blocks: tuple[int, int, int] = (5, 10, 5),
        shortcut: bool = True,
    ) -> None:
        super().__init__(metadata=PAPER_METADATA, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        c = Widths(width_multiplier)
        self.stem = nn.Sequential(*stem(in_chans, c))
        stages = residual_stages(self.stem[-1].out_channels, c, WIDTHS, residual_scale, blocks, shortcut)
        self.repeat, self.mixed_6a, self.repeat_1, self.mixed_7a, self.repeat_2 = stages
        cin_a, cin_b, cin_c = stages.channels
        self.feature_info = [
            FeatureInfo("stem.2", self.stem[2].out_channels, 2),
            FeatureInfo("stem.3", self.stem[3].out_channels, 4),
            FeatureInfo("repeat", cin_a, 8),
            FeatureInfo("repeat_1", cin_b, 16),
            FeatureInfo("repeat_2", cin_c, 32),
        ]
        self._build_head(cin_c, "classif")
        init_weights(self)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.stem(x)
        x = self.repeat(x)
        x = self.mixed_6a(x)
        x = self.repeat_1(x)
        x = self.mixed_7a(x)
        return self.repeat_2(x), None

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classif(x)


register_model("inception_resnet_v2")(InceptionResNetV2)
register_model("inception_resnet_v2_paper")(InceptionResNetV2Paper)
