"""Calibration images for int8 post-training quantization: a few hundred images, preprocessed as the model's inputs.

:func:`load_calibration` reads them from what a user has at hand: image files, a folder of images (loose,
or one sub-folder per class, in which case its ``train/`` split is used when there is one), or a built-in
dataset (``fashion-mnist``, ``mnist``: the training split). Datasets give a class-balanced subset
(:func:`~inception_resnet.data.subsets.subset`), files the first ones in sorted order; every image goes
through the given transform (the model's evaluation transform), and the result is one ``(N, C, H, W)``
tensor. Only these images are observed by the quantizer
(:func:`inception_resnet.inference.quantize.quantize_int8`, or NNCF for the OpenVINO backend).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .builtin_datasets import BUILTIN_ALIASES
from .datasets import build_dataset
from .decoding import CorruptImageError, SkippedSample, decode_file
from .image_folder import image_files, is_image_file
from .subsets import subset

DEFAULT_CALIBRATION_IMAGES = 256


def _single_view(transform: Callable[[Any], torch.Tensor], image: Any) -> torch.Tensor:
    """The transform's output as one ``(C, H, W)`` image (a crop-set transform gives ``(1, C, H, W)``)."""
    tensor = transform(image)
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError("calibration takes one view per image; use a single-crop transform")
        tensor = tensor[0]
    return tensor


def _from_files(paths: Sequence[str], transform: Callable, count: int) -> list[torch.Tensor]:
    images = []
    for path in paths:
        if len(images) == count:
            break
        try:
            images.append(_single_view(transform, decode_file(path)))
        except CorruptImageError:
            continue  # as evaluation does: a file that cannot be decoded is not an image
    return images


def _is_class_tree(root: Path) -> bool:
    entries = list(os.scandir(root))
    return any(e.is_dir() and not e.name.startswith(".") for e in entries) and not any(
        e.is_file() and is_image_file(e.name) for e in entries
    )


def load_calibration(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    transform: Callable[[Any], torch.Tensor],
    count: int = DEFAULT_CALIBRATION_IMAGES,
    *,
    seed: int = 0,
    download: bool = True,
) -> torch.Tensor:
    """Up to ``count`` images of ``source`` (see the module docstring) through ``transform``, as ``(N, C, H, W)``."""
    if count < 1:
        raise ValueError(f"the number of calibration images must be at least 1, got {count}")
    if isinstance(source, (list, tuple)):
        missing = [str(p) for p in source if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"calibration image(s) not found: {', '.join(missing[:5])}")
        images = _from_files([str(p) for p in source], transform, count)
    elif str(source).lower() in BUILTIN_ALIASES or Path(source).is_dir() and _is_class_tree(Path(source)):
        split = "train"
        root = Path(source)
        if root.is_dir() and not (root / "train").is_dir() and (root / "val").is_dir():
            split = "val"  # a folder with only a val/ split: calibrate on it, as nothing else is there
        dataset = subset(
            build_dataset(source, split, functools.partial(_single_view, transform), download=download), count, seed
        )
        images = [
            image for image, _ in (dataset[i] for i in range(len(dataset))) if not isinstance(image, SkippedSample)
        ]
    elif Path(source).is_dir():
        images = _from_files(image_files(Path(source)), transform, count)
    elif Path(source).is_file():
        images = _from_files([str(source)], transform, count)
    else:
        raise FileNotFoundError(
            f"calibration source {source} is neither an image file, a folder nor one of "
            f"{', '.join(sorted(set(BUILTIN_ALIASES.values())))}"
        )
    if not images:
        raise ValueError(
            f"no calibration images could be read from {source}; give image files or a folder of "
            "images like the ones the model will see"
        )
    return torch.stack(images)
