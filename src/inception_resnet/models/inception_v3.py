"""Inception-v3 (Szegedy et al., "Rethinking the Inception Architecture", 2015): the paper's non-residual
baseline for Inception-ResNet-v1.

Module names and arithmetic follow torchvision's and timm's ``inception_v3`` (``Conv2d_1a_3x3`` ...
``Mixed_7c``, ``AuxLogits``, ``fc``), so both libraries' weights load key for key and give their outputs;
in particular the pool branch averages over the padding (``count_include_pad=True``), as those libraries
do, where TF-slim's SAME pooling would not. The auxiliary head (``aux_logits=True``) is torchvision's.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import InceptionNet
from .layers import Widths, avg_pool_same, conv, init_weights, max_pool_reduce
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-5d): 1x1 64 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | pool -> 1x1."""

    def __init__(self, cin: int, pool_features: int, c: Widths) -> None:
        super().__init__()
        self.branch1x1 = conv(cin, c(64))
        self.branch5x5_1 = conv(cin, c(48))
        self.branch5x5_2 = conv(c(48), c(64), 5)
        self.branch3x3dbl_1 = conv(cin, c(64))
        self.branch3x3dbl_2 = conv(c(64), c(96), 3)
        self.branch3x3dbl_3 = conv(c(96), c(96), 3)
        self.pool = avg_pool_same(count_include_pad=True)
        self.branch_pool = conv(cin, c(pool_features))
        self.out_channels = c(64) + c(64) + c(96) + c(pool_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(self.pool(x)),
            ],
            1,
        )


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction (Mixed_6a): 3x3/2 384 | 1x1 64 -> 3x3 96 -> 3x3/2 96 | max-pool."""

    def __init__(self, cin: int, c: Widths) -> None:
        super().__init__()
        self.branch3x3 = conv(cin, c(384), 3, 2)
        self.branch3x3dbl_1 = conv(cin, c(64))
        self.branch3x3dbl_2 = conv(c(64), c(96), 3)
        self.branch3x3dbl_3 = conv(c(96), c(96), 3, 2)
        self.pool = max_pool_reduce()
        self.out_channels = c(384) + c(96) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.pool(x),
            ],
            1,
        )


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b-6e) with factorised 7x7 convolutions of width ``c7``."""

    def __init__(self, cin: int, c7: int, c: Widths) -> None:
        super().__init__()
        c7 = c(c7)
        self.branch1x1 = conv(cin, c(192))
        self.branch7x7_1 = conv(cin, c7)
        self.branch7x7_2 = conv(c7, c7, (1, 7))
        self.branch7x7_3 = conv(c7, c(192), (7, 1))
        self.branch7x7dbl_1 = conv(cin, c7)
        self.branch7x7dbl_2 = conv(c7, c7, (7, 1))
        self.branch7x7dbl_3 = conv(c7, c7, (1, 7))
        self.branch7x7dbl_4 = conv(c7, c7, (7, 1))
        self.branch7x7dbl_5 = conv(c7, c(192), (1, 7))
        self.pool = avg_pool_same(count_include_pad=True)
        self.branch_pool = conv(cin, c(192))
        self.out_channels = 4 * c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
        d = self.branch7x7dbl_5(self.branch7x7dbl_4(d))
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(self.pool(x))], 1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction (Mixed_7a): 1x1 192 -> 3x3/2 320 | 1x1 192 -> 1x7 -> 7x1 -> 3x3/2 192 | pool."""

    def __init__(self, cin: int, c: Widths) -> None:
        super().__init__()
        self.branch3x3_1 = conv(cin, c(192))
        self.branch3x3_2 = conv(c(192), c(320), 3, 2)
        self.branch7x7x3_1 = conv(cin, c(192))
        self.branch7x7x3_2 = conv(c(192), c(192), (1, 7))
        self.branch7x7x3_3 = conv(c(192), c(192), (7, 1))
        self.branch7x7x3_4 = conv(c(192), c(192), 3, 2)
        self.pool = max_pool_reduce()
        self.out_channels = c(320) + c(192) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, self.pool(x)], 1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, 7c) with expanded filter banks: forks of 1x3 and 3x1 convolutions."""

    def __init__(self, cin: int, c: Widths) -> None:
        super().__init__()
        self.branch1x1 = conv(cin, c(320))
        self.branch3x3_1 = conv(cin, c(384))
        self.branch3x3_2a = conv(c(384), c(384), (1, 3))
        self.branch3x3_2b = conv(c(384), c(384), (3, 1))
        self.branch3x3dbl_1 = conv(cin, c(448))
        self.branch3x3dbl_2 = conv(c(448), c(384), 3)
        self.branch3x3dbl_3a = conv(c(384), c(384), (1, 3))
        self.branch3x3dbl_3b = conv(c(384), c(384), (3, 1))
        self.pool = avg_pool_same(count_include_pad=True)
        self.branch_pool = conv(cin, c(192))
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(self.pool(x)),
            ],
            1,
        )


METADATA = ModelMetadata(
    name="inception_v3",
    source="Szegedy et al. 2015 'Rethinking the Inception Architecture' (torchvision/timm layout)",
    crop_pct=0.875,
)


class InceptionV3(InceptionNet):
    """Inception-v3: stem, 3 x A (Mixed_5b-5d), reduction, 4 x C (Mixed_6b-6e), reduction, 2 x E."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        width_multiplier: float = 1.0,
        aux_logits: bool = False,
    ) -> None:
        super().__init__(metadata=METADATA, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        c = Widths(width_multiplier)
        self.Conv2d_1a_3x3 = conv(in_chans, c(32), 3, 2)
        self.Conv2d_2a_3x3 = conv(c(32), c(32), 3, padding="valid")
        self.Conv2d_2b_3x3 = conv(c(32), c(64), 3)
        self.Pool1 = max_pool_reduce()
        self.Conv2d_3b_1x1 = conv(c(64), c(80))
        self.Conv2d_4a_3x3 = conv(c(80), c(192), 3, padding="valid")
        self.Pool2 = max_pool_reduce()
        self.Mixed_5b = InceptionA(c(192), 32, c)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, 64, c)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, 64, c)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, c)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, 128, c)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, 160, c)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, 160, c)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, 192, c)
        cin = self.Mixed_6e.out_channels
        self.Mixed_7a = InceptionD(cin, c)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, c)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, c)
        num_features = self.Mixed_7c.out_channels
        self.feature_info = [
            FeatureInfo("Conv2d_2b_3x3", c(64), 2),
            FeatureInfo("Conv2d_4a_3x3", c(192), 4),
            FeatureInfo("Mixed_5d", self.Mixed_5d.out_channels, 8),
            FeatureInfo("Mixed_6e", cin, 16),
            FeatureInfo("Mixed_7c", num_features, 32),
        ]
        self._build_head(num_features, "fc", cin if aux_logits else 0)
        init_weights(self)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.Conv2d_1a_3x3(x)
        x = self.Conv2d_2a_3x3(x)
        x = self.Conv2d_2b_3x3(x)
        x = self.Pool1(x)
        x = self.Conv2d_3b_1x1(x)
        x = self.Conv2d_4a_3x3(x)
        x = self.Pool2(x)
        x = self.Mixed_5b(x)
        x = self.Mixed_5c(x)
        x = self.Mixed_5d(x)
        x = self.Mixed_6a(x)
        x = self.Mixed_6b(x)
        x = self.Mixed_6c(x)
        x = self.Mixed_6d(x)
        x = self.Mixed_6e(x)
        aux_input: torch.Tensor | None = x if self.aux_logits else None
        x = self.Mixed_7a(x)
        x = self.Mixed_7b(x)
        x = self.Mixed_7c(x)
        return x, aux_input

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


register_model("inception_v3")(InceptionV3)
