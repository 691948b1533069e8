"""Augmentation for small images: :class:`PadCropTransform` and its evaluation partner :func:`whole_image_transform`.

The Inception training crops (:class:`~inception_resnet.data.augment.TrainTransform`: 5-100 % of the area)
suit 299-pixel photographs; on a 28-pixel Fashion-MNIST image many of them leave too little to tell the class.
These keep the whole image but for a few pixels of shift, the usual augmentation of small-image benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .transforms import (
    INCEPTION_MEAN,
    INCEPTION_STD,
    EvalTransform,
    Normalize,
    as_size,
    interpolation_mode,
    prepare_image,
    resize,
    to_float,
)


class PadCropTransform:
    """Augmentation for small images (28x28 Fashion-MNIST and the like): pad, random crop, flip, resize.

    The image is zero-padded by ``pad_fraction`` of each side (4 pixels on a 28-pixel image), a crop of the
    original size is taken at a random offset, flipped left-right with probability 1/2, then resized to the
    input size and normalised. Every crop keeps at least ``(1 - pad_fraction)^2`` of the image, so labels
    survive (unlike the 5 %-area crops of :class:`TrainTransform`, made for 299-pixel photographs). Its
    evaluation partner is :func:`whole_image_transform`.
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        in_chans: int = 3,
        *,
        mean: Sequence[float] = INCEPTION_MEAN,
        std: Sequence[float] = INCEPTION_STD,
        interpolation: str = "bilinear",
        pad_fraction: float = 1 / 7,
        flip: bool = True,
    ) -> None:
        if not 0.0 <= pad_fraction < 1.0:
            raise ValueError(f"pad_fraction must lie in [0, 1), got {pad_fraction}")
        self.size = as_size(input_size)
        self.in_chans = in_chans
        self.interpolation = interpolation_mode(interpolation)
        self.pad_fraction = float(pad_fraction)
        self.flip = flip
        self.normalize = Normalize(mean, std, in_chans)

    def __call__(self, image: Any) -> torch.Tensor:
        image = prepare_image(image, self.in_chans)
        height, width = image.shape[-2:]
        pad_y, pad_x = round(self.pad_fraction * height), round(self.pad_fraction * width)
        if pad_y or pad_x:
            image = torch.nn.functional.pad(image, (pad_x, pad_x, pad_y, pad_y))
            top = int(torch.randint(0, 2 * pad_y + 1, ()))
            left = int(torch.randint(0, 2 * pad_x + 1, ()))
            image = image[..., top : top + height, left : left + width]
        if self.flip and float(torch.rand(())) < 0.5:
            image = image.flip(-1)
        return self.normalize(to_float(resize(image, self.size, self.interpolation)))

    def __repr__(self) -> str:
        return (
            f"PadCropTransform(size={self.size}, in_chans={self.in_chans}, pad_fraction={self.pad_fraction:.3f}, "
            f"flip={self.flip}, {self.normalize})"
        )


def whole_image_transform(
    input_size: int | Sequence[int],
    in_chans: int = 3,
    *,
    mean: Sequence[float] = INCEPTION_MEAN,
    std: Sequence[float] = INCEPTION_STD,
    interpolation: str = "bilinear",
) -> EvalTransform:
    """The whole image resized to the input size (no central crop): the evaluation of :class:`PadCropTransform`."""
    return EvalTransform(
        input_size, in_chans, crop_pct=1.0, style="tf", interpolation=interpolation, mean=mean, std=std
    )
