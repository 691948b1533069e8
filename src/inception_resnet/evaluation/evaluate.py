"""Evaluation: top-1/top-5 error of a model, a crop set (1, 10, 12, 144) or an ensemble, as in the paper.

* :func:`evaluate_loader` - single crop over a loader of already transformed ``(images, labels)``; the
  training loop's per-epoch validation (optionally with EMA weights).
* :func:`evaluate` - the full protocol: each model gets its own preprocessing (from its metadata) and the
  views of the chosen crop set (:mod:`inception_resnet.data.crops`); its softmax outputs are averaged over the
  views, then the members' averages are averaged with the ensemble weights (equal by default).
* :func:`predict_probabilities` - the same averaging for a batch of views, returning class probabilities.

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
import warnings
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
from .metrics import EvalResult, MetricAccumulator, average_log_probs, combine_members, ensemble_weights


# -- running models -------------------------------------------------------------------------------------
def logits_of(output: Any) -> torch.Tensor:
    """The main logits of a model output (``InceptionOutput`` or a plain tensor)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"expected the model to return logits, got {type(output).__name__}")


def label_offset(model: nn.Module) -> int:
    """Leading outputs without a dataset class (1 for TF-slim's 1001-class 'background' weights)."""
    metadata = getattr(model, "metadata", None)
    return int(getattr(metadata, "label_offset", 0) or 0)


def model_name(model: nn.Module) -> str:
    return str(getattr(model, "model_name", type(model).__name__))


def trained_classes(model: nn.Module) -> list[str] | None:
    """The class names the model's weights were trained on, when the weights recorded them (our checkpoints)."""
    metadata = getattr(model, "metadata", None)
    names = getattr(metadata, "extra", {}).get("classes") if metadata is not None else None
    return list(names) if isinstance(names, (list, tuple)) and names else None


def check_classes(model: nn.Module, classes: Sequence[str] | None, *, check_names: bool = True) -> None:
    """A clear error when the model's outputs and the dataset's classes disagree.

    In number always; in names (and order) when the weights recorded the classes they were trained on: a
    mismatch raises a ValueError, or only warns with ``check_names=False``.
    """
    outputs = getattr(model, "num_classes", None)
    if classes is None or not isinstance(outputs, int) or outputs <= 0:
        return
    if outputs - label_offset(model) != len(classes):
        raise ValueError(
            f"{model_name(model)} has {outputs} outputs (label offset {label_offset(model)}) but the data has "
            f"{len(classes)} classes; use weights trained on these classes, or build the model with "
            f"num_classes={len(classes)}"
        )
    trained = trained_classes(model)
    if trained is None or trained == list(classes):
        return
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(trained, classes, strict=False)) if a != b]
    shown = ", ".join(f"#{i}: {a!r} vs {b!r}" for i, a, b in differ[:5]) + (" ..." if len(differ) > 5 else "")
    message = (
        f"the weights of {model_name(model)} were trained on classes {shorten(trained)} but the data's classes are "
        f"{shorten(list(classes))} ({len(differ)} of {len(classes)} differ: {shown}); the numbers would compare "
        "the wrong labels"
    )
    if check_names:
        raise ValueError(
            message + ". Use data with the same class folders, or pass --ignore-class-names "
            "(check_class_names=False) if the labels correspond anyway"
        )
    warnings.warn(message, stacklevel=3)


def shorten(names: Sequence[str], count: int = 6) -> str:
    """``[a, b, c, ...]`` with at most ``count`` names."""
    shown = ", ".join(names[:count]) + (", ..." if len(names) > count else "")
    return f"[{shown}]"


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str | None) -> torch.dtype | None:
    """The autocast dtype of ``precision``: ``"fp32"`` (or None) none, ``"bf16"``, ``"fp16"``."""
    if precision is None:
        return None
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(
            f"precision must be one of {', '.join(AUTOCAST_DTYPES)}, got {precision!r} (int8 runs "
            "through the optimised CPU model: inception_resnet.inference.optimize_for_inference)"
        )
    return AUTOCAST_DTYPES[precision]


def forward_log_probs(
    model: nn.Module,
    views: torch.Tensor,
    *,
    device: torch.device,
    precision: str,
    channels_last: bool,
    chunk: int | None = None,
) -> torch.Tensor:
    """``(B, V, C, H, W)`` views -> ``(B, K)`` log of the view-averaged softmax of one model."""
    batch, num_views = views.shape[:2]
    flat = views.reshape(batch * num_views, *views.shape[2:]).to(device, non_blocking=True)
    if channels_last:
        flat = flat.contiguous(memory_format=torch.channels_last)
    chunk = chunk or flat.shape[0]
    outputs = []
    dtype = autocast_dtype(precision)
    with torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for start in range(0, flat.shape[0], chunk):
            outputs.append(logits_of(model(flat[start : start + chunk])).float())
    logits = torch.cat(outputs)[:, label_offset(model) :]
    return average_log_probs(logits.view(batch, num_views, -1))


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move to ``device`` (channels-last if asked) and switch to eval mode; returns the model."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model.eval()


def as_model_list(models_or_model: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    models = [models_or_model] if isinstance(models_or_model, nn.Module) else list(models_or_model)
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError("give a model or a non-empty list of models (torch.nn.Module)")
    return models


@torch.inference_mode()
def predict_probabilities(
    models_or_model: nn.Module | Sequence[nn.Module],
    views: torch.Tensor | Sequence[torch.Tensor],
    *,
    weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
) -> torch.Tensor:
    """Class probabilities ``(B, K)``: softmax averaged over the views, then over the models (weighted).

    ``views`` is one ``(B, V, C, H, W)`` tensor for all models or a sequence with one per model (each
    member its own preprocessing). The models are put in eval mode on ``device``.
    """
    models = as_model_list(models_or_model)
    per_member = [views] * len(models) if isinstance(views, torch.Tensor) else list(views)
    if len(per_member) != len(models):
        raise ValueError(f"{len(per_member)} view tensors for {len(models)} models; give one per model")
    device = torch.device(device)
    member_log_probs = [
        forward_log_probs(
            prepare_model(m, device, channels_last), v, device=device, precision=precision, channels_last=channels_last
        )
        for m, v in zip(models, per_member, strict=True)
    ]
    return combine_members(member_log_probs, ensemble_weights(weights, len(models))).exp()


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
