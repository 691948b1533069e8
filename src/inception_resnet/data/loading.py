"""Subsets and data loaders: class-balanced subsets and held-out splits, a collate that skips corrupt images,
seeded workers.

See :mod:`inception_resnet.data.datasets` for what the datasets yield.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .decoding import CorruptImageError, EncodedImage, SkippedSample


class DatasetSubset(Dataset):
    """Some items of a dataset, keeping its ``classes``; ``targets`` are those of the chosen items."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.classes = list(getattr(dataset, "classes", []))
        parent_targets = getattr(dataset, "targets", None)
        self.targets = [parent_targets[i] for i in self.indices] if parent_targets is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def with_transform(self, transform: Callable | None) -> DatasetSubset:
        return DatasetSubset(self.dataset.with_transform(transform), self.indices)

    @property
    def transform(self) -> Callable | None:
        return getattr(self.dataset, "transform", None)

    def __repr__(self) -> str:
        return f"DatasetSubset({len(self)} of {self.dataset!r})"


def subset(dataset: Dataset, n: int, seed: int = 0) -> Dataset:
    """``n`` items chosen deterministically by ``seed``, spread evenly over the classes (round robin).

    Uses ``dataset.targets`` when present (no decoding), else a seeded random choice. ``n`` at or above
    the dataset size keeps every item. The indices are returned sorted, so file order is kept.
    """
    if n < 1:
        raise ValueError(f"a subset needs at least 1 item, got n={n}")
    total = len(dataset)
    if n >= total:
        return DatasetSubset(dataset, range(total))
    generator = torch.Generator().manual_seed(seed)
    targets = getattr(dataset, "targets", None)
    if targets is None:
        return DatasetSubset(dataset, sorted(torch.randperm(total, generator=generator)[:n].tolist()))
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_class.setdefault(int(label), []).append(index)
    queues = []
    for label in sorted(by_class):
        members = by_class[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        queues.append([members[i] for i in order])
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n:
        for queue in queues:
            if depth < len(queue) and len(chosen) < n:
                chosen.append(queue[depth])
        depth += 1
    return DatasetSubset(dataset, sorted(chosen))



def holdout_split(dataset: Dataset, fraction: float, seed: int = 0) -> tuple[DatasetSubset, DatasetSubset]:
    """``(train, held_out)``: ``fraction`` of each class's items held out, chosen by ``seed``; disjoint.

    A class of ``n`` items gives ``round(fraction * n)`` of them (at least one when ``n >= 2``, never all), so
    the held-out set has the training set's class balance. Uses ``dataset.targets`` (no decoding).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must lie strictly between 0 and 1, got {fraction}")
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise ValueError("holdout_split needs a dataset with .targets (one label per item)")
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_class.setdefault(int(label), []).append(index)
    generator = torch.Generator().manual_seed(seed)
    held_out: list[int] = []
    for label in sorted(by_class):
        members = by_class[label]
        count = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) >= 2 else 0
        order = torch.randperm(len(members), generator=generator).tolist()
        held_out.extend(members[i] for i in order[:count])
    if not held_out:
        raise ValueError(
            "cannot hold out images for validation: every class has a single image; add a val/ folder with "
            "images of each class, or more training images"
        )
    chosen = set(held_out)
    kept = [i for i in range(len(targets)) if i not in chosen]
    return DatasetSubset(dataset, kept), DatasetSubset(dataset, sorted(held_out))


# -- loading --------------------------------------------------------------------------------------------
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
