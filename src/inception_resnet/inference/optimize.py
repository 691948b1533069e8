"""The one CPU inference entry point: :func:`optimize_for_inference`.

Without ``precision`` it returns the rewritten eval-mode copy of :func:`.rewrites.rewrite_for_inference` (any
device). With ``precision`` it plans CPU inference (:func:`.precision.plan_inference`) and builds it with the
backend asked for: PyTorch's oneDNN kernels (:func:`.torch_backend.build_torch`), OpenVINO
(:func:`.openvino_backend.build_openvino`), or, with ``backend="auto"``, whichever of the two
:mod:`.autoselect` measured fastest on this CPU. The functions it calls never call it back.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from .autoselect import choose_backend
from .openvino_backend import build_openvino
from .precision import InferenceModel, check_precision, plan_inference
from .quantize import calibration_batches
from .rewrites import rewrite_for_inference
from .torch_backend import build_torch

__all__ = ["optimize_for_inference"]

BUILDERS = {"torch": build_torch, "openvino": build_openvino}


def _example(
    model: nn.Module, example_input: torch.Tensor | None, batches: list[torch.Tensor] | None, batch_size: int | None
) -> torch.Tensor:
    """One fp32 input of the shape the model will see: ``example_input``'s, the calibration images', or one
    image at the model's default size."""
    if example_input is None and batches:
        example_input = batches[0]
    if example_input is None:
        size = int(getattr(model, "default_size", 224))
        example_input = torch.zeros(1, int(getattr(model, "in_chans", 3)), size, size)
    if example_input.dim() != 4:
        raise ValueError(f"example_input must be a batch (N, C, H, W), got shape {list(example_input.shape)}")
    example = example_input[:1].float()
    return example.expand(batch_size, *example.shape[1:]).contiguous() if batch_size else example


def _calibration(calibration: Any) -> list[torch.Tensor]:
    """All calibration batches, read once (``auto`` may quantize for two backends)."""
    batches = [batch.float() for batch in calibration_batches(calibration)]
    if not batches or sum(b.shape[0] for b in batches) == 0:
        raise ValueError("the calibration data held no images; pass a few hundred images like the model's inputs")
    return batches


def optimize_for_inference(
    model: nn.Module,
    *,
    precision: str | None = None,
    backend: str = "torch",
    calibration: Any = None,
    compile: bool | None = None,
    batch_size: int | None = None,
    example_input: torch.Tensor | None = None,
    features: dict[str, bool] | None = None,
    warn: bool = True,
    **rewrites: Any,
) -> nn.Module:
    """A copy of ``model`` that computes the same outputs faster; the original is not touched.

    Without ``precision``: :func:`~inception_resnet.inference.rewrites.rewrite_for_inference` with the
    ``rewrites`` options (``fold``, ``fuse``, ``project_pools``, ``channels_last``, ``onednn``), on any device.

    ``precision`` (``"fp32"``, ``"bf16"`` or ``"int8"``): CPU inference in that precision, as an
    :class:`~inception_resnet.inference.precision.InferenceModel` whose ``plan`` says what runs and why;
    where the CPU lacks what the precision needs, fp32 runs and (with ``warn``) a warning says so.
    ``backend``: ``"torch"`` (oneDNN kernels), ``"openvino"`` (OpenVINO's CPU plugin on our rewritten graph;
    the ``openvino`` extra), or ``"auto"``: the one measured fastest on this CPU for this model, batch size and
    precision (a few timed runs, remembered on disk; without OpenVINO it is torch, with a one-line note).
    ``calibration`` (int8): the images the activation ranges are observed on, preprocessed as the model's
    inputs (a tensor, a DataLoader or an iterable of batches); only these are used. ``compile``: torch
    only, ``torch.compile`` with freezing (default: for int8). ``batch_size``: the batch the model will run
    (default: the example's, 1), which ``auto`` times. ``example_input``: an input of the shape the model
    will see (default: the calibration images', else the model's default size). ``features``: the CPU's
    capabilities (default: :func:`~inception_resnet.inference.precision.cpu_features`; for tests).
    """
    if precision is None:
        given = {
            "backend": backend != "torch",
            "calibration": calibration is not None,
            "compile": compile is not None,
            "batch_size": batch_size is not None,
            "example_input": example_input is not None,
            "features": features is not None,
        }
        if any(given.values()):
            names = ", ".join(f"{k}=" for k, v in given.items() if v)
            raise ValueError(
                f"{names} go with precision=: e.g. precision='int8', calibration=images "
                "(calibration= and compile= go with precision=)"
            )
        return rewrite_for_inference(model, **rewrites)
    if rewrites:
        raise ValueError(f"precision= chooses the rewrites itself; leave out {', '.join(sorted(rewrites))}")
    check_precision(precision, backend)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError(
            "precision= builds CPU inference models; move the model to the CPU first (on a GPU, run "
            "the plain model under torch.autocast instead)"
        )
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("precision= starts from an fp32 model; call model.float() first")
    if backend == "auto":
        return choose_backend(
            model,
            precision,
            lambda: _calibration(calibration) if precision == "int8" else None,
            lambda batches: _example(model, example_input, batches, batch_size),
            compile=compile,
            features=features,
            warn=warn,
        )
    plan = plan_inference(precision, compile, features, backend)
    if plan.fell_back and warn:
        warnings.warn(str(plan), stacklevel=2)
    batches = _calibration(calibration) if plan.precision == "int8" else None
    example = _example(model, example_input, batches, None)
    return build(model, plan, example, batches)


def build(
    model: nn.Module,
    plan: Any,
    example: torch.Tensor,
    batches: list[torch.Tensor] | None,
) -> InferenceModel:
    """The model of ``plan`` built by its backend."""
    return BUILDERS[plan.backend](model, plan, example, batches)
