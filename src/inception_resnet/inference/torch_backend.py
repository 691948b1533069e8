"""The PyTorch backend of CPU inference: our rewritten network on oneDNN kernels, in fp32, bf16 or int8.

:func:`build_torch` follows an :class:`~inception_resnet.inference.precision.InferencePlan`:

* fp32 and bf16: the exact rewrites of :mod:`.rewrites` (BatchNorm and residual-scale folding, pooling branches
  projecting first) in that dtype, channels_last, then either every convolution prepacked for oneDNN with its
  ReLU or residual add fused (:func:`~inception_resnet.inference.onednn.pack_for_cpu`; ready at once), or,
  when the plan is compiled, ``torch.compile`` with inductor's freezing (weights constant-folded and
  prepacked, the pooling, concatenation and slicing generated as fused C++ loops; the first call compiles).
* int8: the rewritten fp32 network quantized by :func:`~inception_resnet.inference.quantize.quantize_int8` on
  the calibration batches, then compiled with freezing (oneDNN int8 convolutions with fused requantization)
  or, uncompiled, lowered to the same kernels without generated C++ (ready sooner, slower).

It is reached through :func:`~inception_resnet.inference.optimize.optimize_for_inference`.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .onednn import pack_for_cpu
from .precision import InferenceModel, InferencePlan
from .quantize import lowered, quantize_int8
from .rewrites import rewrite_for_inference

__all__ = ["build_torch"]


def build_torch(
    model: nn.Module, plan: InferencePlan, example: torch.Tensor, calibration: list[torch.Tensor] | None = None
) -> InferenceModel:
    """An :class:`InferenceModel` of the fp32 eval-mode ``model`` as ``plan`` says (its backend: torch).

    ``example``: one input of the shape the model will see (int8 exports the graph for it); ``calibration``:
    the int8 batches, preprocessed as the model's inputs.
    """
    if plan.precision == "int8":
        rewritten = rewrite_for_inference(model, fuse=False)
        quantized, plan.calibration_images = quantize_int8(rewritten, calibration, example)
        size = tuple(example.shape[1:])
        if plan.compiled:
            result = InferenceModel(torch.compile(quantized, dynamic=False), model, plan, input_size=size)
        else:
            result = InferenceModel(None, model, plan, input_size=size, build=functools.partial(lowered, quantized))
        result.quantized_graph = quantized
        return result
    dtype = torch.bfloat16 if plan.precision == "bf16" else torch.float32
    rewritten = rewrite_for_inference(model, fuse=False, channels_last=True).to(dtype)
    runner: nn.Module = rewritten
    if plan.compiled:
        runner = torch.compile(rewritten, dynamic=False)
    elif plan.features.get("onednn", True):
        rewritten.optimization_report.convs_packed = pack_for_cpu(
            rewritten, example.to(dtype).contiguous(memory_format=torch.channels_last)
        )
    result = InferenceModel(runner, model, plan, dtype)
    result.optimization_report = rewritten.optimization_report
    return result
