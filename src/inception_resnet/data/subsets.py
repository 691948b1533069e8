"""Subsets of a dataset: a seeded, class-balanced choice of ``n`` items, a held-out part of each class, and the
items of some classes only (:func:`class_subset`, relabelled).

The first two keep the dataset's ``classes``; all choose by the dataset's ``targets`` without decoding an
image. The loaders that read them are in :mod:`inception_resnet.data.loaders`;
:mod:`inception_resnet.data.datasets` says what the datasets yield.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


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


class ClassSubset(DatasetSubset):
    """The items of some classes of a dataset, relabelled ``0..k-1`` in the order the classes are given.

    ``labels`` are the dataset's labels of the chosen classes; ``classes`` and ``targets`` are the new ones.
    """

    def __init__(self, dataset: Dataset, labels: Sequence[int]) -> None:
        self.labels = [int(label) for label in labels]
        self.relabel = {old: new for new, old in enumerate(self.labels)}
        targets = dataset.targets
        super().__init__(dataset, [i for i, label in enumerate(targets) if int(label) in self.relabel])
        names = list(getattr(dataset, "classes", []))
        self.classes = [names[label] for label in self.labels]
        self.targets = [self.relabel[int(label)] for label in self.targets]

    def __getitem__(self, index: int) -> Any:
        image, label = self.dataset[self.indices[index]]
        return image, self.relabel[int(label)]

    def with_transform(self, transform: Callable | None) -> ClassSubset:
        return ClassSubset(self.dataset.with_transform(transform), self.labels)

    def __repr__(self) -> str:
        return f"ClassSubset({len(self)} images of {len(self.classes)} classes of {self.dataset!r})"


def class_labels(names: Sequence[str], classes: Sequence[int | str]) -> list[int]:
    """The labels of ``classes`` among the class ``names``: each a name, or an index (an int, or a text of
    digits that is not itself a name); a ValueError for one that is neither, or a class given twice."""
    position = {name: label for label, name in enumerate(names)}
    labels: list[int] = []
    for item in classes:
        if isinstance(item, str) and item in position:
            label = position[item]
        elif isinstance(item, int) or (isinstance(item, str) and item.isdecimal()):
            label = int(item)
            if not 0 <= label < len(names):
                raise ValueError(f"classes: {item!r} is no class index of the data (0 to {len(names) - 1})")
        else:
            close = difflib.get_close_matches(str(item), list(names), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"the data's classes: {', '.join(names)}"
            raise ValueError(f"classes: {item!r} is not a class of the data ({hint})")
        if label in labels:
            raise ValueError(f"classes: {item!r} names class {label} ({names[label]}) a second time")
        labels.append(label)
    if not labels:
        raise ValueError("classes: give at least one class")
    return labels


def class_subset(dataset: Dataset, classes: Sequence[int | str]) -> ClassSubset:
    """The items of ``classes`` (names or indices of ``dataset.classes``), relabelled ``0..k-1`` in that order.

    Chooses by ``dataset.targets`` (no decoding); ``classes`` as :func:`class_labels` reads them.
    """
    if getattr(dataset, "targets", None) is None:
        raise ValueError("choosing classes needs a dataset with .targets (one label per item)")
    return ClassSubset(dataset, class_labels(list(dataset.classes), classes))
