"""Data loaders that skip images that cannot be decoded, with seeded workers (repeatable runs).

:func:`build_loader` gives a :class:`SkippingDataLoader`: it drops the samples the decoding policy of
:mod:`inception_resnet.data.decoding` turned into :class:`~inception_resnet.data.decoding.SkippedSample`,
counts them, and seeds every worker's generators from one seeded generator.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .decoding import CorruptImageError, EncodedImage, SkippedSample


def collate_skipping(batch: list[tuple[Any, int]]) -> tuple[Any, Any, list[SkippedSample]]:
    """Collate ``(image, label)`` items, dropping :class:`SkippedSample` ones: ``(images, labels, skipped)``.

    Images may be tensors, tuples of tensors (one per ensemble member) or :class:`EncodedImage` (kept as a
    list). When every item was skipped, images and labels are ``None``.
    """
    skipped = [item[0] for item in batch if isinstance(item[0], SkippedSample)]
    kept = [item for item in batch if not isinstance(item[0], SkippedSample)]
    if not kept:
        return None, None, skipped
    if isinstance(kept[0][0], EncodedImage):
        return [item[0] for item in kept], torch.tensor([item[1] for item in kept]), skipped
    images, labels = default_collate(kept)
    return images, labels, skipped


def seed_worker(worker_id: int) -> None:
    """Seed Python's and numpy's generators in a worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class SkippingDataLoader(DataLoader):
    """A DataLoader yielding ``(images, labels)`` without the samples that could not be decoded.

    ``skipped`` counts the files dropped during the current (or last) pass and ``skipped_files`` lists
    them; both are reset when a new pass starts. Batches where every file was corrupt are not yielded.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped = 0
        self.skipped_files: list[str] = []

    def __iter__(self):  # type: ignore[override]
        self.skipped = 0
        self.skipped_files = []
        for images, labels, skipped in super().__iter__():
            for sample in skipped:
                if sample.fatal:
                    raise CorruptImageError(sample.path, sample.reason)
                self.skipped += 1
                self.skipped_files.append(sample.path)
            if images is not None:
                yield images, labels


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    sampler: Any = None,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> SkippingDataLoader:
    """A :class:`SkippingDataLoader` over ``dataset`` (corrupt files dropped, counted in ``loader.skipped``).

    Shuffling and the workers' seeds come from ``generator`` (default: one seeded with ``seed``), so a run
    is repeatable; each worker's torch, numpy and ``random`` generators are seeded from it. With
    ``num_workers=0`` random transforms draw from the global torch generator (seed it with
    ``torch.manual_seed``). ``pin_memory`` defaults to whether CUDA is available.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
    if sampler is not None and shuffle:
        raise ValueError("give either a sampler or shuffle=True, not both (let the sampler shuffle)")
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    options: dict[str, Any] = {}
    if num_workers > 0:
        options["persistent_workers"] = persistent_workers
        if prefetch_factor is not None:
            options["prefetch_factor"] = prefetch_factor
    return SkippingDataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=seed_worker,
        **options,
    )
