"""Evaluation: top-1/top-5 error of a model, a crop set (1, 10, 12, 144) or an ensemble, as in the paper.

* :func:`evaluate_loader` - single crop over a loader of already transformed ``(images, labels)``; the
  training loop's per-epoch validation (optionally with EMA weights).
* :func:`evaluate` - the full protocol: each model gets its own preprocessing (from its metadata) and the
  views of the chosen crop set (:mod:`inception_resnet.data.crops`); its softmax outputs are averaged over the
  views, then the members' averages are averaged with the ensemble weights (equal by default).
* :func:`~.forward.predict_probabilities` - the same averaging for a batch of views, returning class
  probabilities (:mod:`.forward` runs the models; :mod:`.class_check` checks their classes against the data's).

Accuracies and errors are **percentages** (0-100). Top-5 counts a hit among the ``min(5, classes)`` most
probable classes. ``loss`` is the mean negative log of the averaged probability of the true class (the
cross-entropy for a single model and crop). Files that could not be decoded are not counted as images;
they are reported in ``num_skipped``. On CPU the results are deterministic (no random transform, fixed
order); ``precision`` (as the commands' ``--precision``) runs the models under autocast (``"bf16"``:
bfloat16, ``"fp16"``: float16, for GPUs without bfloat16; ``"fp32"``, the default: none) and ``channels_last``
converts them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ..data.crops import MultiCropTransform, check_crops, multi_crop_transform_for
from ..data.datasets import build_dataset
from ..data.decoding import decode_encoded
from ..data.image_folder import ImageFolderDataset
from ..data.loaders import build_loader
from ..data.subsets import subset
from .class_check import check_classes
from .forward import as_model_list, forward_log_probs, model_name, prepare_model
from .metrics import EvalResult, MetricAccumulator, combine_members, ensemble_weights


def resolve_ema(model: nn.Module, ema: Any) -> nn.Module:
    """The module to evaluate: ``model``, or its EMA (a module, a wrapper with ``.module``, or a state dict)."""
    if ema is None:
        return model
    inner = getattr(ema, "module", None)
    if isinstance(inner, nn.Module):
        return inner
    if isinstance(ema, nn.Module):
        return ema
    state = ema if isinstance(ema, Mapping) else getattr(ema, "state_dict", lambda: None)()
    if not isinstance(state, Mapping):
        raise ValueError(
            f"cannot evaluate EMA weights from a {type(ema).__name__}; pass a module, an object with "
            "a .module, or a state dict"
        )
    averaged = copy.deepcopy(model)
    averaged.load_state_dict(state)
    return averaged


class TrainingModeRestored:
    """Context manager restoring the training flag of every module and submodule on exit.

    Each submodule gets its own flag back, so a network evaluated in the middle of training returns with
    its frozen (eval-mode) BatchNorm layers still frozen.
    """

    def __init__(self, *modules: nn.Module) -> None:
        self.modules = modules
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> TrainingModeRestored:
        self.modes = [(m, m.training) for module in self.modules for m in module.modules()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, mode in self.modes:
            module.training = mode


def progress_bar(total: int | None, enabled: bool, description: str) -> tqdm:
    return tqdm(
        total=total,
        disable=not enabled,
        unit="img",
        unit_scale=False,
        desc=description,
        dynamic_ncols=True,
        leave=False,
    )


def evaluate_loader(
    model: nn.Module,
    loader: Any,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
    progress: bool = False,
    ema: Any = None,
    per_class: bool = False,
) -> EvalResult:
    """Single-crop top-1/top-5 over a loader of transformed ``(images, labels)`` batches.

    The model (or ``ema``: see :func:`resolve_ema`) runs in eval mode on ``device`` and gets its training
    flag back afterwards. ``num_skipped`` is read from ``loader.skipped`` (:func:`data.build_loader`).
    """
    device = torch.device(device)
    network = resolve_ema(model, ema)
    classes = getattr(getattr(loader, "dataset", None), "classes", None)
    check_classes(network, classes)
    metrics = MetricAccumulator(classes, per_class=per_class)
    total = len(loader.dataset) if hasattr(loader, "dataset") else None
    started = time.perf_counter()
    with TrainingModeRestored(network), torch.inference_mode(), progress_bar(total, progress, "eval") as bar:
        prepare_model(network, device, channels_last)
        for images, labels in loader:
            log_probs = forward_log_probs(
                network, images.unsqueeze(1), device=device, precision=precision, channels_last=channels_last
            )
            metrics.update(log_probs, labels)
            bar.update(labels.numel())
    skipped_files = list(getattr(loader, "skipped_files", []))
    return metrics.result(
        num_skipped=int(getattr(loader, "skipped", 0)),
        crops=1,
        models=[model_name(model)],
        ensemble_weights=[1.0],
        seconds=time.perf_counter() - started,
        skipped_files=skipped_files,
    )


class MemberViews:
    """Dataset transform for an ensemble: one view stack per member, each with that member's preprocessing."""

    def __init__(self, transforms: Sequence[MultiCropTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> tuple[torch.Tensor, ...]:
        return tuple(transform(image) for transform in self.transforms)

    def __repr__(self) -> str:
        return f"MemberViews({self.transforms})"


def evaluation_dataset(
    data: str | Dataset | None,
    split: str,
    *,
    strict: bool,
    download: bool,
    decode: bool,
    limit: int | None,
    seed: int,
    max_pixels: int | None = None,
) -> Dataset:
    dataset = (
        data
        if isinstance(data, Dataset)
        else build_dataset(data, split, strict=strict, download=download, decode=decode, max_pixels=max_pixels)
    )
    if not hasattr(dataset, "with_transform"):
        raise ValueError("evaluate needs a dataset from inception_resnet.data.build_dataset (with_transform)")
    return subset(dataset, limit, seed) if limit is not None else dataset


def describe(data: str | Dataset | None, split: str) -> str:
    if isinstance(data, Dataset):
        return repr(data)
    return f"{data or 'fashion-mnist'} ({split})"


def evaluate(
    models_or_model: nn.Module | Sequence[nn.Module],
    data: str | Dataset | None = None,
    *,
    crops: int = 1,
    split: str = "val",
    batch_size: int = 32,
    weights_for_ensemble: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
    num_workers: int = 0,
    strict: bool = False,
    per_class: bool = False,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
    style: str | None = None,
    input_size: int | Sequence[int] | None = None,
    download: bool = True,
    gpu_decode: bool | None = None,
    keep_probabilities: bool = False,
    check_class_names: bool = True,
    max_pixels: int | None = None,
) -> EvalResult:
    """Evaluate a model or an ensemble on ``data`` with a crop set; see the module docstring.

    ``data``: as :func:`data.build_dataset` (``None`` = Fashion-MNIST) or a dataset it built. ``batch_size``
    counts views per forward pass, so ``max(1, batch_size // crops)`` images are loaded at a time.
    ``style``/``input_size`` override the models' metadata; ``limit`` evaluates a class-balanced subset
    (:func:`data.subset` with ``seed``). ``gpu_decode`` (default: on for CUDA with an image folder) decodes
    JPEGs with nvJPEG and crops on the GPU. ``keep_probabilities`` stores the averaged probabilities and
    the targets in the result. Models are moved to ``device`` and left in eval mode. Weights that recorded
    the class names they were trained on (our training checkpoints) must match the data's, unless
    ``check_class_names=False`` (then a warning). ``max_pixels`` limits the image size (see
    :func:`data.build_dataset`). Folder entries left out when scanning (link loops, duplicates) count as
    skipped files.
    """
    models = as_model_list(models_or_model)
    weights = ensemble_weights(weights_for_ensemble, len(models))
    check_crops(crops)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1 image (or None for all of them), got {limit}")
    device = torch.device(device)
    transforms = [multi_crop_transform_for(m, crops, style=style, input_size=input_size) for m in models]
    if gpu_decode is None:
        gpu_decode = device.type == "cuda"
    dataset = evaluation_dataset(
        data,
        split,
        strict=strict,
        download=download,
        decode=not gpu_decode,
        limit=limit,
        seed=seed,
        max_pixels=max_pixels,
    )
    source = getattr(dataset, "dataset", dataset)
    decoding_here = isinstance(source, ImageFolderDataset) and not source.decode
    for model in models:
        check_classes(model, dataset.classes, check_names=check_class_names)
    dataset = dataset.with_transform(None if decoding_here else MemberViews(transforms))
    loader = build_loader(
        dataset,
        max(1, batch_size // crops),
        num_workers=num_workers,
        pin_memory=device.type == "cuda" and not decoding_here,
        seed=seed,
    )
    metrics = MetricAccumulator(dataset.classes, per_class=per_class, keep=keep_probabilities)
    skipped_here: list[str] = []
    started = time.perf_counter()
    with torch.inference_mode(), progress_bar(len(dataset), progress, f"eval {crops} crop(s)") as bar:
        members = [prepare_model(m, device, channels_last) for m in models]
        for images, labels in loader:
            if decoding_here:
                images, labels, skipped = decode_on_device(images, labels, transforms, device, strict)
                skipped_here.extend(skipped)
                if labels.numel() == 0:
                    continue
            member_log_probs = [
                forward_log_probs(
                    m, views, device=device, precision=precision, channels_last=channels_last, chunk=batch_size
                )
                for m, views in zip(members, images, strict=True)
            ]
            metrics.update(combine_members(member_log_probs, weights), labels)
            bar.update(metrics.count + loader.skipped + len(skipped_here) - bar.n)
    left_out = [path for path, _ in getattr(source, "scan_skipped", [])] if limit is None else []
    skipped_files = left_out + loader.skipped_files + skipped_here
    return metrics.result(
        num_skipped=len(skipped_files),
        crops=crops,
        models=[model_name(m) for m in models],
        ensemble_weights=weights,
        dataset=describe(data, split),
        seconds=time.perf_counter() - started,
        skipped_files=skipped_files,
    )


def decode_on_device(
    encoded: list,
    labels: torch.Tensor,
    transforms: Sequence[MultiCropTransform],
    device: torch.device,
    strict: bool,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, list[str]]:
    """Decode a batch on ``device`` and build every member's views there; drops (and lists) corrupt files."""
    images, kept, skipped = decode_encoded(encoded, device, strict=strict)
    labels = labels[kept]
    if not images:
        return (), labels, skipped
    views = tuple(torch.stack([transform(image) for image in images]) for transform in transforms)
    return views, labels, skipped
