"""Deployment files checked against our model: OpenVINO IR (fp32 or int8) and int8 ONNX (QDQ).

:func:`export_deployment` writes what :func:`~inception_resnet.weights.export.export_model` cannot, as it
needs the inference rewrites and int8 quantization:

* ``openvino``: the IR pair ``NAME.xml`` / ``NAME.bin`` of our rewritten network (converted as the OpenVINO
  backend converts it, dynamic batch), fp32 weights; read back and compared with PyTorch on a random batch
  (max abs difference at most ``atol``).
* ``precision="int8"`` (``openvino`` or ``onnx``): quantized on the calibration images only (OpenVINO: NNCF;
  ONNX: ONNX Runtime's static quantization to QDQ, per-channel symmetric int8 weights, per-tensor uint8
  activations, on the folded graph), read back and run on the check images, which must be other images than
  the calibration ones: the file is written only when its top-1 class agrees with our fp32 model's on at
  least ``min_agreement`` percent of them, else a ValueError gives the measured figure.

Files are built and checked in memory and written whole or not at all (:mod:`inception_resnet.files`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..files import check_output_file, write_bytes_atomic
from ..weights.export import ExportResult, example_input, onnx_bytes
from .openvino_backend import compile_config, convert, quantize
from .rewrites import rewrite_for_inference

__all__ = ["DEPLOY_FORMATS", "MIN_AGREEMENT", "agreement", "export_deployment"]

DEPLOY_FORMATS = ("openvino", "onnx")
MIN_AGREEMENT = 97.0  # percent of the check images whose int8 top-1 class must be fp32's


def agreement(
    run: Callable[[np.ndarray], np.ndarray], model: nn.Module, images: torch.Tensor, batch_size: int = 32
) -> float:
    """Percent of ``images`` on which ``run`` (a batch in, logits out) gives the fp32 ``model``'s top-1 class."""
    same = 0
    with torch.no_grad():
        for batch in images.float().split(batch_size):
            got = np.asarray(run(batch.contiguous().numpy())).argmax(1)
            same += int((torch.from_numpy(got) == model(batch).argmax(1)).sum())
    return 100.0 * same / len(images)


def _openvino_files(network: object) -> tuple[bytes, bytes]:
    """The IR of ``network`` as ``(xml bytes, bin bytes)``, serialised through a temporary folder."""
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="ir-export-") as folder:
        xml = Path(folder) / "model.xml"
        ov.save_model(network, xml, compress_to_fp16=False)
        return xml.read_bytes(), xml.with_suffix(".bin").read_bytes()


def _openvino_runner(xml: bytes, weights: bytes, precision: str) -> Callable[[np.ndarray], np.ndarray]:
    """The IR read back from its bytes and compiled for the CPU: a batch in, logits out."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8))), "CPU", compile_config(precision)
    )
    return lambda batch: compiled(batch)[0]


def _onnx_runner(data: bytes) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def quantize_onnx(data: bytes, calibration: torch.Tensor, per_channel: bool = True) -> bytes:
    """ONNX Runtime's static quantization of the fp32 ONNX model ``data`` to QDQ, on ``calibration`` only.

    Symmetric int8 weights with one scale per output channel (``per_channel``; ONNX Runtime's default is one per
    tensor, under which the filters of a folded convolution, scaled channel by channel by BatchNorm's factors,
    share the range of the largest and the small ones round to a few levels), per-tensor uint8 activations.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        """The calibration images, one at a time."""

        def __init__(self) -> None:
            self.images = iter(calibration.float().split(1))

        def get_next(self) -> dict | None:
            image = next(self.images, None)
            return None if image is None else {"input": image.contiguous().numpy()}

    with tempfile.TemporaryDirectory(prefix="qdq-export-") as folder:
        source, target = os.path.join(folder, "fp32.onnx"), os.path.join(folder, "int8.onnx")
        Path(source).write_bytes(data)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its notes on biases it leaves in fp32 and on optional pre-processing
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(
                    source,
                    target,
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
        finally:
            root.setLevel(level)
        return Path(target).read_bytes()


def export_deployment(
    model: nn.Module,
    path: str | os.PathLike,
    fmt: str,
    *,
    precision: str = "fp32",
    calibration: torch.Tensor | None = None,
    check_images: torch.Tensor | None = None,
    input_size: int | None = None,
    min_agreement: float = MIN_AGREEMENT,
    atol: float = 1e-4,
    opset: int = 17,
) -> ExportResult:
    """Write ``model`` as ``fmt`` (see the module docstring) in ``precision`` and check it; returns what was written.

    ``calibration`` and ``check_images`` (int8): ``(N, C, H, W)`` tensors preprocessed as the model's inputs,
    different images.
    """
    if fmt not in DEPLOY_FORMATS:
        raise ValueError(f"deployment format must be one of {', '.join(DEPLOY_FORMATS)}, got {fmt!r}")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"export precision must be fp32 or int8, got {precision!r}")
    if fmt == "onnx" and precision == "fp32":
        raise ValueError("fp32 ONNX is written by inception_resnet.weights.export.export_model (export --format onnx)")
    if precision == "int8":
        for name, images in (("calibration", calibration), ("check_images", check_images)):
            if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) == 0:
                raise ValueError(
                    f"an int8 export needs {name}= images, an (N, C, H, W) tensor preprocessed as the "
                    "model's inputs (the command line: --calibration SOURCE)"
                )
    path = Path(path)
    if fmt == "openvino" and path.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR is written as NAME.xml (with NAME.bin beside it); got {path}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of {path} does not exist; create {path.parent} first")
    check_output_file(path, f"the {fmt} export")
    model = model.eval()
    example = calibration[:1] if calibration is not None else example_input(model, input_size, 1).cpu()
    if fmt == "openvino":
        network = convert(model, example)
        notes = []
        if precision == "int8":
            network, count = quantize(network, [calibration])
            notes.append(f"quantized with NNCF on {count} calibration image(s)")
        xml, weights = _openvino_files(network)
        run = _openvino_runner(xml, weights, precision)
    else:
        fp32 = onnx_bytes(rewrite_for_inference(model), example.repeat(2, 1, 1, 1), opset)
        xml, weights = quantize_onnx(fp32, calibration), b""
        run = _onnx_runner(xml)
        notes = [f"quantized to QDQ by ONNX Runtime on {len(calibration)} calibration image(s)"]
    result = ExportResult(path, f"{fmt} {precision}", notes=notes)
    if precision == "int8":
        result.agreement = agreement(run, model, check_images)
        if not result.agreement >= min_agreement:
            raise ValueError(
                f"the int8 {fmt} export agrees with the fp32 model on the top-1 class of {result.agreement:.1f}% of "
                f"{len(check_images)} check images, below the {min_agreement:g}% required; nothing was written. "
                "Calibrate on a few hundred images like the ones the model will see, or export fp32"
            )
    else:
        x = example_input(model, input_size, 3).cpu()
        with torch.no_grad():
            result.max_abs_diff = float(np.abs(run(x.numpy()) - model(x).numpy()).max())
        if not result.max_abs_diff <= atol:
            raise ValueError(
                f"the {fmt} export differs from PyTorch by {result.max_abs_diff:.3g} (more than {atol}); "
                "nothing was written"
            )
    if weights:
        write_bytes_atomic(path.with_suffix(".bin"), weights, f"the {fmt} export's weights")
    write_bytes_atomic(path, xml, f"the {fmt} export")
    return result
