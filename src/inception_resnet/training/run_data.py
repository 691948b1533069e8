"""The data of a run before its loaders exist: training and validation sets, their limits, transforms and checks.

:func:`load_run_data` decides where the images come from (datasets given to ``train()``, synthetic noise,
``config.data`` with a validation split or a held-out part of the training split) and applies ``classes``
and ``max_train_images`` / ``max_val_images``; :func:`attach_transforms` gives data from
:func:`inception_resnet.data.build_dataset` the network's preprocessing once the network exists;
:func:`check_fit` turns a mismatch between network and data into a clear error before the first step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import datasets
from ..data.augment import train_transform
from ..data.pad_crop import PadCropTransform, whole_image_transform
from ..data.subsets import class_subset, holdout_split, subset
from ..data.synthetic import SyntheticDataset, parse_synthetic
from ..data.transforms import eval_transform_for
from ..models.inputs import check_min_size
from .config import TrainConfig
from .rng import isolated_rng

HOLDOUT_SEED = 0  # the held-out part of the training split is the same for every run and seed


@dataclass
class RunData:
    """The datasets of a run and what the run's configuration file says about them.

    ``clean_train`` holds the training images without augmentation (the images BatchNorm statistics are
    recomputed on); ``validation`` says in words what the run validates on; ``needs_transforms`` is True for
    data that still needs the network's preprocessing (:func:`attach_transforms`).
    """

    train: Dataset
    val: Dataset | None
    clean_train: Dataset
    validation: str
    needs_transforms: bool


def first_image(dataset: Dataset, attempts: int = 8) -> torch.Tensor:
    """The first decodable training image (to check its shape before training)."""
    for index in range(min(attempts, len(dataset))):
        image = dataset[index][0]
        if isinstance(image, torch.Tensor):
            return image
    raise ValueError(f"none of the first {attempts} training images could be read; check the data")


def load_run_data(
    config: TrainConfig, train_dataset: Dataset | None, val_dataset: Dataset | None, say: Callable[[str], None]
) -> RunData:
    """The training and validation sets, limited to ``classes`` and ``max_train_images`` / ``max_val_images``,
    before transforms.

    Datasets given by the caller and synthetic data are used as they are; data from
    :func:`inception_resnet.data.build_dataset` gets the network's transforms once the network exists.
    """
    validation = "validation on the datasets given to train()"
    synthetic = parse_synthetic(config.data)
    if config.holdout_fraction:
        train, val, validation, needs_transforms = held_out_data(config, train_dataset, val_dataset)
    elif train_dataset is not None:
        if val_dataset is None:
            validation = "no validation (train() was given no validation set)"
        train, val, needs_transforms = train_dataset, val_dataset, False
    elif synthetic is not None:
        count, classes = synthetic
        size = config.input_size or 299
        train = SyntheticDataset(count, classes, config.in_chans, size, seed=config.seed)
        val = SyntheticDataset(max(classes, count // 4), classes, config.in_chans, size, seed=config.seed + 1)
        validation = f"validation on {len(val)} synthetic images of their own (seed {config.seed + 1})"
        needs_transforms = False
    else:
        train, val, validation = datasets.train_val_datasets(config.data, config.val_fraction, config.seed)
        say(validation)
        needs_transforms = True
    train, val = limit_data(config, train, val)
    # data passed in ready keeps its own transform; attach_transforms replaces clean_train
    return RunData(train, val, clean_train=train, validation=validation, needs_transforms=needs_transforms)


def held_out_data(
    config: TrainConfig, train_dataset: Dataset | None, val_dataset: Dataset | None
) -> tuple[Dataset, Dataset, str, bool]:
    """``holdout_fraction``: the training split less a held-out part, the held-out part, their description and
    whether transforms still apply."""
    if val_dataset is not None:
        raise ValueError(
            "holdout_fraction validates on a part of the training data; pass no val_dataset "
            "(or set holdout_fraction to 0)"
        )
    synthetic = parse_synthetic(config.data)
    ready = train_dataset is not None or synthetic is not None
    if train_dataset is None and synthetic is not None:
        count, classes = synthetic
        train_dataset = SyntheticDataset(count, classes, config.in_chans, config.input_size or 299, seed=config.seed)
    elif train_dataset is None:
        train_dataset = datasets.build_dataset(config.data, "train")  # looked up now: tests replace it
    rest, held_out = holdout_split(train_dataset, config.holdout_fraction, seed=HOLDOUT_SEED)
    validation = (
        f"validation on a held-out, class-balanced {config.holdout_fraction:g} of the training "
        f"split ({len(held_out)} images; the validation split is not read)"
    )
    return rest, held_out, validation, not ready


def limit_data(
    config: TrainConfig, train_dataset: Dataset, val_dataset: Dataset | None
) -> tuple[Dataset, Dataset | None]:
    """Both sets checked for ``.classes``, cut to the chosen ``classes`` (relabelled in their order), then to
    ``max_train_images`` / ``max_val_images`` (class-balanced)."""
    for name, dataset in (("training", train_dataset), ("validation", val_dataset)):
        if dataset is not None and not hasattr(dataset, "classes"):
            raise ValueError(f"the {name} dataset needs a .classes list (one name per label)")
    if config.classes is not None:
        train_dataset = class_subset(train_dataset, config.classes)
        if val_dataset is not None:
            val_dataset = class_subset(val_dataset, config.classes)
    if config.max_train_images:
        train_dataset = subset(train_dataset, config.max_train_images, config.seed)
    if val_dataset is not None and config.max_val_images:
        val_dataset = subset(val_dataset, config.max_val_images, config.seed)
    return train_dataset, val_dataset


def attach_transforms(data: RunData, net: nn.Module, config: TrainConfig, size: int) -> None:
    """Give ``data`` the network's training augmentation and evaluation preprocessing at ``size`` pixels."""
    metadata = net.metadata
    if config.augmentation == "pad-crop":
        train_tf = PadCropTransform(size, config.in_chans, mean=metadata.mean, std=metadata.std)
        eval_tf = whole_image_transform(size, config.in_chans, mean=metadata.mean, std=metadata.std)
    else:
        train_tf = train_transform(
            size, config.in_chans, mean=metadata.mean, std=metadata.std, color_distortion=config.color_distortion
        )
        eval_tf = eval_transform_for(net, input_size=size)
    data.clean_train = data.train.with_transform(eval_tf)  # BatchNorm recomputation's images
    data.train = data.train.with_transform(train_tf)
    if data.val is not None:
        data.val = data.val.with_transform(eval_tf)


def check_fit(config: TrainConfig, net: nn.Module, data: RunData) -> None:
    """Network/data mismatches (classes, channels, size) as clear errors, before the first step."""
    classes = list(data.train.classes)
    if data.val is not None and list(data.val.classes) != classes:
        raise ValueError(
            f"the training and validation data have different classes ({len(classes)} vs "
            f"{len(data.val.classes)}); both splits need the same class folders"
        )
    outputs = getattr(net, "num_classes", len(classes))
    if outputs != len(classes):
        raise ValueError(
            f"{config.model} has {outputs} outputs but the data has {len(classes)} classes; drop "
            f"--num-classes (it defaults to the data's) or use data with {outputs} classes"
        )
    with isolated_rng(config.seed):
        image = first_image(data.train)
    if image.dim() != 3:
        raise ValueError(f"the data yields images of shape {list(image.shape)}; expected C x H x W tensors")
    if image.shape[0] != config.in_chans:
        raise ValueError(
            f"the data yields {image.shape[0]}-channel images but the model takes {config.in_chans}; "
            f"pass --in-chans {image.shape[0]} or convert the images"
        )
    minimum = getattr(net, "min_input_size", 1)
    check_min_size(
        config.model,
        image.shape[-2],
        image.shape[-1],
        minimum,
        f"the data yields images this small; resize them, e.g. --input-size {minimum}",
    )
