"""Running the models for evaluation: a batch of views through each model, under the precision asked for, to
the log of its view-averaged softmax (the crop sets of the Inception papers: :mod:`inception_resnet.data.crops`),
and the members of an ensemble combined (:mod:`.metrics`).

:func:`predict_probabilities` is the same for one batch of views, returning class probabilities.
:mod:`.evaluate` runs these over a dataset; see docs/architecture.md for the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .metrics import average_log_probs, combine_members, ensemble_weights


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
