"""The datasets by name: :func:`build_dataset` and :func:`train_val_datasets` over image folders
(:mod:`.image_folder`) and the built-in Fashion-MNIST and MNIST (:mod:`.builtin_datasets`); corrupt-file handling.

* :func:`build_dataset` turns ``data`` into a dataset with ``.classes`` yielding ``(image, label)``:
  ``None`` or ``"fashion-mnist"`` -> Fashion-MNIST, ``"mnist"`` -> MNIST (write ``./mnist`` for a folder of
  that name), anything else -> a directory in ImageNet layout (``DIR/train/<class>/*.jpg`` and
  ``DIR/val/<class>/*.jpg``; ``DIR/<split>`` is used when ``DIR`` has ``train/`` or ``val/``, else ``DIR``
  itself is the class tree). Images are decoded with ``torchvision.io`` (libjpeg-turbo, libpng, libwebp;
  PIL for the other formats) to RGB uint8 tensors; without a transform the dataset yields them as float
  tensors in [0, 1].
* Fashion-MNIST and MNIST are read from their IDX files, found or downloaded as :mod:`.builtin_datasets`
  says.
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

import os
from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from .builtin_datasets import BUILTIN_ALIASES, BUILTIN_DATASETS, load_builtin
from .image_folder import ImageFolderDataset
from .subsets import holdout_split

SPLITS = ("train", "val")


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
