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
  validation (:func:`holdout_split`), never the training images themselves.
* :func:`read_class_map` and :func:`apply_class_map` relabel an image folder by class name (timm's
  ``class_map``), so that weights trained on many classes evaluate on a folder holding some of them.
* A file that cannot be decoded (corrupt, truncated, not an image) is skipped with a warning and counted by
  the loader of :func:`build_loader`; with ``strict=True`` it raises :class:`CorruptImageError` naming the
  file instead. A missing directory, a class folder without images or a tree without any is a
  ``FileNotFoundError`` / ``ValueError`` saying what to fix.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from .transforms import to_float

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
SPLITS = ("train", "val")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
MNIST_CLASSES = [str(digit) for digit in range(10)]
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
APT_PACKAGE = "dataset-fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


def is_complete_jpeg(data: torch.Tensor) -> bool:
    """Whether encoded bytes are a JPEG whose end-of-image marker is among its last 64 bytes.

    Only those go to nvJPEG, which can decode a cut-off file without complaint; the rest take the CPU's
    libjpeg-turbo, which reports the truncation, so that both devices skip the same corrupt files.
    """
    return bytes(data[:3].tolist()) == JPEG_MAGIC and JPEG_END in bytes(data[-64:].tolist())


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
BUILTIN_ALIASES = {"fashion-mnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
                   "mnist": "mnist"}


class CorruptImageWarning(UserWarning):
    """Issued for each file skipped because it could not be decoded."""


class CorruptImageError(RuntimeError):
    """A file that could not be decoded as an image; ``path`` names it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"cannot decode image {path}: {reason} (remove or replace the file, or run without --strict "
            "to skip such files)"
        )
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class SkippedSample:
    """What a dataset returns in place of an image it could not decode; the loader drops and counts it."""

    path: str
    reason: str
    fatal: bool = False


@dataclass(frozen=True)
class EncodedImage:
    """The undecoded bytes of an image file (``decode=False``), to decode later, e.g. on the GPU."""

    data: torch.Tensor
    path: str

    @property
    def is_complete_jpeg(self) -> bool:
        return is_complete_jpeg(self.data)


class ToFloatImage:
    """The default transform: a C x H x W float tensor in [0, 1]."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return to_float(image)

    def __repr__(self) -> str:
        return "ToFloatImage()"


# -- decoding -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def torchvision_io() -> Any:
    """Silence the DeprecationWarning torchvision 0.29 issues on every codec call (TorchCodec supersedes them).

    We use these codecs on purpose (libjpeg-turbo and nvJPEG through one API); users cannot act on it.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The image decoding and encoding", category=DeprecationWarning)
        yield


def decode_bytes(data: torch.Tensor, path: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """Decode encoded bytes to an RGB uint8 C x H x W tensor; JPEG on ``device``, others through the CPU.

    Formats torchvision cannot read (BMP, TIFF...) go through PIL; failure is a :class:`CorruptImageError`.
    """
    device = torch.device(device)
    try:
        with torchvision_io():
            if device.type == "cuda" and is_complete_jpeg(data):
                return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
            return decode_image(data, mode=ImageReadMode.RGB).to(device)
    except RuntimeError as torchvision_error:
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as pil_error:
            reason = f"{first_line(torchvision_error)}; PIL: {first_line(pil_error)}"
            raise CorruptImageError(path, reason) from None
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous().to(device)


def first_line(error: BaseException) -> str:
    """The gist of an error message, without torchvision's C++ source location."""
    lines = str(error).strip().splitlines()
    text = lines[-1] if lines else type(error).__name__
    return re.sub(r"^\w+, \S+\.cpp:\d+, ", "", text)


def decode_file(path: str) -> torch.Tensor:
    """Read and decode an image file to an RGB uint8 C x H x W tensor (:class:`CorruptImageError` if not)."""
    try:
        with torchvision_io():
            data = read_file(path)
    except (OSError, RuntimeError) as error:
        raise CorruptImageError(path, first_line(error)) from None
    return decode_bytes(data, path)


def skip_or_raise(error: CorruptImageError, strict: bool) -> SkippedSample:
    """Under ``strict`` raise; otherwise warn and return the placeholder the loader drops and counts.

    In a DataLoader worker a strict error travels as a ``fatal`` placeholder instead, so that the loader
    raises it in the main process as a plain :class:`CorruptImageError` (not a wrapped worker traceback).
    """
    if strict:
        if torch.utils.data.get_worker_info() is None:
            raise error
        return SkippedSample(error.path, error.reason, fatal=True)
    warnings.warn(f"skipping {error.path}: {error.reason}", CorruptImageWarning, stacklevel=2)
    return SkippedSample(error.path, error.reason)


def decode_encoded(
    images: Sequence[EncodedImage], device: str | torch.device = "cpu", *, strict: bool = False
) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """Decode a batch of :class:`EncodedImage` on ``device`` (batched nvJPEG on CUDA, one by one otherwise).

    Returns the decoded images, the indices in ``images`` they came from, and the paths skipped as corrupt.
    """
    device = torch.device(device)
    decoded: list[torch.Tensor | None] = [None] * len(images)
    jpegs = [i for i, image in enumerate(images) if image.is_complete_jpeg]
    if device.type == "cuda" and len(jpegs) > 1:
        try:
            with torchvision_io():
                batch = decode_jpeg([images[i].data for i in jpegs], mode=ImageReadMode.RGB, device=device)
            for i, image in zip(jpegs, batch, strict=True):
                decoded[i] = image
        except RuntimeError:
            pass  # a bad file in the batch: decode one by one below to find it
    skipped: list[str] = []
    for i, image in enumerate(images):
        if decoded[i] is None:
            try:
                decoded[i] = decode_bytes(image.data, image.path, device)
            except CorruptImageError as error:
                skip_or_raise(error, strict)
                skipped.append(error.path)
    kept = [i for i, image in enumerate(decoded) if image is not None]
    return [decoded[i] for i in kept], kept, skipped


# -- ImageFolder ----------------------------------------------------------------------------------------
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
        f"no images in {root}: expected one sub-folder per class holding image files "
        f"({', '.join(IMAGE_EXTENSIONS)})"
    )


def image_files(folder: Path) -> list[str]:
    """The image files under ``folder`` (recursively, following links), sorted."""
    found = []
    for current, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(current, name) for name in sorted(files) if is_image_file(name))
    return found


def scan_image_folder(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes and (path, label) samples of an ImageFolder tree; an empty class is an error."""
    classes = class_folders(root)
    samples: list[tuple[str, int]] = []
    empty = []
    for label, name in enumerate(classes):
        files = image_files(root / name)
        if not files:
            empty.append(name)
        samples.extend((path, label) for path in files)
    if empty:
        shown = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise ValueError(
            f"{len(empty)} class folder(s) in {root} hold no images: {shown}; add images "
            f"({', '.join(IMAGE_EXTENSIONS)}) or remove the empty folders"
        )
    return classes, samples


class ImageFolderDataset(Dataset):
    """A class-per-folder image tree decoded with ``torchvision.io``; labels follow sorted folder names.

    ``decode=False`` yields :class:`EncodedImage` bytes instead (decoded later with :func:`decode_encoded`,
    e.g. on the GPU). An undecodable file yields a :class:`SkippedSample` (or raises under ``strict``).
    """

    def __init__(
        self, root: str | os.PathLike, transform: Callable | None = None, *, strict: bool = False,
        decode: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"data directory {self.root} does not exist")
        if not self.root.is_dir():
            raise NotADirectoryError(f"data path {self.root} is not a directory; give an image folder tree")
        self.classes, self.samples = scan_image_folder(self.root)
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
            if not self.decode:
                try:
                    with torchvision_io():
                        return EncodedImage(read_file(path), path), label
                except (OSError, RuntimeError) as error:
                    raise CorruptImageError(path, first_line(error)) from None
            image = decode_file(path)
        except CorruptImageError as error:
            return skip_or_raise(error, self.strict), label
        return self.transform(image), label

    def with_transform(self, transform: Callable | None) -> ImageFolderDataset:
        """A copy of this dataset applying ``transform`` (the file list is shared, not rescanned)."""
        copy = object.__new__(ImageFolderDataset)
        copy.__dict__.update(self.__dict__)
        copy.transform = transform if transform is not None else ToFloatImage()
        return copy

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
    where = [f"the Debian package {APT_PACKAGE} (apt-get install {APT_PACKAGE}; files in {d})"
             for d in spec.system_dirs]
    where.append(f"the cache directory {torchvision_raw} (set INCEPTION_RESNET_DATA to move it)")
    return (
        f"{spec.name} is not available: {why}. Looked for its IDX files in " + " and ".join(where)
        + ". Install the package, copy the four *-ubyte(.gz) files into the cache directory, or run once "
        "with network access to let torchvision download them there; or pass --data DIR with an image folder."
    )


class IdxDataset(Dataset):
    """Fashion-MNIST / MNIST from IDX files: 1 x 28 x 28 uint8 images through ``transform``."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, classes: Sequence[str], transform: Callable | None = None,
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
        copy = object.__new__(IdxDataset)
        copy.__dict__.update(self.__dict__)
        copy.transform = transform if transform is not None else ToFloatImage()
        return copy

    def __repr__(self) -> str:
        return f"IdxDataset({self.name}, {len(self)} images, {len(self.classes)} classes)"


def load_builtin(key: str, split: str, transform: Callable | None, download: bool) -> IdxDataset:
    spec = BUILTIN_DATASETS[key]
    images_path, labels_path = locate_builtin(spec, split, download)
    return IdxDataset(read_idx(images_path), read_idx(labels_path), spec.classes, transform,
                      name=f"{spec.name} {split}")


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
) -> Dataset:
    """A dataset with ``.classes`` and ``.targets`` yielding ``(transform(image), label)``.

    ``data``: ``None``/``"fashion-mnist"``, ``"mnist"`` or an image-folder directory (see the module
    docstring); ``split``: ``"train"`` or ``"val"`` (Fashion-MNIST's val split is its 10,000 test images).
    ``download=False`` never touches the network. ``strict`` turns skipped corrupt files into errors.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    key = "fashion-mnist" if data is None else BUILTIN_ALIASES.get(str(data).lower())
    if key is not None:
        return load_builtin(key, split, transform, download)
    root = resolve_split_dir(Path(data).expanduser(), split)
    return ImageFolderDataset(root, transform, strict=strict, decode=decode)


def read_class_map(path: str | os.PathLike) -> dict[str, int]:
    """Class name -> model output index, from a JSON object or a text file.

    A text file holds one class name per line (line k, counting from 0 and skipping blank lines, is index k,
    as timm's class-map files) or, when every line ends with a number, ``NAME INDEX`` lines (a space, tab
    or comma between them). Lines starting with ``#`` are comments.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"class map file not found: {path}")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"class map {path} is not valid JSON ({err})") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, int) for v in loaded.values()):
            raise ValueError(f"class map {path} must be a JSON object of class name -> index")
        mapping = {str(k): int(v) for k, v in loaded.items()}
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
    if min(mapping.values()) < 0:
        raise ValueError(f"class map {path} has a negative index")
    return mapping


def apply_class_map(dataset: ImageFolderDataset, mapping: dict[str, int], where: str = "the class map"
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
        raise ValueError(f"{len(missing)} class folder(s) of {dataset.root} are not in {where}: {shown}; add them "
                         "to the map or remove those folders")
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


def train_val_datasets(
    data: str | os.PathLike | None, val_fraction: float, seed: int = 0, *, download: bool = True,
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
    return train, val, (
        f"{root} has no val/ split: {len(val)} of its {len(full)} training images ({val_fraction:.0%}, "
        f"class-balanced, seed {seed}) are held out for validation and not trained on (val_fraction)"
    )


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
