"""Synthetic data for smoke tests: ``synthetic:N[:CLASSES]`` as a ready dataset."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SyntheticDataset(Dataset):
    """``synthetic:N[:CLASSES]``: deterministic noise images with a class-dependent bright band (smoke tests).

    Images are generated at the training size, already normalised, so no transform applies.
    """

    def __init__(self, size: int, num_classes: int, in_chans: int, image_size: int, seed: int = 0) -> None:
        if size < 1 or num_classes < 2:
            raise ValueError("synthetic data needs at least 1 image and 2 classes (synthetic:N[:CLASSES])")
        self.size = size
        self.in_chans = in_chans
        self.image_size = image_size
        self.seed = seed
        self.classes = [f"class_{k}" for k in range(num_classes)]
        self.targets = [i % num_classes for i in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = self.targets[index]
        image = 0.5 * torch.randn(self.in_chans, self.image_size, self.image_size, generator=generator)
        band = max(1, self.image_size // len(self.classes))
        image[:, label * band : (label + 1) * band, :] += 1.0
        return image, label

    def __repr__(self) -> str:
        return f"SyntheticDataset({self.size} images, {len(self.classes)} classes, {self.image_size}px)"


def parse_synthetic(spec: str | None) -> tuple[int, int] | None:
    """``(images, classes)`` of a ``synthetic:N[:CLASSES]`` data spec, else None."""
    if spec is None or not str(spec).startswith("synthetic"):
        return None
    parts = str(spec).split(":")
    try:
        size = int(parts[1]) if len(parts) > 1 else 64
        classes = int(parts[2]) if len(parts) > 2 else 10
    except ValueError:
        raise ValueError(f"bad synthetic data spec {spec!r}; write synthetic:N or synthetic:N:CLASSES") from None
    return size, classes
