"""Datasets and loaders: ImageFolder trees, the built-in Fashion-MNIST and MNIST, corrupt-file handling.

* :func:`build_dataset` turns ``data`` into a dataset with ``.classes`` yielding ``(image, label)``:
  ``None`` or ``"fashion-mnist"`` -> Fashion-MNIST, ``"mnist"`` -> MNIST (write ``./mnist`` for a folder of
  that name), anything else -> a directory in ImageNet layout (``DIR/train/<class>/*.jpg`` and
  ``DIR/val/<class>/*.jpg``; ``DIR/<split>`` is used when ``DIR`` has ``train/`` or ``val/``, else ``DIR``
  itself is the class tree). Images are decoded with ``torchvision.io`` (libjpeg-turbo, libpng, libwebp;
  PIL for the other formats) to RGB uint8 tensors; without a transform the dataset yields them as float
  tensors in [0, 1].
* Fashion-MNIST is read from the files of the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``) when it is installed, else from torchvision's layout under the
  cache directory (``$INCEPTION_RESNET_DATA``, default ``~/.cache/inception_resnet``), downloading it there
  with torchvision's downloader when allowed. MNIST has only the cache and the downloader.
* :func:`train_val_datasets` gives a training run its two sets: the ``train/`` and ``val/`` splits where the
  folder has both, else a stated, class-balanced, seeded fraction of the training images held out for
  validation (:func:`inception_resnet.data.subsets.holdout_split`), never the training images themselves.
* Class maps (relabelling a folder by class name) live in :mod:`inception_resnet.data.class_map`.
* A file that cannot be decoded (corrupt, truncated, not an image) is skipped with a warning and counted by
  the loader of :func:`build_loader`; with ``strict=True`` it raises :class:`CorruptImageError` naming the
  file instead. So is a file that is unsafe to read (a named pipe, a device, a symbolic link loop) or whose
  header declares more pixels than the limit, checked before any pixel is decoded
  (:func:`~inception_resnet.data.decoding.check_image_file`). Folders are scanned by real path: a link
  loop or a second link to a folder or file already listed is left out with a warning (never listed twice).
  A missing directory, a class folder without images or a tree without any is a ``FileNotFoundError`` /
  ``ValueError`` saying what to fix.
"""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .decoding import (
    CorruptImageError,
    CorruptImageWarning,
    EncodedImage,
    ToFloatImage,
    decode_bytes,
    max_image_pixels,
    read_encoded,
    skip_or_raise,
)
from .subsets import holdout_split

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "val")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
MNIST_CLASSES = [str(digit) for digit in range(10)]
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
APT_PACKAGE = "dataset-fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class BuiltinDataset:
    """A built-in IDX dataset: where its files may lie and how torchvision downloads it."""

    name: str
    torchvision_class: str
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()


BUILTIN_DATASETS = {
    "fashion-mnist": BuiltinDataset(
        "Fashion-MNIST", "FashionMNIST", tuple(FASHION_MNIST_CLASSES), (DEBIAN_FASHION_MNIST,)
    ),
    "mnist": BuiltinDataset("MNIST", "MNIST", tuple(MNIST_CLASSES)),
}
BUILTIN_ALIASES = {
    "fashion-mnist": "fashion-mnist",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "mnist": "mnist",
}


# -- ImageFolder ----------------------------------------------------------------------------------------
def copy_with_transform(dataset: Any, transform: Callable | None) -> Any:
    """A shallow copy of ``dataset`` (its data shared) applying ``transform``; None gives float images."""
    copy = object.__new__(type(dataset))
    copy.__dict__.update(dataset.__dict__)
    copy.transform = transform if transform is not None else ToFloatImage()
    return copy


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


# -- Fashion-MNIST / MNIST ------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where downloaded data lives: ``$INCEPTION_RESNET_DATA`` or ``~/.cache/inception_resnet``."""
    configured = os.environ.get("INCEPTION_RESNET_DATA")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "inception_resnet"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format, optionally gzipped) as a uint8 numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = bytearray(handle.read())  # writable, so torch.from_numpy can share it
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read {path}: {error}; delete it to have it downloaded again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an uint8 IDX file; delete it to have it downloaded again")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated ({len(raw) - offset} bytes for shape {shape}); delete it")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def find_idx_pair(directory: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of ``split`` in ``directory``, plain or gzipped, if both exist."""
    pair = []
    for stem in IDX_FILES[split]:
        candidates = [directory / stem, directory / f"{stem}.gz"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            return None
        pair.append(found)
    return pair[0], pair[1]


def locate_builtin(spec: BuiltinDataset, split: str, download: bool) -> tuple[Path, Path]:
    """Find the IDX files of a built-in dataset; download them with torchvision into the cache if allowed."""
    torchvision_raw = cache_dir() / spec.torchvision_class / "raw"
    for directory in (*map(Path, spec.system_dirs), torchvision_raw):
        found = find_idx_pair(directory, split)
        if found:
            return found
    if download:
        import torchvision.datasets

        try:
            getattr(torchvision.datasets, spec.torchvision_class)(
                root=str(cache_dir()), train=split == "train", download=True
            )
        except Exception as error:  # the downloader raises several types; all mean "not available"
            raise RuntimeError(offline_message(spec, torchvision_raw, f"the download failed: {error}")) from None
        found = find_idx_pair(torchvision_raw, split)
        if found:
            return found
    raise RuntimeError(offline_message(spec, torchvision_raw, "downloading is disabled"))


def offline_message(spec: BuiltinDataset, torchvision_raw: Path, why: str) -> str:
    where = [
        f"the Debian package {APT_PACKAGE} (apt-get install {APT_PACKAGE}; files in {d})" for d in spec.system_dirs
    ]
    where.append(f"the cache directory {torchvision_raw} (set INCEPTION_RESNET_DATA to move it)")
    return (
        f"{spec.name} is not available: {why}. Looked for its IDX files in "
        + " and ".join(where)
        + ". Install the package, copy the four *-ubyte(.gz) files into the cache directory, or run once "
        "with network access to let torchvision download them there; or pass --data DIR with an image folder."
    )


class IdxDataset(Dataset):
    """Fashion-MNIST / MNIST from IDX files: 1 x 28 x 28 uint8 images through ``transform``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        transform: Callable | None = None,
        name: str = "idx",
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{name}: {len(images)} images but {len(labels)} labels")
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.targets = [int(label) for label in labels]
        self.classes = list(classes)
        self.transform = transform if transform is not None else ToFloatImage()
        self.name = name

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.transform(self.images[index].unsqueeze(0)), self.targets[index]

    def with_transform(self, transform: Callable | None) -> IdxDataset:
        """A copy of this dataset applying ``transform`` (the images are shared, not copied)."""
        return copy_with_transform(self, transform)

    def __repr__(self) -> str:
        return f"IdxDataset({self.name}, {len(self)} images, {len(self.classes)} classes)"


def load_builtin(key: str, split: str, transform: Callable | None, download: bool) -> IdxDataset:
    spec = BUILTIN_DATASETS[key]
    images_path, labels_path = locate_builtin(spec, split, download)
    return IdxDataset(
        read_idx(images_path), read_idx(labels_path), spec.classes, transform, name=f"{spec.name} {split}"
    )


# -- entry points ---------------------------------------------------------------------------------------
def resolve_split_dir(root: Path, split: str) -> Path:
    """``root/split`` when ``root`` has ``train/`` or ``val/`` sub-folders, else ``root`` itself."""
    if not root.exists():
        raise FileNotFoundError(f"data directory {root} does not exist")
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present:
        return root
    if split not in present:
        raise FileNotFoundError(
            f"{root} has {', '.join(n + '/' for n in present)} but no {split}/ folder; add {root / split} "
            f"or choose --split {present[0]}"
        )
    return root / split


def build_dataset(
    data: str | os.PathLike | None,
    split: str,
    transform: Callable | None = None,
    *,
    strict: bool = False,
    download: bool = True,
    decode: bool = True,
    max_pixels: int | None = None,
) -> Dataset:
    """A dataset with ``.classes`` and ``.targets`` yielding ``(transform(image), label)``.

    ``data``: ``None``/``"fashion-mnist"``, ``"mnist"`` or an image-folder directory (see the module
    docstring); ``split``: ``"train"`` or ``"val"`` (Fashion-MNIST's val split is its 10,000 test images).
    ``download=False`` never touches the network. ``strict`` turns skipped corrupt files into errors.
    ``max_pixels``: images whose header declares more pixels are skipped unread (default
    :func:`~.decoding.max_image_pixels`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    key = "fashion-mnist" if data is None else BUILTIN_ALIASES.get(str(data).lower())
    if key is not None:
        return load_builtin(key, split, transform, download)
    root = resolve_split_dir(Path(data).expanduser(), split)
    return ImageFolderDataset(root, transform, strict=strict, decode=decode, max_pixels=max_pixels)


def train_val_datasets(
    data: str | os.PathLike | None,
    val_fraction: float,
    seed: int = 0,
    *,
    download: bool = True,
) -> tuple[Dataset, Dataset | None, str]:
    """The training and validation sets of a training run, and a sentence saying where validation comes from.

    Fashion-MNIST / MNIST: their train and test splits. An image folder with ``train/`` and ``val/``: those.
    A folder without ``val/`` (its ``train/``, or the folder itself as the class tree): ``val_fraction`` of
    the training images, class-balanced and chosen by ``seed``, are held out for validation and not
    trained on; ``val_fraction=0`` trains on every image and validates on none.
    """
    key = "fashion-mnist" if data is None else BUILTIN_ALIASES.get(str(data).lower())
    if key is not None:
        train = load_builtin(key, "train", None, download)
        val = load_builtin(key, "val", None, download)
        return train, val, f"validation on the {BUILTIN_DATASETS[key].name} test split ({len(val)} images)"
    root = Path(data).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data directory {root} does not exist")
    has_train, has_val = (root / "train").is_dir(), (root / "val").is_dir()
    if has_val and not has_train:
        raise FileNotFoundError(
            f"{root} has val/ but no train/ folder; put the training images in {root / 'train'}/<class>/ "
            f"(or give the class tree itself as --data)"
        )
    full = ImageFolderDataset(root / "train" if has_train else root)
    if has_val:
        val = ImageFolderDataset(root / "val")
        return full, val, f"validation on {root / 'val'} ({len(val)} images)"
    if val_fraction == 0:
        return full, None, f"no validation: {root} has no val/ split and val_fraction is 0"
    train, val = holdout_split(full, val_fraction, seed)
    return (
        train,
        val,
        (
            f"{root} has no val/ split: {len(val)} of its {len(full)} training images ({val_fraction:.0%}, "
            f"class-balanced, seed {seed}) are held out for validation and not trained on (val_fraction)"
        ),
    )
