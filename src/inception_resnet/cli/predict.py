"""``inception-resnet predict IMAGE... --model NAME --weights SOURCE``: top-k ImageNet classes of image files.

A thin layer over :func:`inception_resnet.evaluation.predict.predict_files`: builds the model, loads the weights (a
file, a TF-slim checkpoint, a Keras file or a hub tag; notes on adaptations go to stderr), classifies the
images with the weights' own preprocessing and prints a table per image, or JSON with ``--json``. A file
that cannot be read is reported on stderr and the others are still classified; the exit status is 1 when
any file failed. On the CPU the model is first optimised for ``--precision`` (fp32 by default), unless
``--no-optimize``; int8 calibrates on ``--calibration``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import torch
from torch import nn

from ..data.transforms import eval_transform_for
from ..evaluation.predict import format_predictions, predict_files
from ..models.registry import check_model
from ..weights.factory import create_model, option_conflicts
from ..weights.records import read_model_config
from .inference import add_inference_flags, describe_run, optimize_model, uses_fast_path
from .options import add_flag, resolve_device


def add_model_arguments(parser: argparse.ArgumentParser, weights_required: bool = True) -> None:
    """``--weights``, ``--num-classes``, ``--model-option``: what builds the model besides its name."""
    add_flag(parser, "weights", required=weights_required)
    add_flag(parser, "num_classes", extra_help="(default: the weights', 1000 for weights that do not record it)")
    add_flag(parser, "model_option", default=[])


def model_from_flags(
    name: str | None,
    weights: str | None,
    num_classes: int | None,
    options: list[tuple[str, Any]] | dict[str, Any],
    *,
    in_chans: int | None = None,
    input_size: int | None = None,
    quiet: bool = False,
) -> nn.Module:
    """The model the flags describe, built by ``create_model`` alone and in eval mode; the loader's notes on stderr.

    Weights that record their model (our checkpoints and run directories: :mod:`inception_resnet.weights.records`)
    give the name, options, classes and input size; ``--num-classes`` that contradicts them is an error, and
    ``--input-size`` that differs is used with a warning naming both sizes. Other weights must have exactly
    ``num_classes`` outputs (default 1000): a classifier of another size is an error, not a new head.
    """
    config = read_model_config(weights)
    if config is not None:  # a value of the wrong type is named as such, before any comparison with the weights
        check_model(name or config["architecture"], dict(options))
    conflicts = option_conflicts(config, dict(options))
    if conflicts:
        raise ValueError(
            f"--model-option {', '.join(conflicts)} contradicts the weights {weights}; leave it out to use theirs"
        )
    recorded = config["num_classes"] if config else None
    if recorded is not None and num_classes is not None and num_classes != recorded:
        raise ValueError(
            f"--num-classes {num_classes} contradicts the weights {weights}, which have {recorded} "
            f"classes; leave out --num-classes"
        )
    with warnings.catch_warnings():  # a classifier that does not fit is an error here (below), not a new head
        warnings.filterwarnings("ignore", message=".*classifiers do not fit")
        model = create_model(
            name, pretrained=weights, num_classes=None if config else num_classes, in_chans=in_chans, **dict(options)
        )
    if model.new_classifiers:
        raise ValueError(
            f"the weights {weights} do not have {model.num_classes} classes (their classifier does not "
            f"fit {', '.join(model.new_classifiers)}); pass --num-classes with the weights' number of "
            "classes, or weights trained on these classes"
        )
    size = model.metadata.input_size[-1]
    if input_size is not None and config is not None and input_size != size:
        warnings.warn(
            f"--input-size {input_size} differs from the input size the weights {weights} record ({size}, "
            f"the size a run trained and validated at); using {input_size}",
            stacklevel=2,
        )
    if not quiet:
        for note in model.load_notes:
            print(f"note: {note}", file=sys.stderr)
    return model.eval()


class AutocastModel(nn.Module):
    """The plain model under autocast (``--precision bf16/fp16`` without the optimised CPU model)."""

    def __init__(self, model: nn.Module, precision: str) -> None:
        super().__init__()
        self.model = model
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        for name in (
            "model_name",
            "metadata",
            "num_classes",
            "in_chans",
            "default_size",
            "features_only",
            "classify_output",
        ):
            if hasattr(model, name):
                self.__dict__[name] = getattr(model, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=self.dtype):
            return self.model(x).float()


def run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    device = resolve_device(args.device)
    fast = uses_fast_path(args.precision, device, args.no_optimize)
    model = model_from_flags(args.model, args.weights, args.num_classes, args.model_option, input_size=args.input_size)
    transform = eval_transform_for(model, input_size=args.input_size)
    if fast:
        model = optimize_model(
            model,
            args.precision,
            calibration=args.calibration,
            calibration_images=args.calibration_images,
            transform=transform,
            backend=args.backend,
            batch_size=args.batch_size,
        )
    elif args.precision in ("bf16", "fp16"):
        model = AutocastModel(model, args.precision)
    predictions, failures = predict_files(
        model, args.images, args.topk, input_size=args.input_size, batch_size=args.batch_size, device=device
    )
    for failure in failures:
        print(f"inception-resnet predict: {failure.path}: {failure.error}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "model": model.model_name,
                    "weights": args.weights,
                    "run": describe_run(model, args.precision, device, transform),
                    "predictions": [p.as_dict() for p in predictions],
                    "errors": [f.as_dict() for f in failures],
                },
                indent=2,
            )
        )
    elif predictions:
        print(format_predictions(predictions))
    if failures:
        print(
            f"inception-resnet predict: {len(failures)} of {len(args.images)} file(s) could not be classified",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="top-k ImageNet classes of image files",
        description="Classify image files with the weights' own preprocessing; prints a top-k table per image "
        "(or JSON). Unreadable files are reported on stderr and the exit status is then 1.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG...)")
    add_flag(
        parser, "model", extra_help="(default: the one the weights record; our checkpoints and run directories do)"
    )
    add_model_arguments(parser)
    parser.add_argument("--topk", type=int, default=5, help="classes to show per image")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        metavar="N",
        help="input side in pixels (default: the weights' own: the run's for our checkpoints, 299 "
        "for the ImageNet models)",
    )
    add_flag(parser, "batch_size", default=8, help="images per forward pass")
    add_flag(parser, "device", default="auto")
    add_inference_flags(parser)
    parser.set_defaults(func=run)
