"""``inception-resnet export --model NAME --weights W --format {safetensors,onnx,torchscript,openvino}``.

A thin layer over :func:`inception_resnet.weights.export.export_model` and, for OpenVINO IR and int8 files
(``--precision int8 --calibration SOURCE``), :func:`inception_resnet.inference.deploy.export_deployment`:
builds the model, loads the weights, writes the file (``--output``, default ``NAME.<suffix>`` here; an
existing file is kept unless ``--overwrite``) and prints its check: the max abs difference from PyTorch on a
random batch, or for int8 the top-1 agreement with the fp32 model on check images that were not calibrated
on (``--check-data``, default: other images of the calibration source).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data.calibration import DEFAULT_CALIBRATION_IMAGES, load_calibration
from ..data.transforms import eval_transform_for
from ..inference.deploy import export_deployment
from ..inference.precision import INFERENCE_PRECISIONS
from ..weights.export import FORMATS, SUFFIXES, export_model
from .options import add_flag
from .predict import add_model_arguments, model_from_flags

EXPORT_FORMATS = (*FORMATS, "openvino")
EXPORT_PRECISION_CHOICES = tuple(p for p in INFERENCE_PRECISIONS if p != "bf16")  # files hold fp32 or int8
MIN_CHECK_IMAGES = 100  # fewer check images than this cannot measure agreement to a percent


def default_path(name: str, fmt: str, precision: str = "fp32") -> Path:
    """``NAME[-int8].<suffix>`` in the current folder (OpenVINO: the ``.xml`` of the IR pair)."""
    suffix = ".xml" if fmt == "openvino" else SUFFIXES[fmt]
    return Path(name + ("-int8" if precision == "int8" else "") + suffix)


def int8_images(args: argparse.Namespace, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(calibration images, check images)`` for an int8 export: different images, through the model's
    evaluation transform. Without ``--check-data`` the check images are other images of the calibration
    source (drawn together, then split)."""
    if not args.calibration:
        raise ValueError(
            "--precision int8 needs --calibration: a few hundred images like the ones the model will "
            "see (a folder, image files, or fashion-mnist)"
        )
    transform = eval_transform_for(model, input_size=args.input_size)
    source = args.calibration[0] if len(args.calibration) == 1 else list(args.calibration)
    count = args.calibration_images
    if args.check_data:
        check_source = args.check_data[0] if len(args.check_data) == 1 else list(args.check_data)
        calibration = load_calibration(source, transform, count)
        check = load_calibration(check_source, transform, args.check_images, seed=1)
    else:
        images = load_calibration(source, transform, count + args.check_images)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        calibration, check = images[order[:count]], images[order[count:]]
    if len(check) < MIN_CHECK_IMAGES:
        raise ValueError(
            f"only {len(check)} check images besides the {len(calibration)} calibration images; the "
            f"int8 check needs at least {MIN_CHECK_IMAGES}: give a larger --calibration source, fewer "
            "--calibration-images, or --check-data SOURCE"
        )
    return calibration, check


def run(args: argparse.Namespace) -> int:
    name = args.model
    output = Path(args.output) if args.output else default_path(name, args.format, args.precision)
    if output.is_dir():
        raise IsADirectoryError(
            f"--output {output} is a folder; give a file name such as "
            f"{output / default_path(name, args.format, args.precision)}"
        )
    deploy = args.format == "openvino" or args.precision == "int8"
    if deploy and (args.format not in ("onnx", "openvino") or args.train_mode or args.no_check):
        raise ValueError(
            "--format openvino and --precision int8 (onnx or openvino) write eval-mode files and "
            "always check them; leave out --train-mode and --no-check"
        )
    if output.exists() and not args.overwrite:
        raise ValueError(f"{output} exists; pass --overwrite to replace it or --output to write elsewhere")
    model = model_from_flags(name, args.weights, args.num_classes, args.model_option)
    if args.train_mode:
        model.train()
    if deploy:
        calibration, check = int8_images(args, model) if args.precision == "int8" else (None, None)
        result = export_deployment(
            model,
            output,
            args.format,
            precision=args.precision,
            calibration=calibration,
            check_images=check,
            input_size=args.input_size,
            opset=args.opset,
        )
    else:
        result = export_model(
            model,
            output,
            args.format,
            input_size=args.input_size,
            train_mode=args.train_mode,
            check=not args.no_check,
            opset=args.opset,
        )
    for note in result.notes:
        print(f"note: {note}")
    checked = "" if result.max_abs_diff is None else f" (max abs difference from PyTorch {result.max_abs_diff:.2e})"
    if result.agreement is not None:
        checked = f" (top-1 agreement with the fp32 model {result.agreement:.1f}% of {len(check)} check images)"
    print(f"wrote {result.path} [{result.format}]{checked}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a model as safetensors (timm layout), ONNX, TorchScript or OpenVINO IR",
        description="Write a model with its weights as safetensors (timm's layout), ONNX, TorchScript or OpenVINO "
        "IR (.xml and .bin); ONNX, TorchScript and IR files are checked against PyTorch on a random "
        "batch. --precision int8 (onnx: QDQ, openvino) quantizes on --calibration and writes the file "
        "only when its top-1 class agrees with the fp32 model's on at least 97%% of check images.",
    )
    add_flag(parser, "model", required=True)
    add_model_arguments(parser)
    parser.add_argument("--format", choices=EXPORT_FORMATS, required=True, help="output format")
    add_flag(
        parser,
        "precision",
        default="fp32",
        choices=EXPORT_PRECISION_CHOICES,
        help="int8: post-training quantization (onnx, openvino) on --calibration",
    )
    add_flag(parser, "calibration")
    add_flag(parser, "calibration_images", default=DEFAULT_CALIBRATION_IMAGES)
    parser.add_argument(
        "--check-data",
        nargs="+",
        default=None,
        metavar="SOURCE",
        help="int8: the images the agreement is measured on, as --calibration (default: other "
        "images of the calibration source)",
    )
    parser.add_argument(
        "--check-images", type=int, default=256, metavar="N", help="int8: how many check images (at least 100)"
    )
    parser.add_argument(
        "--output", "-o", default=None, metavar="FILE", help="output file (default: NAME.<suffix> here)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        metavar="N",
        help="input side of the export example and check (default: the model's, 299)",
    )
    parser.add_argument(
        "--train-mode", action="store_true", help="export the training-mode model (only safetensors can represent it)"
    )
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime / TorchScript check")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.set_defaults(func=run)
