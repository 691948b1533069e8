"""BN-Inception, a.k.a. Inception-v2 (Ioffe and Szegedy 2015, "Batch Normalization", appendix Figure 5):
the first row of the Inception-v4 paper's Table 2 (25.2% / 7.8% single-crop error).

Figure 5 changes GoogLeNet by putting BatchNorm after every convolution, replacing each 5x5 convolution by
two 3x3 (the "double 3x3" branch), using three 28x28 blocks instead of two, mixing average and max pooling
inside the blocks, and reducing the grid inside blocks 3c and 4e (stride-2 convolutions next to a stride-2
max pool whose output passes through unprojected) instead of between blocks.

Source of every width: the per-branch columns of Figure 5 (#1x1, #3x3 reduce, #3x3, double #3x3 reduce,
double #3x3, pool + proj), copied into :data:`BLOCKS` row by row, and the stem rows (7x7/2 conv 64, 1x1 conv
64 = the "#3x3 reduce" of the 3x3 row, 3x3 conv 192). The widths after 4c, 4d and 4e follow from the
branches: 608, 608 and 1056 channels, where the Figure's output-size column, as usually transcribed, gives
576, 576 and 1024. The Caffe-converted network has the branch widths, and so do we.

Key layout: the Caffe-converted model of Cadene's pretrained-models (``pretrainedmodels.models.bninception``,
weights ``bn_inception-52deb4733.pth``): its flat names (``conv1_7x7_s2``, ``conv1_7x7_s2_bn``,
``inception_3a_1x1``, ``inception_3a_double_3x3_reduce_bn``, ..., ``last_linear``) are exactly our state-dict
keys, and its arithmetic is ours: convolutions with bias, BatchNorm eps 1e-5, ceil-mode max pools, average
pools over the padding. The module tree is ours (one module per block, e.g. ``inception_3a._1x1.conv``), so
the model is built from small blocks and has feature taps; :meth:`BNInception.state_dict` and
``load_state_dict`` translate between the two spellings (nested keys also load).
Parameters: 11,295,240 with the 1000-class classifier (10,270,240 in the body), as in Cadene's model;
2.03 GMACs at 224. The smallest input that runs is 7x7; smaller ones raise the zoo's ValueError.

Deviations from Cadene's model, none of which changes an output it can produce: the final 7x7 average pool
is a global (adaptive) one, so inputs other than 224 work; where Cadene's model fails on an odd grid
entering 3c or 4e (e.g. at 220: its stride-2 convolution gives 14, its ceil-mode pool 13), the pool first
pads the bottom/right edge; ``drop_rate`` (Cadene: none; the paper removed dropout, so pass
``drop_rate=0`` to follow it) applies before the classifier. Deviations from the paper: the first convolution
is a plain 7x7 (the paper's appendix makes it separable, depth multiplier 8; the Caffe model's is plain);
no auxiliary classifier (the Caffe model has none).

Preprocessing of Cadene's weights (Caffe style): BGR channel order, range 0-255, mean (104, 117, 128) in
BGR order, std 1. The metadata states it as RGB mean (128, 117, 104) / 255 and std 1 / 255 on [0, 1]
images, followed by a channel reversal (``extra["input_space"] == "BGR"``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import InceptionNet
from .layers import Widths, init_weights
from .metadata import FeatureInfo, ModelMetadata
from .registry import register_model

CAFFE_BN_EPS = 1e-5  # PyTorch's default, kept by the Caffe conversion (the zoo's TF-derived nets use 1e-3)


class CaffeConvBNReLU(nn.Module):
    """Conv2d with bias -> BatchNorm2d (eps 1e-5) -> ReLU, the unit of the Caffe-converted BN-Inception.

    Children ``conv``/``bn``/``act`` as in :class:`~inception_resnet.models.layers.ConvBNReLU`; the block holding
    it names it after the Caffe layer with a leading underscore (``_3x3_reduce``), which the key translation
    turns into ``<block>_3x3_reduce`` and ``<block>_3x3_reduce_bn``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=CAFFE_BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ReductionPool(nn.Module):
    """3x3 stride-2 ceil-mode max pool beside the stride-2 convolutions of 3c and 4e.

    On an even grid this is Cadene's pool exactly (n -> n/2, as the padded stride-2 convolutions). On an odd
    grid the bare pool would give (n - 1)/2 against the convolutions' (n + 1)/2, so the grid is first padded
    by one row/column of -inf at the bottom/right, which makes the sizes agree and never wins the max.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_w = x.shape[-1] % 2
        pad_h = x.shape[-2] % 2
        if pad_w + pad_h > 0:
            x = F.pad(x, [0, pad_w, 0, pad_h], value=float("-inf"))
        return F.max_pool2d(x, 3, stride=2, ceil_mode=True)


class Row(NamedTuple):
    """One Inception row of Figure 5 (#1x1 is 0 and ``pool`` is "max" + pass-through in 3c and 4e)."""

    name: str
    n1x1: int
    n3x3_reduce: int
    n3x3: int
    double_reduce: int
    double: int
    pool: str
    pool_proj: int


#: Figure 5 of Ioffe and Szegedy 2015, one line per Inception row, columns as printed.
BLOCKS: tuple[Row, ...] = (
    Row("inception_3a", 64, 64, 64, 64, 96, "avg", 32),
    Row("inception_3b", 64, 64, 96, 64, 96, "avg", 64),
    Row("inception_3c", 0, 128, 160, 64, 96, "max", 0),
    Row("inception_4a", 224, 64, 96, 96, 128, "avg", 128),
    Row("inception_4b", 192, 96, 128, 96, 128, "avg", 128),
    Row("inception_4c", 160, 128, 160, 128, 160, "avg", 128),
    Row("inception_4d", 96, 128, 192, 160, 192, "avg", 128),
    Row("inception_4e", 0, 128, 192, 192, 256, "max", 0),
    Row("inception_5a", 352, 192, 320, 160, 224, "avg", 128),
    Row("inception_5b", 352, 192, 320, 192, 224, "max", 128),
)


class InceptionBlock(nn.Module):
    """A stride-1 block: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | avg or max pool 3x3 - 1x1 projection (Figure 5)."""

    def __init__(self, cin: int, row: Row, c: Widths) -> None:
        super().__init__()
        self._1x1 = CaffeConvBNReLU(cin, c(row.n1x1))
        self._3x3_reduce = CaffeConvBNReLU(cin, c(row.n3x3_reduce))
        self._3x3 = CaffeConvBNReLU(c(row.n3x3_reduce), c(row.n3x3), 3)
        self._double_3x3_reduce = CaffeConvBNReLU(cin, c(row.double_reduce))
        self._double_3x3_1 = CaffeConvBNReLU(c(row.double_reduce), c(row.double), 3)
        self._double_3x3_2 = CaffeConvBNReLU(c(row.double), c(row.double), 3)
        if row.pool == "avg":
            self.pool: nn.Module = nn.AvgPool2d(3, 1, padding=1, ceil_mode=True, count_include_pad=True)
        else:
            self.pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self._pool_proj = CaffeConvBNReLU(cin, c(row.pool_proj))
        self.out_channels = c(row.n1x1) + c(row.n3x3) + c(row.double) + c(row.pool_proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self._1x1(x),
                self._3x3(self._3x3_reduce(x)),
                self._double_3x3_2(self._double_3x3_1(self._double_3x3_reduce(x))),
                self._pool_proj(self.pool(x)),
            ],
            1,
        )


class ReductionBlock(nn.Module):
    """Blocks 3c and 4e: 1x1-3x3/2 | 1x1-3x3-3x3/2 | max pool 3x3/2 passed through (Figure 5, "stride 2")."""

    def __init__(self, cin: int, row: Row, c: Widths) -> None:
        super().__init__()
        self._3x3_reduce = CaffeConvBNReLU(cin, c(row.n3x3_reduce))
        self._3x3 = CaffeConvBNReLU(c(row.n3x3_reduce), c(row.n3x3), 3, stride=2)
        self._double_3x3_reduce = CaffeConvBNReLU(cin, c(row.double_reduce))
        self._double_3x3_1 = CaffeConvBNReLU(c(row.double_reduce), c(row.double), 3)
        self._double_3x3_2 = CaffeConvBNReLU(c(row.double), c(row.double), 3, stride=2)
        self.pool = ReductionPool()
        self.out_channels = c(row.n3x3) + c(row.double) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self._3x3(self._3x3_reduce(x)),
                self._double_3x3_2(self._double_3x3_1(self._double_3x3_reduce(x))),
                self.pool(x),
            ],
            1,
        )


def stem_unit(**units: CaffeConvBNReLU) -> nn.Sequential:
    """Stem convolutions applied in turn, named after their Caffe layers (``conv2._3x3_reduce``...)."""
    return nn.Sequential(OrderedDict(units))


def caffe_key_table(model: nn.Module) -> dict[str, str]:
    """Module path of each conv and BN -> its flat Caffe name (``inception_3a._1x1.bn`` -> ``..._1x1_bn``)."""
    table: dict[str, str] = {}
    for path, module in model.named_modules():
        if isinstance(module, CaffeConvBNReLU):
            block, unit = path.rsplit(".", 1)
            table[path + ".conv"] = block + unit
            table[path + ".bn"] = block + unit + "_bn"
    return table


def _rename_keys(state_dict: dict[str, Any], prefix: str, table: dict[str, str]) -> None:
    """Rename, in place and in order, the keys under ``prefix`` whose module path is in ``table``."""
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        if key.startswith(prefix):
            path, _, leaf = key[len(prefix) :].rpartition(".")
            if path in table:
                key = prefix + table[path] + "." + leaf
        state_dict[key] = value


def _to_caffe_keys(module: BNInception, state_dict: dict[str, Any], prefix: str, _metadata: Any) -> None:
    _rename_keys(state_dict, prefix, module.caffe_keys)


def _from_caffe_keys(module: BNInception, state_dict: dict[str, Any], prefix: str, *_args: Any) -> None:
    _rename_keys(state_dict, prefix, {flat: path for path, flat in module.caffe_keys.items()})


METADATA = ModelMetadata(
    name="bn_inception",
    source="Ioffe & Szegedy 2015 'Batch Normalization' Fig. 5 (Caffe-converted layout, Cadene's bninception)",
    input_size=(3, 224, 224),
    min_input_size=7,
    mean=(128 / 255, 117 / 255, 104 / 255),
    std=(1 / 255, 1 / 255, 1 / 255),
    crop_pct=0.875,
    interpolation="bilinear",
    extra={
        "input_space": "BGR",
        "input_range": (0, 255),
        "caffe_mean_bgr": (104, 117, 128),
        "caffe_std": (1, 1, 1),
        "note": "Cadene's weights take BGR 0-255 images minus the BGR mean: normalise RGB [0,1] images with "
        "mean/std here, then reverse the channel order",
    },
)


class BNInception(InceptionNet):
    """BN-Inception (Figure 5): 7x7/2 conv, max pool, 1x1 + 3x3 conv, max pool, 3a-3c, 4a-4e, 5a-5b,
    global average pool, dropout, linear ``last_linear``; state-dict keys in the Caffe/Cadene spelling.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__(metadata=METADATA, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
        c = Widths(width_multiplier)
        self.conv1 = stem_unit(_7x7_s2=CaffeConvBNReLU(in_chans, c(64), 7, stride=2))
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = stem_unit(_3x3_reduce=CaffeConvBNReLU(c(64), c(64)), _3x3=CaffeConvBNReLU(c(64), c(192), 3))
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        cin = c(192)
        channels: dict[str, int] = {}
        for row in BLOCKS:
            block = ReductionBlock(cin, row, c) if row.pool_proj == 0 else InceptionBlock(cin, row, c)
            self.add_module(row.name, block)
            cin = channels[row.name] = block.out_channels
        self.feature_info = [
            FeatureInfo("conv1", c(64), 2),
            FeatureInfo("conv2", c(192), 4),
            FeatureInfo("inception_3b", channels["inception_3b"], 8),
            FeatureInfo("inception_4d", channels["inception_4d"], 16),
            FeatureInfo("inception_5b", cin, 32),
        ]
        self._build_head(cin, "last_linear")
        init_weights(self)
        self.caffe_keys = caffe_key_table(self)
        self.register_state_dict_post_hook(_to_caffe_keys)
        self.register_load_state_dict_pre_hook(_from_caffe_keys)

    def forward_body(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.pool1_3x3_s2(self.conv1(x))
        x = self.pool2_3x3_s2(self.conv2(x))
        x = self.inception_3c(self.inception_3b(self.inception_3a(x)))
        x = self.inception_4c(self.inception_4b(self.inception_4a(x)))
        x = self.inception_4e(self.inception_4d(x))
        x = self.inception_5b(self.inception_5a(x))
        return x, None

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_linear(x)


register_model("bn_inception")(BNInception)
