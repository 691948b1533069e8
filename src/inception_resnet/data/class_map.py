"""Class maps (timm's ``class_map``): relabel an image folder by class name, so that weights trained on many
classes (ImageNet) evaluate on a folder holding some of them (``eval --class-map FILE``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..checks import Bounds, check_value
from ..models.registry import MAX_CLASSES
from .image_folder import ImageFolderDataset


def read_class_map(path: str | os.PathLike) -> dict[str, int]:
    """Class name -> model output index, from a JSON object or a text file.

    A text file holds one class name per line (line k, counting from 0 and skipping blank lines, is index k,
    as timm's class-map files) or, when every line ends with a number, ``NAME INDEX`` lines (a space, tab
    or comma between them). Lines starting with ``#`` are comments.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"class map file not found: {path}")
    if not path.is_file():
        raise ValueError(f"class map {path} is not a regular file (a folder, a pipe or a device)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"class map {path} is not UTF-8 text ({err})") from None
    if path.suffix.lower() == ".json":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"class map {path} is not valid JSON ({err})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"class map {path} must be a JSON object of class name -> index")
        mapping = dict(loaded)
    else:
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        pairs = [re.fullmatch(r"(.+?)[\s,]+(\d+)", line) for line in lines]
        if lines and all(pairs):
            mapping = {m.group(1).strip(): int(m.group(2)) for m in pairs}
        else:
            mapping = {name: index for index, name in enumerate(lines)}
    if not mapping:
        raise ValueError(f"class map {path} holds no classes")
    for name, index in mapping.items():  # an index is a classifier output: bounded as num_classes is
        check_value(f"class map {path}: the index of {name!r}", index, int, Bounds(ge=0, le=MAX_CLASSES - 1))
    return mapping


def apply_class_map(
    dataset: ImageFolderDataset, mapping: dict[str, int], where: str = "the class map"
) -> ImageFolderDataset:
    """A copy of an image folder whose labels are ``mapping[folder name]``; ``classes`` gets one name per index.

    Every class folder must be in the map (a ValueError names those that are not). The copy has
    ``max(index) + 1`` classes, named after the map (indices no folder uses keep their names from the map,
    or their number when the map names none), so a model with that many outputs fits it.
    """
    if not isinstance(dataset, ImageFolderDataset):
        raise ValueError("a class map applies to an image folder (--data DIR), not to " + type(dataset).__name__)
    missing = [name for name in dataset.classes if name not in mapping]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(
            f"{len(missing)} class folder(s) of {dataset.root} are not in {where}: {shown}; add them "
            "to the map or remove those folders"
        )
    size = max(mapping.values()) + 1
    names = [str(index) for index in range(size)]
    for name, index in sorted(mapping.items(), key=lambda item: item[1], reverse=True):
        names[index] = name
    relabel = [mapping[name] for name in dataset.classes]
    copy = object.__new__(ImageFolderDataset)
    copy.__dict__.update(dataset.__dict__)
    copy.classes = names
    copy.class_to_idx = {name: mapping[name] for name in dataset.classes}
    copy.samples = [(path, relabel[label]) for path, label in dataset.samples]
    copy.targets = [label for _, label in copy.samples]
    return copy
