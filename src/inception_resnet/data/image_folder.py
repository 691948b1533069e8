"""Image folders: a class-per-folder tree (ImageNet's layout) scanned once, by real path, and decoded on access.

:func:`scan_image_folder` lists the classes (sorted folder names: the label order) and their image files;
a link loop or a second link to a folder or file already listed is left out with a warning, an empty class
or a tree without images is a ValueError saying what to fix. :class:`ImageFolderDataset` decodes each file
with ``torchvision.io`` when it is read, and skips (or, under ``strict``, refuses) the ones that cannot be
decoded or are unsafe to read (:mod:`.decoding`). :mod:`.datasets` says which folder a split reads; see
docs/architecture.md for the layer.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .decoding import (
    CorruptImageError,
    CorruptImageWarning,
    EncodedImage,
    ToFloatImage,
    copy_with_transform,
    decode_bytes,
    max_image_pixels,
    read_encoded,
    skip_or_raise,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def class_folders(root: Path) -> list[str]:
    """The class sub-folders of ``root``, sorted (the label order), or a ValueError saying what is wrong."""
    entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    folders = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    if folders:
        return folders
    if any(e.is_file() and is_image_file(e.name) for e in entries):
        raise ValueError(
            f"the images in {root} lie directly in it; an image folder needs one sub-folder per class "
            f"({root}/<class name>/<image>)"
        )
    raise ValueError(
        f"no images in {root}: expected one sub-folder per class holding image files ({', '.join(IMAGE_EXTENSIONS)})"
    )


def image_files(
    folder: Path,
    seen_files: dict[str, str] | None = None,
    seen_dirs: dict[str, str] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[str]:
    """The image files under ``folder`` (recursively, following links), each directory's files sorted first.

    Every file and folder is listed once, by its real path: a link to a folder above it (a loop) or to a
    folder or file already listed is left out and recorded in ``skipped`` as ``(path, reason)`` (share the
    ``seen_*`` dicts between calls to dedupe across class folders). Special files (pipes, devices) are
    listed like other files and refused, unread, when loaded (:func:`~.decoding.check_image_file`).
    """
    seen_files = {} if seen_files is None else seen_files
    seen_dirs = {} if seen_dirs is None else seen_dirs
    skipped = [] if skipped is None else skipped
    found: list[str] = []
    root_real = os.path.realpath(folder)
    seen_dirs.setdefault(root_real, str(folder))
    above = (root_real, *map(str, Path(root_real).parents))  # a link to any of these is a loop
    stack: list[tuple[str, str, tuple[str, ...]]] = [(str(folder), root_real, above)]
    while stack:
        current, current_real, ancestors = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except OSError as error:
            skipped.append((current, f"cannot list the folder ({error.strerror or error})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            link = entry.is_symlink()
            real = real_path(entry.path) if link else os.path.join(current_real, entry.name)
            if is_folder(entry):  # follows links; a link loop or a broken link counts as a file here
                if real in ancestors:
                    skipped.append((entry.path, f"a symbolic link loop: it leads back to {real}, a folder above it"))
                elif real in seen_dirs:
                    skipped.append((entry.path, f"the same folder as {seen_dirs[real]}, already listed"))
                else:
                    seen_dirs[real] = entry.path
                    subfolders.append((entry.path, real, (*ancestors, real)))
            elif is_image_file(entry.name):
                if real in seen_files:
                    skipped.append((entry.path, f"the same file as {seen_files[real]}, already listed"))
                else:
                    seen_files[real] = entry.path
                    found.append(entry.path)
        stack.extend(reversed(subfolders))
    return found


def is_folder(entry: os.DirEntry) -> bool:
    """Whether a directory entry is a folder, following links; False for a link loop or a broken link."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def real_path(path: str) -> str:
    """``os.path.realpath``, or ``path`` itself for a link loop (refused when it is loaded)."""
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, str]]]:
    """Classes, (path, label) samples and (path, reason) entries left out, of an ImageFolder tree.

    An empty class is an error. Left-out entries (link loops, duplicates) are warned about here and counted
    with the skipped files by :func:`inception_resnet.evaluation.evaluate`.
    """
    classes = class_folders(root)
    samples: list[tuple[str, int]] = []
    empty = []
    seen_files: dict[str, str] = {}
    seen_dirs: dict[str, str] = {os.path.realpath(root / name): str(root / name) for name in classes}
    skipped: list[tuple[str, str]] = []
    for label, name in enumerate(classes):
        files = image_files(root / name, seen_files, seen_dirs, skipped)
        if not files:
            empty.append(name)
        samples.extend((path, label) for path in files)
    for path, reason in skipped:
        warnings.warn(f"skipping {path}: {reason}", CorruptImageWarning, stacklevel=3)
    if empty:
        shown = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise ValueError(
            f"{len(empty)} class folder(s) in {root} hold no images: {shown}; add images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or remove the empty folders"
        )
    return classes, samples, skipped


class ImageFolderDataset(Dataset):
    """A class-per-folder image tree decoded with ``torchvision.io``; labels follow sorted folder names.

    ``decode=False`` yields :class:`EncodedImage` bytes instead (decoded later with :func:`decode_encoded`,
    e.g. on the GPU). An undecodable file yields a :class:`SkippedSample` (or raises under ``strict``), as
    does a file that is unsafe to read or has more than ``max_pixels`` pixels (:func:`~.decoding.check_image_file`).
    ``scan_skipped`` lists the ``(path, reason)`` entries left out of the file list (link loops, duplicates).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable | None = None,
        *,
        strict: bool = False,
        decode: bool = True,
        max_pixels: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"data directory {self.root} does not exist")
        if not self.root.is_dir():
            raise NotADirectoryError(f"data path {self.root} is not a directory; give an image folder tree")
        self.max_pixels = max_image_pixels(max_pixels)
        self.classes, self.samples, self.scan_skipped = scan_image_folder(self.root)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.targets = [label for _, label in self.samples]
        self.transform = transform if transform is not None else ToFloatImage()
        self.strict = strict
        self.decode = decode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        try:
            data = read_encoded(path, self.max_pixels)
            if not self.decode:
                return EncodedImage(data, path), label
            image = decode_bytes(data, path, max_pixels=self.max_pixels)
        except CorruptImageError as error:
            return skip_or_raise(error, self.strict), label
        return self.transform(image), label

    def with_transform(self, transform: Callable | None) -> ImageFolderDataset:
        """A copy of this dataset applying ``transform`` (the file list is shared, not rescanned)."""
        return copy_with_transform(self, transform)

    def __repr__(self) -> str:
        return f"ImageFolderDataset({self.root}, {len(self)} images, {len(self.classes)} classes)"
