"""The fast CPU path of the inference commands (``eval``, ``predict``, ``bench``), shared by them.

On the CPU, ``--precision fp32|bf16|int8`` runs our optimised model
(:func:`inception_resnet.inference.optimize_for_inference` with ``precision=``) unless
``--no-optimize`` is given, on ``--backend`` (default :data:`DEFAULT_BACKEND`, ``auto``: the backend measured
fastest on this CPU for this model, batch size and precision; see
:mod:`inception_resnet.inference.autoselect`); int8 calibrates on ``--calibration`` (at most
``--calibration-images`` images, through the model's own evaluation transform). What was chosen, and why, is
printed on stderr as a note and recorded in the JSON outputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..data.calibration import DEFAULT_CALIBRATION_IMAGES, load_calibration
from ..inference import INFERENCE_PRECISIONS, optimize_for_inference
from ..version import __version__
from .options import INFERENCE_FLAG_CHOICES, INFERENCE_PRECISION_HELP, add_flag

DEFAULT_BACKEND = "auto"


def add_inference_flags(parser: argparse.ArgumentParser, calibration: bool = True) -> None:
    """``--precision`` (with int8), ``--no-optimize`` and, where the command loads images, the calibration flags."""
    add_flag(parser, "precision", default="fp32", choices=INFERENCE_FLAG_CHOICES, help=INFERENCE_PRECISION_HELP)
    add_flag(parser, "no_optimize")
    add_flag(parser, "backend", default=DEFAULT_BACKEND)
    if calibration:
        add_flag(parser, "calibration")
        add_flag(parser, "calibration_images", default=DEFAULT_CALIBRATION_IMAGES)


def uses_fast_path(precision: str, device: torch.device, no_optimize: bool) -> bool:
    """Whether a command runs the optimised CPU model; a clear error where int8 cannot run as asked."""
    if precision == "int8":
        if device.type != "cpu":
            raise ValueError("--precision int8 runs on the CPU; add --device cpu")
        if no_optimize:
            raise ValueError("--precision int8 needs the optimised model; leave out --no-optimize")
    return device.type == "cpu" and precision in INFERENCE_PRECISIONS and not no_optimize


def optimize_model(
    model: nn.Module,
    precision: str,
    *,
    calibration: Sequence[str] | None = None,
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
    transform: Callable[[Any], torch.Tensor] | None = None,
    compile: bool | None = None,
    backend: str = DEFAULT_BACKEND,
    batch_size: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> nn.Module:
    """The model optimised for ``precision`` on the CPU, its plan logged (default: a note on stderr).

    ``calibration`` (int8): the sources of :func:`~inception_resnet.data.calibration.load_calibration`, one
    folder or dataset name, or image files; ``transform``: the model's evaluation transform (its ``size`` is the
    input size the optimised model is built and, with ``auto``, timed for); ``backend`` and
    ``batch_size`` (the batch ``auto`` times): see :func:`~inception_resnet.inference.optimize_for_inference`.
    """
    log = log or (lambda message: print(f"note: {message}", file=sys.stderr, flush=True))
    name = getattr(model, "model_name", type(model).__name__)
    images = None
    compiles = precision == "int8" if compile is None else bool(compile)
    if compiles:
        log(
            f"{name}: compiling with torch.compile takes {compile_estimate(model)} on the first batch (once per "
            "run); --no-optimize skips it"
        )
    if precision == "int8":
        if not calibration:
            raise ValueError(
                "--precision int8 needs --calibration: a few hundred images like the ones to classify "
                "(a folder, image files, or fashion-mnist)"
            )
        if transform is None:
            raise ValueError("int8 calibration needs the model's evaluation transform")
        source: Any = calibration[0] if len(calibration) == 1 else list(calibration)
        log(
            f"{name}: int8 calibration: reading up to {calibration_images} image(s) from {' '.join(calibration)}, "
            "then running them through the network to set the quantization ranges (a minute or more for a large "
            "network on a few CPU cores)"
        )
        images = load_calibration(source, transform, calibration_images, seed=seed)
    size = getattr(transform, "size", None)  # the images' size: what auto times and OpenVINO is built for
    example = None
    if images is None and size is not None:
        example = torch.zeros(1, int(getattr(model, "in_chans", 3)), *size)
    optimized = optimize_for_inference(
        model,
        precision=precision,
        calibration=images,
        compile=compile,
        example_input=example,
        **({"backend": backend, "batch_size": batch_size} if backend != "torch" else {}),
    )
    source_note = f" from {' '.join(calibration)}" if images is not None else ""
    log(f"{name}: {optimized.plan}{source_note}")
    return optimized


def compile_estimate(model: nn.Module) -> str:
    """A rough duration of ``torch.compile`` for this network on a small CPU, from its parameter count."""
    parameters = sum(p.numel() for p in model.parameters())
    if parameters < 5_000_000:
        return "10 s or more"
    if parameters < 30_000_000:
        return "a minute or more"
    return "two to three minutes or more"


def describe_run(model: nn.Module, requested: str, device: torch.device, transform: Any) -> dict[str, Any]:
    """What ran, for the JSON outputs: precision requested and used (after any fallback), backend, input size,
    preprocessing, threads and versions."""
    plan = getattr(model, "plan", None)
    if plan is not None:
        used, backend = plan.precision, f"optimised CPU model: {plan.kernels}"
    elif requested in ("bf16", "fp16"):
        used, backend = requested, f"PyTorch eager under autocast ({requested}) on {device.type}"
    else:
        used, backend = "fp32", f"PyTorch eager on {device.type}"
    preprocessing: dict[str, Any] = {"description": repr(transform)}
    for key in ("style", "crop_pct"):
        if hasattr(transform, key):
            preprocessing[key] = getattr(transform, key)
    if hasattr(transform, "interpolation"):
        preprocessing["interpolation"] = getattr(transform.interpolation, "value", str(transform.interpolation))
    metadata = getattr(model, "metadata", None)
    if metadata is not None:
        preprocessing.update(mean=list(metadata.mean), std=list(metadata.std))
    size = getattr(transform, "size", None)
    return {
        "precision_requested": requested,
        "precision": used,
        "fell_back": used != requested,
        "backend": backend,
        "backend_choice": getattr(plan, "choice", None),
        "device": str(device),
        "input_size": list(size) if size is not None else None,
        "preprocessing": preprocessing,
        "threads": torch.get_num_threads(),
        "versions": {"inception_resnet": __version__, "torch": torch.__version__},
    }
