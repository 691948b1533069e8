"""The built-in datasets, Fashion-MNIST and MNIST: where their IDX files are found, downloading them, reading them.

Fashion-MNIST is read from the files of the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``) when it is installed, else from torchvision's layout under the
cache directory (``$INCEPTION_RESNET_DATA``, default ``~/.cache/inception_resnet``), downloading it there
with torchvision's downloader when allowed; MNIST has only the cache and the downloader. Without either, the
error says where the files were looked for and how to provide them. :mod:`.datasets` picks these by name;
see docs/architecture.md for the layer.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .decoding import ToFloatImage, copy_with_transform

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
