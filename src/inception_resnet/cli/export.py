"""``inception-resnet export --model NAME --weights W --format {safetensors,onnx,torchscript}``.

A thin layer over :func:`inception_resnet.weights.export.export_model`: builds the model, loads the weights,
writes the file (``--output``, default ``NAME.<suffix>`` here; an existing file is kept unless
``--overwrite``) and, for ONNX and TorchScript, prints the max abs difference of the written model from
PyTorch on a random batch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..weights.export import FORMATS, default_path, export_model
from .options import add_flag
from .predict import add_model_arguments, build_model


def run(args: argparse.Namespace) -> int:
    name = args.model
    output = Path(args.output) if args.output else default_path(name, args.format)
    if output.is_dir():
        raise IsADirectoryError(f"--output {output} is a folder; give a file name such as "
                                f"{output / default_path(name, args.format)}")
    if output.exists() and not args.overwrite:
        raise ValueError(f"{output} exists; pass --overwrite to replace it or --output to write elsewhere")
    model = build_model(name, args.weights, args.num_classes, args.model_option)
    if args.train_mode:
        model.train()
    result = export_model(model, output, args.format, input_size=args.input_size, train_mode=args.train_mode,
                          check=not args.no_check, opset=args.opset)
    for note in result.notes:
        print(f"note: {note}")
    checked = "" if result.max_abs_diff is None else f" (max abs difference from PyTorch {result.max_abs_diff:.2e})"
    print(f"wrote {result.path} [{result.format}]{checked}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a model as safetensors (timm layout), ONNX or TorchScript",
        description="Write a model with its weights as safetensors (timm's layout), ONNX or TorchScript; ONNX and "
                    "TorchScript files are checked against PyTorch on a random batch.",
    )
    add_flag(parser, "model", required=True)
    add_model_arguments(parser)
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("--output", "-o", default=None, metavar="FILE",
                        help="output file (default: NAME.<suffix> here)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--input-size", type=int, default=None,
                        metavar="N", help="input side of the export example and check (default: the model's, 299)")
    parser.add_argument("--train-mode", action="store_true",
                        help="export the training-mode model (only safetensors can represent it)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime / TorchScript check")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.set_defaults(func=run)
