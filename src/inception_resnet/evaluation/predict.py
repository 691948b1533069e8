"""Classifying image files with a model and its weights' own preprocessing.

:func:`predict_files` checks and decodes each file exactly as evaluation and training do
(:func:`inception_resnet.data.decoding.decode_file`: 16-bit images keep their range, special files and images
over the pixel limit are refused before they are read); a file that cannot be used becomes a
:class:`PredictFailure` with a message, and the others are still classified. It applies the evaluation
transform the weights' metadata describes (:func:`inception_resnet.data.transforms.eval_transform_for`: input
size, crop fraction and style, interpolation, mean and std), runs the model in batches and returns the
top-k classes with their softmax probabilities. Class names come from the ImageNet list shipped with the
package (:func:`class_names`: 1000 classes, or 1001 with TF-slim's background class at index 0), or from the
weights when they recorded the classes they were trained on (our training checkpoints).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import torch
from torch import nn

from ..data.decoding import CorruptImageError, check_image_file, decode_file
from ..data.transforms import eval_transform_for
from .class_check import trained_classes

BACKGROUND = "background"


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the usual index order (``labels/imagenet_classes.txt``)."""
    text = resources.files("inception_resnet").joinpath("labels/imagenet_classes.txt").read_text("utf8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"the packaged ImageNet class list has {len(names)} names instead of 1000")
    return names


def class_names(num_classes: int, label_offset: int = 0) -> list[str]:
    """Names of a classifier's outputs: ImageNet's for 1000 (or 1001 with background first), else ``class N``."""
    if num_classes == 1000 and label_offset == 0:
        return list(imagenet_classes())
    if num_classes == 1001 and label_offset in (0, 1):
        return [BACKGROUND, *imagenet_classes()]
    return [f"class {i}" for i in range(num_classes)]


@dataclass
class Prediction:
    """The top-k classes of one image: indices into the model's outputs, names and probabilities."""

    path: str
    indices: list[int]
    labels: list[str]
    probabilities: list[float]

    def as_dict(self) -> dict[str, Any]:
        top = [
            {"index": i, "label": n, "probability": p}
            for i, n, p in zip(self.indices, self.labels, self.probabilities, strict=True)
        ]
        return {"image": self.path, "top": top}


@dataclass
class PredictFailure:
    """A file that could not be classified, and why."""

    path: str
    error: str

    def as_dict(self) -> dict[str, str]:
        return {"image": self.path, "error": self.error}


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> torch.Tensor:
    """Check and decode an image file as evaluation and training do: RGB C x H x W, uint8 (uint16 for 16-bit
    images). A ValueError says why a file cannot be used; ``max_pixels`` as in :func:`data.build_dataset`."""
    try:
        check_image_file(path, max_pixels)
    except CorruptImageError as err:
        raise ValueError(err.reason) from None
    try:
        return decode_file(path, max_pixels)
    except CorruptImageError as err:
        if "cannot identify image file" in err.reason:
            raise ValueError("not an image file PIL or torchvision can read (JPEG, PNG, BMP, TIFF, WebP...)") from None
        raise ValueError(f"could not be decoded ({err.reason})") from None


def check_classifier(model: nn.Module) -> None:
    """Raise a ValueError when the model does not output class scores (no classifier, feature extractor)."""
    name = getattr(model, "model_name", type(model).__name__)
    if getattr(model, "features_only", False) or getattr(model, "num_classes", 0) <= 0:
        raise ValueError(f"{name} has no classifier (num_classes=0 or features_only); predict needs class scores")
    if getattr(model, "classify_output", True) is False:
        raise ValueError(f"{name} outputs embeddings; build it with classify=True and num_classes to predict classes")


def topk(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and indices of the ``k`` best classes of each row (``k`` capped at the class count)."""
    if k < 1:
        raise ValueError(f"topk must be at least 1, got {k}")
    probabilities = torch.softmax(logits.float(), dim=1)
    return probabilities.topk(min(k, probabilities.shape[1]), dim=1)


def predict_batch(model: nn.Module, batch: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k probabilities and indices for a preprocessed batch (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return topk(model(batch), k)
    finally:
        model.train(was_training)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_files(
    model: nn.Module,
    paths: Sequence[str | os.PathLike],
    k: int = 5,
    *,
    input_size: int | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    names: Sequence[str] | None = None,
    max_pixels: int | None = None,
) -> tuple[list[Prediction], list[PredictFailure]]:
    """Classify image files; returns the predictions (in input order) and the files that failed.

    Class ``names`` default to the ones the weights recorded, else :func:`class_names`.
    """
    check_classifier(model)
    if k < 1:
        raise ValueError(f"topk must be at least 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    meta = model.metadata
    if names is None:
        trained = trained_classes(model)
        fits = trained is not None and len(trained) == model.num_classes - meta.label_offset
        names = (
            ([BACKGROUND] * meta.label_offset + trained) if fits else class_names(model.num_classes, meta.label_offset)
        )
    names = list(names)
    transform = eval_transform_for(model, input_size=input_size)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    ready: list[tuple[str, torch.Tensor]] = []
    failures: list[PredictFailure] = []
    for path in paths:
        try:
            ready.append((str(path), transform(load_image(path, max_pixels))))
        except ValueError as err:
            failures.append(PredictFailure(str(path), str(err)))
    predictions: list[Prediction] = []
    for chunk in _chunks(ready, batch_size):
        batch = torch.stack([tensor for _, tensor in chunk]).to(device)
        probabilities, indices = predict_batch(model, batch, k)
        for (path, _), probs, idx in zip(chunk, probabilities.tolist(), indices.tolist(), strict=True):
            predictions.append(Prediction(path, idx, [names[i] for i in idx], probs))
    return predictions, failures


def format_predictions(predictions: Sequence[Prediction]) -> str:
    """A plain-text table per image: rank, probability, class index and name."""
    blocks = []
    for prediction in predictions:
        lines = [prediction.path, "  rank  probability  index  class"]
        for rank, (i, name, p) in enumerate(
            zip(prediction.indices, prediction.labels, prediction.probabilities, strict=True), start=1
        ):
            lines.append(f"  {rank:>4}  {p:>11.4f}  {i:>5}  {name}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
