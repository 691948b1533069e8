"""The OpenVINO backend of CPU inference: our rewritten network converted by OpenVINO's PyTorch frontend.

:func:`convert` hands the output of :func:`rewrite_for_openvino` (folded BatchNorms and residual scales,
pooling branches projecting first) to
``openvino.convert_model`` (no file in between), with a dynamic batch dimension; for int8, :func:`quantize`
runs NNCF's post-training quantization on the user's calibration images only. :func:`build_openvino` wraps
the result as an :class:`~inception_resnet.inference.precision.InferenceModel`: the first call compiles it
for its batch shape with the plan's inference precision hint (``f32`` or ``bf16``; int8 leaves the layers NNCF
kept in floating point to OpenVINO's default) and torch's thread count; later calls reuse that shape.

OpenVINO and NNCF are optional (``pip install 'inception-resnet[openvino]'``); the functions here import them
when called, and :func:`~inception_resnet.inference.precision.have_openvino` says whether they are there.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from torch import nn

from .precision import InferenceModel, InferencePlan
from .rewrites import rewrite_for_inference

__all__ = ["OpenVINORunner", "build_openvino", "compile_config", "convert", "quantize", "rewrite_for_openvino"]


def rewrite_for_openvino(model: nn.Module) -> nn.Module:
    """What the OpenVINO backend converts: ``model`` with BatchNorms and residual scales folded and the pooling
    branches projecting first, the 1x1 convolutions that read one input left apart (as on the oneDNN path).

    OpenVINO's graph compiler folds and fuses on its own: measured on Inception-v4 and Inception-ResNet-v2
    (``benchmarks/openvino_rewrites.py``), each of our rewrites leaves its speed within a few percent of the
    plain network's, in either direction, so the backend keeps the ones that remove work and merges nothing."""
    return rewrite_for_inference(model, fuse=False)


def convert(model: nn.Module, example: torch.Tensor, rewritten: bool = False) -> Any:
    """``openvino.Model`` of ``model`` rewritten for inference (``rewritten``: it is already), for inputs shaped
    as ``example`` (any batch)."""
    import openvino as ov

    rewritten = model if rewritten else rewrite_for_openvino(model)
    shape = ov.PartialShape([-1, *example.shape[1:]])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on our input checks: constant for a fixed shape
        return ov.convert_model(rewritten, example_input=example[:1].float(), input=[shape])


def quantize(network: Any, calibration: list[torch.Tensor]) -> tuple[Any, int]:
    """NNCF's post-training static quantization of ``network`` on the calibration images only:
    ``(quantized openvino.Model, images observed)``.

    Two of NNCF's defaults are changed, as ONNX Runtime's and PyTorch's own static quantization do it: the
    activation ranges are the minimum and maximum over all calibration images (NNCF's default averages each
    image's own minimum and maximum, which clips the activations of the brighter images), and there is no bias
    correction (which, estimated on a few hundred images, moved the outputs further from the network's). With
    NNCF's defaults the int8 network's top-1 classes agreed less often with the fp32 network's than the
    exports require (``benchmarks/int8_export_agreement.py`` compares the two settings).
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    images = [image[None].numpy() for batch in calibration for image in batch.float()]
    if not images:
        raise ValueError("the calibration data held no images; pass a few hundred images like the model's inputs")
    settings = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX, disable_bias_correction=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = nncf.quantize(network, nncf.Dataset(images), subset_size=len(images), advanced_parameters=settings)
    return quantized, len(images)


def compile_config(precision: str) -> dict[str, Any]:
    """The CPU plugin's settings: torch's thread count, latency hint, and the inference precision hint."""
    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
    if precision != "int8":
        config["INFERENCE_PRECISION_HINT"] = "bf16" if precision == "bf16" else "f32"
    return config


class OpenVINORunner(nn.Module):
    """One OpenVINO model compiled for one batch shape behind a module's call: fp32 batch in, fp32 logits out."""

    def __init__(self, compiled: Any, shape: tuple[int, ...], precision: str) -> None:
        super().__init__()
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.shape = shape
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape[1:]:
            raise ValueError(
                f"this {self.precision} OpenVINO model was built for inputs of shape "
                f"{list(self.shape[1:])} (C, H, W), the size of its first batch, got "
                f"{list(x.shape[1:])}; resize the images, or optimise the model again for that size"
            )
        self.request.infer({0: x.contiguous().numpy()})
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())


def _compiled_for(network: Any, precision: str, x: torch.Tensor) -> OpenVINORunner:
    """``network`` (an ``openvino.Model``, or a rewritten torch network converted now) compiled for the static
    shape of the batch ``x`` (the first call's)."""
    import openvino as ov

    static = convert(network, x, rewritten=True) if isinstance(network, nn.Module) else network.clone()
    static.reshape(list(x.shape))
    return OpenVINORunner(ov.Core().compile_model(static, "CPU", compile_config(precision)), tuple(x.shape), precision)


def build_openvino(
    model: nn.Module, plan: InferencePlan, example: torch.Tensor, calibration: list[torch.Tensor] | None = None
) -> InferenceModel:
    """An :class:`InferenceModel` of the fp32 eval-mode ``model`` run by OpenVINO as ``plan`` says.

    ``example``: an input of the shape the int8 model will see (fp32 and bf16 are converted at the first call, for
    its image size); ``calibration``: the int8 batches.
    """
    if getattr(model, "features_only", False):
        raise ValueError("the openvino backend runs classifiers; use backend='torch' for a features_only model")
    network: Any = rewrite_for_openvino(model)
    size = None
    if plan.precision == "int8":
        network, plan.calibration_images = quantize(convert(network, example, rewritten=True), calibration or [])
        size = tuple(example.shape[1:])
    return InferenceModel(
        None,
        model,
        plan,
        input_size=size,
        channels_last=False,
        build=functools.partial(_compiled_for, network, plan.precision),
    )
