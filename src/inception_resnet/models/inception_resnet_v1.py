"""Inception-ResNet-v1 (Szegedy et al. 2016, Figs 7, 10-15): the residual partner of Inception-v3.

Stem of Fig 14 (to 35x35x256), 5 x Inception-ResNet-A (Fig 10, scale 0.17), Reduction-A (Fig 7 with
k, l, m, n = 192, 192, 256, 384), 10 x B (Fig 11, 0.10), Reduction-B (Fig 12), 5 x C (Fig 13, 0.20),
average pooling, dropout (keep 0.8) and a 1792 -> classes linear layer. Google released no checkpoint;
module names follow facenet-pytorch's port of the same body (``conv2d_1a`` ... ``repeat_1/2/3``), whose
face-recognition variant (a sixth, unscaled C block and a 512-d embedding) is a separate model.
``shortcut=False`` removes the identity path of every block (the residual study's control).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import InceptionNet
from .inception_resnet_blocks import ResidualWidths, residual_stages
from .layers import Widths, conv, init_weights, max_pool_reduce
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model

# Widths of the v1 blocks (Figs 10-13; facenet's block35 / block17 / block8 / Mixed_7a) and Reduction-A (Fig 7).
WIDTHS = ResidualWidths(
    block_a={"b0": 32, "b1": (32, 32), "b2": (32, 32, 32)},
    block_b={"b0": 128, "b1": (128, 128, 128)},
    block_c={"b0": 192, "b1": (192, 192, 192)},
    reduction_a={"k": 192, "l": 192, "m": 256, "n": 384},
    reduction_b={"b0": 384, "b1": 256, "b2": (256, 256)},
)
SCALES = (0.17, 0.10, 0.20)

METADATA = ModelMetadata(
    name="inception_resnet_v1",
    source="Szegedy et al. 2016 Figs 7, 10-15 (5/10/5 blocks; facenet-pytorch module names)",
    crop_pct=0.875,
)


class InceptionResNetStem(InceptionNet):
    """Base of Inception-ResNet-v1 and the released -v2: the stem layers the two share (Fig 14's first six).

    3x3/2 32, 3x3 32, 3x3 64, max-pool, 1x1 80, 3x3 192 (TF-slim ``Conv2d_1a_3x3`` ... ``Conv2d_4a_3x3``,
    timm's and facenet's ``conv2d_1a`` ... ``conv2d_4a``), ending at 71x71 for a 299 input.
    """

    def _build_stem(self, in_chans: int, c: Widths) -> int:
        self.conv2d_1a = conv(in_chans, c(32), 3, 2)
        self.conv2d_2a = conv(c(32), c(32), 3, padding="valid")
        self.conv2d_2b = conv(c(32), c(64), 3)
        self.maxpool_3a = max_pool_reduce()
        self.conv2d_3b = conv(c(64), c(80))
        self.conv2d_4a = conv(c(80), c(192), 3, padding="valid")
        return c(192)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_1a(x)
        x = self.conv2d_2a(x)
        x = self.conv2d_2b(x)
        x = self.maxpool_3a(x)
        x = self.conv2d_3b(x)
        return self.conv2d_4a(x)


class InceptionResNetV1(InceptionResNetStem):
    """Inception-ResNet-v1 as drawn in the paper: 5 A, 10 B, 5 C blocks and 1792 features."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        width_multiplier: float = 1.0,
        residual_scale: float | Sequence[float] = SCALES,
        blocks: tuple[int, int, int] = (5, 10, 5),
        metadata: ModelMetadata = METADATA,
        shortcut: bool = True,
    ) -> None:
        super().__init__(metadata=metadata, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        c = Widths(width_multiplier)
        self.conv2d_4b = conv(self._build_stem(in_chans, c), c(256), 3, 2)
        stages = residual_stages(c(256), c, WIDTHS, residual_scale, blocks, shortcut)
        self.repeat_1, self.mixed_6a, self.repeat_2, self.mixed_7a, self.repeat_3 = stages
        cin_a, cin_b, cin_c = stages.channels
        self.widths = c
        self.feature_info = [
            FeatureInfo("conv2d_2b", c(64), 2),
            FeatureInfo("conv2d_4a", c(192), 4),
            FeatureInfo("repeat_1", cin_a, 8),
            FeatureInfo("repeat_2", cin_b, 16),
            FeatureInfo("repeat_3", cin_c, 32),
        ]
        self._build_head(cin_c, "classif")
        init_weights(self)

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, the A, B and C blocks and the two reductions (what the facenet variant builds on)."""
        x = self.forward_stem(x)
        x = self.conv2d_4b(x)
        x = self.repeat_1(x)
        x = self.mixed_6a(x)
        x = self.repeat_2(x)
        x = self.mixed_7a(x)
        return self.repeat_3(x)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.forward_blocks(x), None

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classif(x)


register_model("inception_resnet_v1")(InceptionResNetV1)
