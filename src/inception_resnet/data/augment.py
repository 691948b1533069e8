"""The Inception training augmentation: TF-slim's ``inception_preprocessing`` for training.

:func:`train_transform`: a random crop covering 5-100 % of the area with aspect ratio 3/4-4/3 (100 tries,
then the whole image), resized to the input size, a random horizontal flip, random colour distortion
(brightness +-32/255, saturation and contrast x0.5-1.5, hue +-0.2, in one of TF's four random orders), then
the [-1, 1] scaling. Inputs, resizing and normalisation are those of :mod:`.transforms`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF

from .transforms import (
    COLOR_ORDERS,
    INCEPTION_MEAN,
    INCEPTION_STD,
    Normalize,
    as_size,
    interpolation_mode,
    prepare_image,
    resize,
    to_float,
)


# -- training -------------------------------------------------------------------------------------------
def sample_crop_box(
    height: int,
    width: int,
    area: tuple[float, float],
    aspect: tuple[float, float],
    attempts: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """A random (top, left, height, width) box covering ``area`` of the image with width/height in ``aspect``.

    Area fraction uniform, aspect ratio log-uniform; after ``attempts`` misses, the whole image (as TF).
    """
    log_low, log_high = math.log(aspect[0]), math.log(aspect[1])
    for _ in range(attempts):
        draws = torch.rand(2, generator=generator).tolist()
        target_area = height * width * (area[0] + (area[1] - area[0]) * draws[0])
        ratio = math.exp(log_low + (log_high - log_low) * draws[1])
        crop_w = round(math.sqrt(target_area * ratio))
        crop_h = round(math.sqrt(target_area / ratio))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
            return top, left, crop_h, crop_w
    return 0, 0, height, width


def uniform(low: float, high: float, generator: torch.Generator | None = None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def shift_hue(image: torch.Tensor, delta: float) -> torch.Tensor:
    """Rotate the HSV hue of a float RGB image in [0, 1] by ``delta`` turns, keeping saturation and value.

    The same result as ``torchvision``'s ``adjust_hue`` (and TF's), computed without the full HSV round trip:
    value and chroma stay, so each channel is ``max - chroma * clamp(min(k, 4 - k), 0, 1)``.
    """
    red, green, blue = image.unbind(-3)
    top = torch.maximum(torch.maximum(red, green), blue)
    chroma = top - torch.minimum(torch.minimum(red, green), blue)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        top == red, (green - blue) / safe, torch.where(top == green, (blue - red) / safe + 2, (red - green) / safe + 4)
    )
    hue = torch.remainder(hue + 6 * delta, 6)

    def channel(offset: int) -> torch.Tensor:
        k = torch.remainder(hue + offset, 6)
        return top - chroma * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

    return torch.stack([channel(5), channel(3), channel(1)], dim=-3)


def distort_color(image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """TF-slim's random colour distortion of a float image in [0, 1] (grey: brightness and contrast only)."""
    order = COLOR_ORDERS[int(torch.randint(0, len(COLOR_ORDERS), (1,), generator=generator))]
    for step in order:
        if step == "brightness":
            image = image + uniform(-32 / 255, 32 / 255, generator)
        elif step == "contrast":
            image = TF.adjust_contrast(image.clamp(0, 1), uniform(0.5, 1.5, generator))
        elif image.shape[0] == 3 and step == "saturation":
            image = TF.adjust_saturation(image.clamp(0, 1), uniform(0.5, 1.5, generator))
        elif image.shape[0] == 3 and step == "hue":
            image = shift_hue(image.clamp(0, 1), uniform(-0.2, 0.2, generator))
    return image.clamp(0, 1)


class TrainTransform:
    """Inception training augmentation: random area/aspect crop, resize, flip, colour distortion, normalise.

    Randomness comes from torch's generator (per DataLoader worker, seeded by :func:`data.build_loader`).
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        in_chans: int = 3,
        *,
        mean: Sequence[float] = INCEPTION_MEAN,
        std: Sequence[float] = INCEPTION_STD,
        interpolation: str = "bilinear",
        color_distortion: bool = True,
        area: tuple[float, float] = (0.05, 1.0),
        aspect: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ) -> None:
        if not 0.0 < area[0] <= area[1] <= 1.0:
            raise ValueError(f"area must satisfy 0 < low <= high <= 1, got {area}")
        if not 0.0 < aspect[0] <= aspect[1]:
            raise ValueError(f"aspect must satisfy 0 < low <= high, got {aspect}")
        self.size = as_size(input_size)
        self.in_chans = in_chans
        self.interpolation = interpolation_mode(interpolation)
        self.color_distortion = color_distortion
        self.area = (float(area[0]), float(area[1]))
        self.aspect = (float(aspect[0]), float(aspect[1]))
        self.flip = flip
        self.normalize = Normalize(mean, std, in_chans)

    def __call__(self, image: Any) -> torch.Tensor:
        image = prepare_image(image, self.in_chans)
        top, left, height, width = sample_crop_box(*image.shape[-2:], self.area, self.aspect)
        image = resize(image[..., top : top + height, left : left + width], self.size, self.interpolation)
        if self.flip and float(torch.rand(())) < 0.5:
            image = image.flip(-1)
        image = to_float(image)
        if self.color_distortion:
            image = distort_color(image)
        return self.normalize(image)

    def __repr__(self) -> str:
        return (
            f"TrainTransform(size={self.size}, in_chans={self.in_chans}, area={self.area}, aspect={self.aspect}, "
            f"flip={self.flip}, color_distortion={self.color_distortion}, {self.normalize})"
        )


def train_transform(
    input_size: int | tuple[int, int],
    in_chans: int = 3,
    *,
    mean: Sequence[float] = INCEPTION_MEAN,
    std: Sequence[float] = INCEPTION_STD,
    interpolation: str = "bilinear",
    color_distortion: bool = True,
    area: tuple[float, float] = (0.05, 1.0),
    aspect: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
) -> Callable[[Any], torch.Tensor]:
    """The Inception training transform (see the module docstring); output in [-1, 1] with the defaults."""
    return TrainTransform(
        input_size,
        in_chans,
        mean=mean,
        std=std,
        interpolation=interpolation,
        color_distortion=color_distortion,
        area=area,
        aspect=aspect,
        flip=flip,
    )
