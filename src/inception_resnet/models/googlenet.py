"""GoogLeNet, i.e. Inception-v1 (Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1 and Fig. 3),
the first network of the family, with its two optional auxiliary classifiers.

Layout and arithmetic follow torchvision's ``googlenet`` (``conv1`` ... ``inception5b``, each block with
``branch1`` to ``branch4``, ``aux1``/``aux2`` with ``conv``, ``fc1``, ``fc2``, classifier ``fc``; BatchNorm
eps 1e-3; ceil-mode max pools), so torchvision's state dict loads key for key and gives its outputs, and the
parameter count is torchvision's (6,624,904 without, 13,004,888 with the auxiliary heads; 1.50 GMACs at
224). Deviations from the paper, all torchvision's (whose pretrained weights are a port of a BatchNorm
re-implementation rather than of the 2014 network):

* BatchNorm after every convolution (the 2014 network had none) and no local response normalisation;
* the "5x5" branch (``branch3``) uses a 3x3 convolution (torchvision issue 906; kept for its weights);
* the auxiliary heads average-pool adaptively to 4x4 (the paper: 5x5 stride 3, the same 4x4 at 224 but with
  other windows) and the main head drops 20% by default (the paper: 40%). torchvision's pretrained weights
  have untrained auxiliary heads.

``transform_input=True`` (default False) re-normalises an ImageNet-normalised input to the (x - 0.5) / 0.5
range torchvision's pretrained ``IMAGENET1K_V1`` weights expect; torchvision switches it on when it loads
those weights, so set it when loading them here. The metadata's mean and std are ImageNet's either way.

In training mode with ``aux_logits=True`` the model returns a :class:`GoogLeNetOutput` (main logits, then
the heads after inception4a and inception4d); the paper weights each auxiliary loss by 0.3
(``aux_loss_weight``). In eval mode, and in TorchScript, it returns the logits alone. The smallest input
that runs, with or without the auxiliary heads, is 15x15 (the ceil-mode pools need a 3x3 grid); smaller
ones raise the zoo's ValueError.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import InceptionNet
from .layers import Mixed, Widths, chain, conv, init_weights
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutput(NamedTuple):
    """Training-mode output with ``aux_logits=True``: main logits, head ``aux1`` (after inception4a) and head
    ``aux2`` (after inception4d). Every field after ``logits`` is an auxiliary output (loss weight 0.3 each).
    """

    logits: torch.Tensor
    aux_logits: torch.Tensor
    aux_logits2: torch.Tensor


def max_pool_ceil(kernel_size: int = 3, stride: int = 2, padding: int = 0) -> nn.MaxPool2d:
    """The ceil-mode max pool GoogLeNet uses everywhere (the Caffe convention torchvision kept)."""
    return nn.MaxPool2d(kernel_size, stride=stride, padding=padding, ceil_mode=True)


def inception(
    cin: int, c: Widths, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int
) -> Mixed:
    """Fig. 2(b) block with the six widths of a Table 1 row: 1x1 | 1x1-3x3 | 1x1-"5x5" | pool-1x1."""
    return Mixed(
        cin,
        {
            "branch1": conv(cin, c(ch1x1)),
            "branch2": chain(conv(cin, c(ch3x3red)), conv(c(ch3x3red), c(ch3x3), 3)),
            "branch3": chain(conv(cin, c(ch5x5red)), conv(c(ch5x5red), c(ch5x5), 3)),
            "branch4": chain(max_pool_ceil(3, 1, 1), conv(cin, c(pool_proj))),
        },
    )


class GoogLeNetAux(nn.Module):
    """Auxiliary classifier (paper section 5): pool to 4x4, 1x1 conv 128, FC 1024 + ReLU, dropout 70%, FC."""

    def __init__(self, in_channels: int, num_classes: int, c: Widths, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = conv(in_channels, c(128))
        self.fc1 = nn.Linear(c(128) * 16, c(1024))
        self.fc2 = nn.Linear(c(1024), num_classes) if num_classes > 0 else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, 4)), 1)
        x = self.dropout(F.relu(self.fc1(x), inplace=True))
        return self.fc2(x)


METADATA = ModelMetadata(
    name="googlenet",
    source="Szegedy et al. 2014 'Going Deeper with Convolutions', Table 1 (torchvision googlenet layout)",
    input_size=(3, 224, 224),
    min_input_size=15,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    crop_pct=0.875,
    interpolation="bilinear",
)


class GoogLeNet(InceptionNet):
    """GoogLeNet (Table 1): 7x7/2 conv, pool, 1x1 + 3x3 conv, pool, 2 blocks (3a-3b), pool, 5 blocks (4a-4e),
    pool, 2 blocks (5a-5b), average pool, dropout, linear; auxiliary heads on 4a and 4d when ``aux_logits``.
    """

    aux_loss_weight = 0.3

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        width_multiplier: float = 1.0,
        aux_logits: bool = False,
        transform_input: bool = False,
    ) -> None:
        super().__init__(metadata=METADATA, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        if transform_input and in_chans != 3:
            raise ValueError(f"googlenet: transform_input needs 3 input channels, got in_chans={in_chans}")
        self.transform_input = transform_input
        scale = torch.tensor([s / 0.5 for s in IMAGENET_STD]).view(1, 3, 1, 1)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN]).view(1, 3, 1, 1)
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)
        c = Widths(width_multiplier)
        self.conv1 = conv(in_chans, c(64), 7, 2, padding=3)
        self.maxpool1 = max_pool_ceil()
        self.conv2 = conv(c(64), c(64))
        self.conv3 = conv(c(64), c(192), 3)
        self.maxpool2 = max_pool_ceil()
        self.inception3a = inception(c(192), c, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(self.inception3a.out_channels, c, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = max_pool_ceil()
        self.inception4a = inception(self.inception3b.out_channels, c, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(self.inception4a.out_channels, c, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(self.inception4b.out_channels, c, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(self.inception4c.out_channels, c, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(self.inception4d.out_channels, c, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = max_pool_ceil(2, 2)
        self.inception5a = inception(self.inception4e.out_channels, c, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(self.inception5a.out_channels, c, 384, 192, 384, 48, 128, 128)
        num_features = self.inception5b.out_channels
        self.feature_info = [
            FeatureInfo("conv1", c(64), 2),
            FeatureInfo("conv3", c(192), 4),
            FeatureInfo("inception3b", self.inception3b.out_channels, 8),
            FeatureInfo("inception4e", self.inception4e.out_channels, 16),
            FeatureInfo("inception5b", num_features, 32),
        ]
        if aux_logits:  # registered before the head, as torchvision does, for the same key order
            self.aux_logits = True
            self.aux1 = GoogLeNetAux(self.inception4a.out_channels, num_classes, c)
            self.aux2 = GoogLeNetAux(self.inception4d.out_channels, num_classes, c)
        self._build_head(num_features, "fc")
        self.set_metadata(extra={"transform_input": transform_input, "aux_loss_weight": self.aux_loss_weight})
        init_weights(self)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised input -> (x - 0.5) / 0.5, per channel (torchvision's ``transform_input``)."""
        return x * self.input_scale.to(x.dtype) + self.input_shift.to(x.dtype)

    def forward_trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Final map and, with ``aux_logits``, the inputs of ``aux1`` (inception4a) and ``aux2`` (4d)."""
        if self.transform_input:
            x = self._transform_input(x)
        x = self.conv3(self.conv2(self.maxpool1(self.conv1(x))))
        x = self.inception3b(self.inception3a(self.maxpool2(x)))
        x = self.inception4a(self.maxpool3(x))
        aux1_input: torch.Tensor | None = x if self.aux_logits else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2_input: torch.Tensor | None = x if self.aux_logits else None
        x = self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x))))
        return x, aux1_input, aux2_input

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.forward_trunk(x)[0], None

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)

    @torch.jit.unused
    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Checked input -> (final map, [aux1 logits, aux2 logits]); the list is empty without aux heads.

        For training loops that pool the final map themselves (``forward_head``) and add
        ``aux_loss_weight`` x the loss of every auxiliary output.
        """
        self.check_input(x)
        features, aux1_input, aux2_input = self.forward_trunk(x)
        if aux1_input is None or aux2_input is None:
            return features, []
        return features, [self.aux1(aux1_input), self.aux2(aux2_input)]

    def forward(self, x: torch.Tensor):
        if self.features_only and not torch.jit.is_scripting():
            return self.forward_intermediates(x, self.feature_indices, stop_early=True, intermediates_only=True)
        if self.training and self.aux_logits and not torch.jit.is_scripting():
            features, aux = self.forward_aux(x)
            return GoogLeNetOutput(self.forward_head(features), aux[0], aux[1])
        self.check_input(x)
        return self.forward_head(self.forward_trunk(x)[0])

    def aux_classifier_names(self) -> list[str]:
        """GoogLeNet's two auxiliary classifiers end in ``aux1.fc2`` and ``aux2.fc2``."""
        return ["aux1.fc2", "aux2.fc2"] if self.aux_logits else []

    def _reset_aux_classifiers(self, num_classes: int) -> None:
        for head in (self.aux1, self.aux2):
            head.fc2 = nn.Linear(head.fc1.out_features, num_classes) if num_classes > 0 else nn.Identity()

    def _aux_head_names(self) -> list[str]:
        return ["aux1", "aux2"] if self.aux_logits else []


register_model("googlenet")(GoogLeNet)
