"""Multi-crop evaluation views: the crop sets 1, 10, 12 and 144 of the Inception papers, as pure functions.

For a square input of side ``s`` (299 for the family), with ``S = floor(s / crop_pct)`` (341 at 0.875):

* **1** - the single evaluation view of the weights' style (:func:`transforms.eval_geometry`: TF's central
  87.5 % then resize, or timm's shorter side to ``S`` then centre crop).
* **10** - shorter side resized to ``S``; the centre, top-left, top-right, bottom-left and bottom-right
  ``s x s`` crops, then the horizontal mirror of each, in that order (GoogLeNet's and Caffe's "10-crop").
* **144** - GoogLeNet's protocol (Szegedy et al. 2014, section 7): the shorter side resized to 4 scales;
  at each scale 3 squares of side equal to the shorter side - left, centre, right (top, centre, bottom for
  a portrait image); from each square 6 views - its 4 corner ``s x s`` crops, its centre crop and the whole
  square resized to ``s x s``; and the mirror of each: 4 x 3 x 6 x 2 = 144. Order: scale, square, then the
  6 views followed by their 6 mirrors. GoogLeNet's scales are 256, 288, 320, 352 for a 224 input; the
  Inception-v4 paper does not give them for 299, so we scale them by ``s / 224`` and round (our inference):
  342, 384, 427, 470 for 299. A square image has its 3 squares equal, so only 48 of its views differ.
* **12** - the Inception-v4 paper's 12 crops (Table 3) are not defined in its text; we take the natural
  reading of GoogLeNet's protocol: the 6 views of one square and their mirrors, using the centre square
  at the first (smallest) scale - exactly views 12-23 of the 144 set.

All functions work on un-normalised C x H x W images of any dtype and device and return ``(V, C, s, s)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.transforms import InterpolationMode

from .transforms import (
    EvalTransform,
    as_size,
    center_crop,
    check_crop_pct,
    check_style,
    eval_geometry,
    eval_options_for,
    interpolation_mode,
    metadata_of,
    prepare_image,
    resize,
    resize_shorter_side,
    resolve_input_size,
    scaled_size,
    to_float,
)

CROP_SETS = (1, 10, 12, 144)
GOOGLENET_SCALES = (256, 288, 320, 352)  # shorter sides for a 224 input (Szegedy et al. 2014)
GOOGLENET_INPUT = 224


def check_crops(crops: int) -> int:
    if crops not in CROP_SETS:
        raise ValueError(f"crops must be one of {', '.join(map(str, CROP_SETS))}, got {crops}")
    return crops


def multi_crop_scales(size: int) -> tuple[int, ...]:
    """The 4 shorter sides of the 144-crop set for a ``size`` input: GoogLeNet's, scaled by ``size / 224``."""
    return tuple(round(scale * size / GOOGLENET_INPUT) for scale in GOOGLENET_SCALES)


def five_crops(image: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Centre, top-left, top-right, bottom-left, bottom-right ``size x size`` crops."""
    height, width = image.shape[-2:]
    if height < size or width < size:
        raise ValueError(f"cannot take {size}x{size} crops from a {height}x{width} image")
    return [
        center_crop(image, (size, size)),
        image[..., :size, :size],
        image[..., :size, width - size :],
        image[..., height - size :, :size],
        image[..., height - size :, width - size :],
    ]


def with_mirrors(views: list[torch.Tensor]) -> list[torch.Tensor]:
    """The views followed by their horizontal mirrors, in the same order."""
    return views + [view.flip(-1) for view in views]


def three_squares(image: torch.Tensor) -> list[torch.Tensor]:
    """Left, centre, right squares (top, centre, bottom for portrait) of side equal to the shorter side."""
    height, width = image.shape[-2:]
    side = min(height, width)
    offsets = [0, (max(height, width) - side) // 2, max(height, width) - side]
    if width >= height:
        return [image[..., :, offset : offset + side] for offset in offsets]
    return [image[..., offset : offset + side, :] for offset in offsets]


def square_views(square: torch.Tensor, size: int, interpolation: InterpolationMode) -> list[torch.Tensor]:
    """GoogLeNet's 6 views of a square and their 6 mirrors: 4 corners, centre, the whole square resized."""
    corners_and_centre = five_crops(square, size)
    corners = corners_and_centre[1:] + corners_and_centre[:1]  # 4 corners, then the centre
    return with_mirrors(corners + [resize(square, (size, size), interpolation)])


def ten_crop_views(
    image: torch.Tensor, size: int, crop_pct: float, interpolation: InterpolationMode
) -> list[torch.Tensor]:
    """The 10-crop set (see the module docstring)."""
    scaled = scaled_size((size, size), crop_pct)[0]
    return with_mirrors(five_crops(resize_shorter_side(image, scaled, interpolation), size))


def googlenet_views(
    image: torch.Tensor, size: int, interpolation: InterpolationMode, *, squares: str = "all", scales: int = 4
) -> list[torch.Tensor]:
    """The 144-crop set, or with ``squares="centre", scales=1`` the 12-crop set."""
    views: list[torch.Tensor] = []
    for shorter in multi_crop_scales(size)[:scales]:
        resized = resize_shorter_side(image, shorter, interpolation)
        chosen = three_squares(resized)
        if squares == "centre":
            chosen = chosen[1:2]
        for square in chosen:
            views.extend(square_views(square, size, interpolation))
    return views


def crop_views(
    image: torch.Tensor,
    crops: int,
    input_size: int | Sequence[int],
    *,
    crop_pct: float = 0.875,
    style: str = "center",
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """The ``crops`` views of one un-normalised C x H x W image, stacked as ``(crops, C, s, s)``.

    ``style`` and ``crop_pct`` define the single view (crops=1) and the scale of the 10-crop set.
    """
    check_crops(crops)
    height, width = as_size(input_size)
    mode = interpolation_mode(interpolation)
    crop_pct = check_crop_pct(crop_pct)
    if crops == 1:
        return eval_geometry(image, (height, width), crop_pct, check_style(style), mode).unsqueeze(0)
    if height != width:
        raise ValueError(f"the {crops}-crop set needs a square input size, got {height}x{width}")
    if crops == 10:
        views = ten_crop_views(image, height, crop_pct, mode)
    elif crops == 12:
        views = googlenet_views(image, height, mode, squares="centre", scales=1)
    else:
        views = googlenet_views(image, height, mode)
    return torch.stack(views)


class MultiCropTransform(EvalTransform):
    """Image -> normalised ``(crops, C, s, s)`` views; the evaluation transform of a crop set.

    The preprocessing keywords (``crop_pct``, ``interpolation``, ``mean``, ``std``, ``channel_order``) are
    those of :class:`~inception_resnet.data.transforms.EvalTransform`; ``style`` shapes the single view of
    ``crops=1`` and defaults to timm's.
    """

    def __init__(
        self,
        input_size: int | Sequence[int],
        crops: int = 1,
        in_chans: int = 3,
        *,
        style: str = "center",
        **options: Any,
    ) -> None:
        super().__init__(input_size, in_chans, style=style, **options)
        self.crops = check_crops(crops)
        if crops != 1 and self.size[0] != self.size[1]:
            raise ValueError(f"the {crops}-crop set needs a square input size, got {self.size}")

    def __call__(self, image: Any) -> torch.Tensor:
        image = prepare_image(image, self.in_chans)
        views = crop_views(
            image, self.crops, self.size, crop_pct=self.crop_pct, style=self.style, interpolation=self.interpolation
        )
        return self.normalize(to_float(views))

    def __repr__(self) -> str:
        return f"MultiCropTransform(crops={self.crops}, " + super().__repr__().split("(", 1)[1]


def multi_crop_transform_for(
    model_or_metadata: Any,
    crops: int = 1,
    *,
    style: str | None = None,
    input_size: int | Sequence[int] | None = None,
) -> MultiCropTransform:
    """The crop-set transform for a model, with the preprocessing its metadata describes."""
    metadata = metadata_of(model_or_metadata)
    return MultiCropTransform(
        resolve_input_size(metadata, input_size),
        crops,
        int(metadata.input_size[0]),
        **eval_options_for(metadata, style),
    )
