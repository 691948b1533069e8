"""Data: datasets (image folders, Fashion-MNIST, MNIST, synthetic), decoding, loaders, preprocessing, crop sets.

* :mod:`.datasets` - ``build_dataset(data, split)`` and ``train_val_datasets`` (a held-out validation share
  where a folder has no ``val/``), over :mod:`.image_folder` (class-per-folder trees) and
  :mod:`.builtin_datasets` (Fashion-MNIST, MNIST); :mod:`.class_map` - class maps;
* :mod:`.decoding` - decoding files, and skipping (or refusing) the ones that cannot be decoded;
* :mod:`.subsets` - class-balanced subsets, held-out parts and the items of some classes; :mod:`.loaders` -
  ``build_loader`` (skips the samples that could not be decoded, seeds its workers);
* :mod:`.synthetic` - ``synthetic:N[:CLASSES]`` noise images for smoke tests;
* :mod:`.transforms` - training augmentation and evaluation preprocessing; :mod:`.pad_crop` - the same for
  small images (pad, random crop, flip);
* :mod:`.crops` - the paper's multi-crop evaluation views.

Its layer (above ``models/`` and ``weights/``, below ``evaluation/`` and ``training/``) and where a new
dataset or preprocessing goes: docs/architecture.md.
"""

from .augment import TrainTransform, train_transform
from .builtin_datasets import BUILTIN_DATASETS, DEBIAN_FASHION_MNIST, BuiltinDataset, IdxDataset
from .class_map import apply_class_map, read_class_map
from .crops import CROP_SETS, MultiCropTransform, crop_views, multi_crop_scales, multi_crop_transform_for
from .datasets import build_dataset, train_val_datasets
from .decoding import (
    CorruptImageError,
    CorruptImageWarning,
    EncodedImage,
    SkippedSample,
    decode_encoded,
    decode_file,
)
from .image_folder import IMAGE_EXTENSIONS, ImageFolderDataset
from .loaders import SkippingDataLoader, build_loader, collate_skipping
from .pad_crop import PadCropTransform, whole_image_transform
from .subsets import ClassSubset, DatasetSubset, class_subset, holdout_split, subset
from .synthetic import SyntheticDataset, parse_synthetic
from .transforms import (
    EVAL_STYLES,
    INCEPTION_MEAN,
    INCEPTION_STD,
    EvalTransform,
    eval_transform,
    eval_transform_for,
    resize_shorter_side,
)

__all__ = [
    "BUILTIN_DATASETS",
    "CROP_SETS",
    "DEBIAN_FASHION_MNIST",
    "EVAL_STYLES",
    "IMAGE_EXTENSIONS",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "BuiltinDataset",
    "ClassSubset",
    "CorruptImageError",
    "CorruptImageWarning",
    "DatasetSubset",
    "EncodedImage",
    "EvalTransform",
    "IdxDataset",
    "ImageFolderDataset",
    "MultiCropTransform",
    "PadCropTransform",
    "SkippedSample",
    "SkippingDataLoader",
    "SyntheticDataset",
    "TrainTransform",
    "apply_class_map",
    "build_dataset",
    "build_loader",
    "class_subset",
    "collate_skipping",
    "crop_views",
    "decode_encoded",
    "decode_file",
    "eval_transform",
    "eval_transform_for",
    "holdout_split",
    "multi_crop_scales",
    "multi_crop_transform_for",
    "parse_synthetic",
    "read_class_map",
    "resize_shorter_side",
    "subset",
    "train_transform",
    "train_val_datasets",
    "whole_image_transform",
]
