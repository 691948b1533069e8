"""Preprocessing: image inputs, resizing and the evaluation pipelines of the released weights (the training
augmentation, built on these, is :mod:`.augment`).

Every transform takes a PIL image, a numpy array (H x W or H x W x C) or a tensor (C x H x W, uint8 as
``torchvision.io.decode_image`` returns it, or float in [0, 1]) and returns a float32 C x H x W tensor,
normalised with ``(x - mean) / std`` (mean = std = 0.5 maps [0, 1] to [-1, 1], the Inception convention).
Grey images are repeated to 3 channels, an alpha channel is dropped, and RGB becomes luminance when the
model has ``in_chans=1``. Resizing runs on the image's own dtype (uint8 for decoded files, as PIL does it)
with antialiasing, so an image smaller than the model's input (28x28 Fashion-MNIST) is simply upsampled.

* :func:`eval_transform` with ``style="tf"``: TF-slim's evaluation - keep the central ``crop_pct`` of each
  side (87.5 %), then resize that region to the input size (aspect not kept).
* ``style="center"`` (timm's crop mode of that name): resize the shorter side to ``floor(size / crop_pct)``
  (341 for 299 at 0.875), then take the centre ``size x size`` crop. ``style="squash"`` (timm's too)
  resizes both sides to ``size / crop_pct`` first.
* :func:`eval_transform_for` reads the style, crop fraction, interpolation, mean and std from a model's
  :class:`~inception_resnet.models.metadata.ModelMetadata`, whose ``crop_mode`` is one of the same three names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..checks import Bounds, check_value
from ..models.inputs import check_min_size

INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
# the evaluation geometries, one name each: the metadata's crop_mode and eval's --style (timm's "center" and
# "squash", and TF-slim's central fraction, which timm has not)
EVAL_STYLES = ("tf", "center", "squash")
INTERPOLATIONS = {
    "nearest": InterpolationMode.NEAREST_EXACT,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
}
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's "L" conversion

# TF-slim ``distort_color``: the four orders in which the four random adjustments are applied.
COLOR_ORDERS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)

Size = tuple[int, int]


# -- inputs ---------------------------------------------------------------------------------------------
def to_image_tensor(image: Any) -> torch.Tensor:
    """A C x H x W tensor from a PIL image, a numpy array or a tensor; the dtype is kept (uint8 or float)."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB", "RGBA", "LA"):
            image = image.convert("RGB")
        return TF.pil_to_tensor(image)
    if isinstance(image, np.ndarray):
        array = np.ascontiguousarray(image)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8) * 255
        tensor = torch.from_numpy(array)
        return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dim() == 2:
            return image.unsqueeze(0)
        if image.dim() != 3:
            raise ValueError(f"expected an image tensor of shape (C, H, W), got shape {list(image.shape)}")
        return image
    raise TypeError(f"expected a PIL image, a numpy array or a tensor, got {type(image).__name__}")


def match_channels(image: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Drop alpha, repeat grey to ``in_chans`` channels, or turn RGB into luminance for ``in_chans=1``."""
    channels = image.shape[0]
    if channels in (2, 4):  # grey + alpha, RGB + alpha
        image = image[: channels - 1]
        channels -= 1
    if channels == in_chans:
        return image
    if channels == 1:
        return image.expand(in_chans, -1, -1).contiguous()
    if channels == 3 and in_chans == 1:
        weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float32, device=image.device).view(3, 1, 1)
        grey = (image.float() * weights).sum(0, keepdim=True)
        return grey.round().clamp(0, 255).to(image.dtype) if not image.is_floating_point() else grey
    raise ValueError(
        f"cannot turn a {image.shape[0]}-channel image into {in_chans} channels; "
        "give grey, RGB or RGBA images, or build the model with in_chans matching the images"
    )


def prepare_image(image: Any, in_chans: int) -> torch.Tensor:
    """:func:`to_image_tensor` followed by :func:`match_channels`."""
    return match_channels(to_image_tensor(image), in_chans)


def to_float(image: torch.Tensor) -> torch.Tensor:
    """Scale an integer image to float32 in [0, 1]; a float image is only cast to float32."""
    if image.is_floating_point():
        return image.float()
    return TF.to_dtype(image, torch.float32, scale=True)


# -- options --------------------------------------------------------------------------------------------
MAX_INPUT_SIZE = 4096  # pixels per side, far beyond the paper's 299
MAX_ASPECT = 8  # longer side / shorter side kept before a shorter-side resize


def as_size(input_size: int | Sequence[int]) -> Size:
    """``299`` or ``(299, 299)`` or ``(3, 299, 299)`` -> ``(299, 299)``, checked positive."""
    if isinstance(input_size, int):
        size = (input_size, input_size)
    else:
        values = tuple(int(v) for v in input_size)
        if len(values) not in (2, 3):
            raise ValueError(f"input_size must be an int, (H, W) or (C, H, W), got {input_size!r}")
        size = (values[-2], values[-1])
    for side in size:
        check_value("input_size", side, int, Bounds(ge=1, le=MAX_INPUT_SIZE))
    return size


def interpolation_mode(name: str | InterpolationMode) -> InterpolationMode:
    """``"bilinear"``, ``"bicubic"`` or ``"nearest"`` as a torchvision interpolation mode."""
    if isinstance(name, InterpolationMode):
        return name
    try:
        return INTERPOLATIONS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown interpolation {name!r}; choose one of {', '.join(INTERPOLATIONS)}") from None


def check_crop_pct(crop_pct: float) -> float:
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must lie in (0, 1], got {crop_pct}")
    return float(crop_pct)


def check_style(style: str) -> str:
    if style not in EVAL_STYLES:
        raise ValueError(f"unknown evaluation style {style!r}; choose one of {', '.join(EVAL_STYLES)}")
    return style


class Normalize:
    """``(x - mean) / std`` per channel; one value, or three averaged for a 1-channel model, also work.

    ``channel_order="BGR"`` reverses the (RGB, normalised) channels afterwards, for weights converted from
    Caffe (BN-Inception's); ``mean`` and ``std`` are always given in RGB order.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], in_chans: int, channel_order: str = "RGB") -> None:
        self.mean = self._per_channel(mean, in_chans, "mean")
        self.std = self._per_channel(std, in_chans, "std")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {std}")
        if channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {channel_order!r}")
        self.reverse_channels = channel_order == "BGR" and in_chans == 3

    @staticmethod
    def _per_channel(values: Sequence[float], in_chans: int, what: str) -> tuple[float, ...]:
        values = tuple(float(v) for v in values)
        if len(values) == in_chans:
            return values
        if len(values) == 1:
            return values * in_chans
        if in_chans == 1:
            return (sum(values) / len(values),)
        raise ValueError(f"{what} has {len(values)} values but the model has {in_chans} input channels")

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
        image = (image - mean) / std
        return image.flip(-3) if self.reverse_channels else image

    def __repr__(self) -> str:
        order = ", BGR" if self.reverse_channels else ""
        return f"Normalize(mean={self.mean}, std={self.std}{order})"


# -- geometry -------------------------------------------------------------------------------------------
def resize(image: torch.Tensor, size: Size, interpolation: InterpolationMode) -> torch.Tensor:
    """Resize to exactly ``size`` (H, W), antialiased; a no-op when the image already has that size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return TF.resize(image, list(size), interpolation=interpolation, antialias=True)


def resize_shorter_side(image: torch.Tensor, shorter: int, interpolation: InterpolationMode) -> torch.Tensor:
    """Resize keeping the aspect ratio so that the shorter side becomes ``shorter``.

    The longer side is truncated, as torchvision's ``Resize(int)`` (and so timm's evaluation) computes it. A
    longer side over :data:`MAX_ASPECT` times the shorter is first cut to its centre (a 1x60000 picture: GBs).
    """
    height, width = image.shape[-2:]
    if max(height, width) > MAX_ASPECT * min(height, width):
        height, width = min(height, MAX_ASPECT * width), min(width, MAX_ASPECT * height)
        top, left = (image.shape[-2] - height) // 2, (image.shape[-1] - width) // 2
        image = image[..., top : top + height, left : left + width]
    if height <= width:
        size = (shorter, max(1, int(width * shorter / height)))
    else:
        size = (max(1, int(height * shorter / width)), shorter)
    return resize(image, size, interpolation)


def center_crop(image: torch.Tensor, size: Size) -> torch.Tensor:
    """The centre ``size`` crop (offsets rounded like torchvision's); the image must be at least that big."""
    height, width = image.shape[-2:]
    top = int(round((height - size[0]) / 2.0))
    left = int(round((width - size[1]) / 2.0))
    return image[..., top : top + size[0], left : left + size[1]]


def central_fraction_box(height: int, width: int, fraction: float) -> tuple[int, int, int, int]:
    """TF's ``central_crop``: (top, left, height, width) keeping ``fraction`` of each side, centred."""
    top = int((height - height * fraction) / 2)
    left = int((width - width * fraction) / 2)
    return top, left, height - 2 * top, width - 2 * left


def scaled_size(size: Size, crop_pct: float) -> Size:
    """The pre-crop size of timm's evaluation: ``floor(side / crop_pct)`` (299 at 0.875 -> 341)."""
    return (math.floor(size[0] / crop_pct + 1e-6), math.floor(size[1] / crop_pct + 1e-6))


def eval_geometry(
    image: torch.Tensor, size: Size, crop_pct: float, style: str, interpolation: InterpolationMode
) -> torch.Tensor:
    """The single evaluation view of ``image`` (not normalised) in the given style."""
    if style == "tf":
        top, left, height, width = central_fraction_box(*image.shape[-2:], crop_pct)
        return resize(image[..., top : top + height, left : left + width], size, interpolation)
    scaled = scaled_size(size, crop_pct)
    if style == "squash":
        return center_crop(resize(image, scaled, interpolation), size)
    if size[0] == size[1]:
        image = resize_shorter_side(image, scaled[0], interpolation)
    else:
        image = resize(image, scaled, interpolation)
    return center_crop(image, size)


# -- evaluation -----------------------------------------------------------------------------------------
class EvalTransform:
    """One deterministic evaluation view: geometry of ``style``, then float conversion and normalisation."""

    def __init__(
        self,
        input_size: int | Sequence[int],
        in_chans: int = 3,
        *,
        crop_pct: float = 0.875,
        style: str = "tf",
        interpolation: str = "bicubic",
        mean: Sequence[float] = INCEPTION_MEAN,
        std: Sequence[float] = INCEPTION_STD,
        channel_order: str = "RGB",
    ) -> None:
        self.size = as_size(input_size)
        self.in_chans = in_chans
        self.crop_pct = check_crop_pct(crop_pct)
        self.style = check_style(style)
        self.interpolation = interpolation_mode(interpolation)
        self.normalize = Normalize(mean, std, in_chans, channel_order)

    def geometry(self, image: torch.Tensor) -> torch.Tensor:
        return eval_geometry(image, self.size, self.crop_pct, self.style, self.interpolation)

    def __call__(self, image: Any) -> torch.Tensor:
        image = prepare_image(image, self.in_chans)
        return self.normalize(to_float(self.geometry(image)))

    def __repr__(self) -> str:
        return (
            f"EvalTransform(size={self.size}, in_chans={self.in_chans}, style={self.style!r}, "
            f"crop_pct={self.crop_pct}, interpolation={self.interpolation.value!r}, {self.normalize})"
        )


def eval_transform(
    input_size: int | tuple[int, int],
    in_chans: int = 3,
    *,
    crop_pct: float = 0.875,
    style: str = "tf",
    interpolation: str = "bicubic",
    mean: Sequence[float] = INCEPTION_MEAN,
    std: Sequence[float] = INCEPTION_STD,
) -> Callable[[Any], torch.Tensor]:
    """The evaluation transform: ``style="tf"`` (central ``crop_pct`` then resize), ``"center"`` or ``"squash"``."""
    return EvalTransform(
        input_size, in_chans, crop_pct=crop_pct, style=style, interpolation=interpolation, mean=mean, std=std
    )


def metadata_of(model_or_metadata: Any) -> Any:
    """The :class:`ModelMetadata` of a model (``model.metadata``) or the metadata itself."""
    metadata = getattr(model_or_metadata, "metadata", model_or_metadata)
    if not hasattr(metadata, "input_size") or not hasattr(metadata, "crop_pct"):
        raise ValueError(
            f"{type(model_or_metadata).__name__} has no ModelMetadata; pass a model of this library "
            "(create_model) or a ModelMetadata"
        )
    return metadata


def style_for(metadata: Any, style: str | None = None) -> str:
    """The evaluation style: the one given, else the one the metadata's ``crop_mode`` names."""
    if style is not None:
        return check_style(style)
    crop_mode = getattr(metadata, "crop_mode", "center")
    if crop_mode not in EVAL_STYLES:
        raise ValueError(
            f"the weights' crop_mode {crop_mode!r} has no evaluation style; pass style= one of {EVAL_STYLES}"
        )
    return crop_mode


def resolve_input_size(metadata: Any, input_size: int | Sequence[int] | None) -> Size:
    """``input_size`` or the metadata's, refused when below the model's minimum (75 for the family)."""
    size = as_size(metadata.input_size if input_size is None else input_size)
    minimum = getattr(metadata, "min_input_size", 1)
    check_min_size(
        getattr(metadata, "name", "the model"), size[0], size[1], minimum, f"choose an input_size of at least {minimum}"
    )
    return size


def eval_transform_for(
    model_or_metadata: Any, *, style: str | None = None, input_size: int | Sequence[int] | None = None
) -> Callable[[Any], torch.Tensor]:
    """The evaluation transform the model's weights expect (input size, crop, interpolation, mean, std)."""
    metadata = metadata_of(model_or_metadata)
    return EvalTransform(
        resolve_input_size(metadata, input_size), int(metadata.input_size[0]), **eval_options_for(metadata, style)
    )


def eval_options_for(metadata: Any, style: str | None = None) -> dict[str, Any]:
    """The preprocessing keywords of :class:`EvalTransform` that a model's metadata fixes."""
    return {
        "crop_pct": metadata.crop_pct,
        "style": style_for(metadata, style),
        "interpolation": metadata.interpolation,
        "mean": metadata.mean,
        "std": metadata.std,
        "channel_order": channel_order_of(metadata),
    }


def channel_order_of(metadata: Any) -> str:
    """'BGR' for weights converted from Caffe (``metadata.extra["input_space"]``), else 'RGB'."""
    return str(getattr(metadata, "extra", {}).get("input_space", "RGB"))
