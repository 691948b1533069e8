"""Inception-v4 (Szegedy et al. 2016, Figs 3-9), in the released order of the asymmetric convolutions.

Follows TF-slim ``inception_v4`` and the checkpoint ``inception_v4_2016_09_09``; the module layout is
timm's (``features.0`` ... ``features.21``, ``last_linear``), so timm's weights load key for key.
Deviations from the figures as printed (they follow TF-slim and the released weights): the stem's right
branch is 1x7 then 7x1; Inception-B's five-conv branch starts with 7x1; Inception-C's deep branch is
3x1 448 then 1x3 512; the stem's last 3x3 conv has stride 2 (needed to reach 35x35). The auxiliary head
(``aux_logits=True``) is TF-slim's, on the 17x17 grid; the paper does not describe one.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import InceptionNet
from .layers import Mixed, Widths, avg_pool_same, chain, conv, init_weights, max_pool_reduce
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model


def stem(in_chans: int, c: Widths) -> list[nn.Module]:
    """Fig 3: 299x299x3 -> 35x35x384, as six modules (timm ``features.0`` to ``features.5``)."""
    conv1a = conv(in_chans, c(32), 3, 2)
    conv2a = conv(c(32), c(32), 3, padding="valid")
    conv2b = conv(c(32), c(64), 3)
    mixed_3a = Mixed(c(64), {"maxpool": max_pool_reduce(), "conv": conv(c(64), c(96), 3, 2)})
    cin = mixed_3a.out_channels
    mixed_4a = Mixed(
        cin,
        {
            "branch0": chain(conv(cin, c(64)), conv(c(64), c(96), 3, padding="valid")),
            "branch1": chain(
                conv(cin, c(64)),
                conv(c(64), c(64), (1, 7)),
                conv(c(64), c(64), (7, 1)),
                conv(c(64), c(96), 3, padding="valid"),
            ),
        },
    )
    cin = mixed_4a.out_channels
    mixed_5a = Mixed(cin, {"conv": conv(cin, c(192), 3, 2), "maxpool": max_pool_reduce()})
    return [conv1a, conv2a, conv2b, mixed_3a, mixed_4a, mixed_5a]


def inception_a(cin: int, c: Widths) -> Mixed:
    """Fig 4: 35x35 block, 96 | 64-96 | 64-96-96 | avgpool-96."""
    return Mixed(
        cin,
        {
            "branch0": conv(cin, c(96)),
            "branch1": chain(conv(cin, c(64)), conv(c(64), c(96), 3)),
            "branch2": chain(conv(cin, c(64)), conv(c(64), c(96), 3), conv(c(96), c(96), 3)),
            "branch3": chain(avg_pool_same(), conv(cin, c(96))),
        },
    )


def reduction_a(cin: int, c: Widths, k: int, l: int, m: int, n: int) -> Mixed:
    """Fig 7: 35x35 -> 17x17, with the k, l, m, n of the paper's Table 1."""
    return Mixed(
        cin,
        {
            "branch0": conv(cin, c(n), 3, 2),
            "branch1": chain(conv(cin, c(k)), conv(c(k), c(l), 3), conv(c(l), c(m), 3, 2)),
            "branch2": max_pool_reduce(),
        },
    )


def inception_b(cin: int, c: Widths) -> Mixed:
    """Fig 5: 17x17 block, 384 | 192-1x7 224-7x1 256 | 192-7x1 192-1x7 224-7x1 224-1x7 256 | avgpool-128."""
    return Mixed(
        cin,
        {
            "branch0": conv(cin, c(384)),
            "branch1": chain(conv(cin, c(192)), conv(c(192), c(224), (1, 7)), conv(c(224), c(256), (7, 1))),
            "branch2": chain(
                conv(cin, c(192)),
                conv(c(192), c(192), (7, 1)),
                conv(c(192), c(224), (1, 7)),
                conv(c(224), c(224), (7, 1)),
                conv(c(224), c(256), (1, 7)),
            ),
            "branch3": chain(avg_pool_same(), conv(cin, c(128))),
        },
    )


def reduction_b(cin: int, c: Widths) -> Mixed:
    """Fig 8: 17x17 -> 8x8, 192-3x3s2 192 | 256-1x7 256-7x1 320-3x3s2 320 | maxpool."""
    return Mixed(
        cin,
        {
            "branch0": chain(conv(cin, c(192)), conv(c(192), c(192), 3, 2)),
            "branch1": chain(
                conv(cin, c(256)),
                conv(c(256), c(256), (1, 7)),
                conv(c(256), c(320), (7, 1)),
                conv(c(320), c(320), 3, 2),
            ),
            "branch2": max_pool_reduce(),
        },
    )


class InceptionC(nn.Module):
    """Fig 6: 8x8 block whose second and third branches end in a fork of 1x3 and 3x1 (timm's flat names)."""

    def __init__(self, cin: int, c: Widths) -> None:
        super().__init__()
        self.branch0 = conv(cin, c(256))
        self.branch1_0 = conv(cin, c(384))
        self.branch1_1a = conv(c(384), c(256), (1, 3))
        self.branch1_1b = conv(c(384), c(256), (3, 1))
        self.branch2_0 = conv(cin, c(384))
        self.branch2_1 = conv(c(384), c(448), (3, 1))
        self.branch2_2 = conv(c(448), c(512), (1, 3))
        self.branch2_3a = conv(c(512), c(256), (1, 3))
        self.branch2_3b = conv(c(512), c(256), (3, 1))
        self.branch3 = chain(avg_pool_same(), conv(cin, c(256)))
        self.out_channels = c(256) * 5 + c(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.branch0(x)
        x1 = self.branch1_0(x)
        x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                x0,
                self.branch1_1a(x1),
                self.branch1_1b(x1),
                self.branch2_3a(x2),
                self.branch2_3b(x2),
                self.branch3(x),
            ],
            1,
        )


METADATA = ModelMetadata(
    name="inception_v4",
    source="Szegedy et al. 2016 Figs 3-9, released order (TF-slim inception_v4; timm layout)",
    crop_pct=0.875,
)


class InceptionV4(InceptionNet):
    """Inception-v4 (Fig 9): stem, 4 x A, Reduction-A, 7 x B, Reduction-B, 3 x C, pool, dropout, FC."""

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
        layers = stem(in_chans, c)
        for _ in range(4):
            layers.append(inception_a(layers[-1].out_channels, c))
        layers.append(reduction_a(layers[-1].out_channels, c, k=192, l=224, m=256, n=384))
        for _ in range(7):
            layers.append(inception_b(layers[-1].out_channels, c))
        self.aux_index = len(layers) - 1  # features.17, TF-slim's Mixed_6h
        aux_channels = layers[-1].out_channels
        layers.append(reduction_b(layers[-1].out_channels, c))
        for _ in range(3):
            layers.append(InceptionC(layers[-1].out_channels, c))
        cin = layers[-1].out_channels
        self.features = nn.Sequential(*layers)
        self.feature_info = [
            FeatureInfo("features.2", layers[2].out_channels, 2),
            FeatureInfo("features.3", layers[3].out_channels, 4),
            FeatureInfo("features.9", layers[9].out_channels, 8),
            FeatureInfo("features.17", layers[17].out_channels, 16),
            FeatureInfo("features.21", cin, 32),
        ]
        self._build_head(cin, "last_linear", aux_channels if aux_logits else 0)
        init_weights(self)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux_input: torch.Tensor | None = None
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.aux_index and self.aux_logits:
                aux_input = x
        return x, aux_input

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_linear(x)


register_model("inception_v4")(InceptionV4)
