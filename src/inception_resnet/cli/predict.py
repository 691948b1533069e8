"""``inception-resnet predict IMAGE... --model NAME --weights SOURCE``: top-k ImageNet classes of image files.

A thin layer over :func:`inception_resnet.evaluation.predict.predict_files`: builds the model, loads the weights (a
file, a TF-slim checkpoint, a Keras file or a hub tag; notes on adaptations go to stderr), classifies the
images with the weights' own preprocessing and prints a table per image, or JSON with ``--json``. A file
that cannot be read is reported on stderr and the others are still classified; the exit status is 1 when
any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from torch import nn

from ..evaluation.predict import format_predictions, predict_files
from ..weights.factory import create_model
from ..weights.loading import load_weights
from .options import parse_model_option


def add_model_arguments(parser: argparse.ArgumentParser, weights_required: bool = True) -> None:
    """``--model``, ``--weights``, ``--num-classes``, ``--model-option``: what builds the model."""
    parser.add_argument("--weights", required=weights_required, metavar="SOURCE",
                        help="weights file (.safetensors/.pth, TF-slim .ckpt, Keras .h5), folder or hub tag "
                             "such as timm/inception_v4.tf_in1k")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classifier outputs (default 1000; 1001 keeps TF-slim's background class)")
    parser.add_argument("--model-option", type=parse_model_option, action="append", default=[], metavar="KEY=VALUE",
                        help="network option, e.g. aux_logits=true or width_multiplier=0.5 (repeatable)")


def build_model(name: str, weights: str | None, num_classes: int | None, options: list[tuple[str, Any]]) -> nn.Module:
    """Create ``name`` and load ``weights`` into it, printing the loader's notes on stderr."""
    kwargs: dict[str, Any] = dict(options)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = create_model(name, **kwargs)
    if weights is not None:
        for note in load_weights(model, weights):
            print(f"note: {note}", file=sys.stderr)
    return model.eval()


def run(args: argparse.Namespace) -> int:
    if args.topk < 1:
        raise ValueError(f"--topk must be at least 1, got {args.topk}")
    model = build_model(args.model, args.weights, args.num_classes, args.model_option)
    predictions, failures = predict_files(model, args.images, args.topk, input_size=args.input_size,
                                          batch_size=args.batch_size, device=args.device)
    for failure in failures:
        print(f"inception-resnet predict: {failure.path}: {failure.error}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": args.model, "weights": args.weights,
                          "predictions": [p.as_dict() for p in predictions],
                          "errors": [f.as_dict() for f in failures]}, indent=2))
    elif predictions:
        print(format_predictions(predictions))
    if failures:
        print(f"inception-resnet predict: {len(failures)} of {len(args.images)} file(s) could not be classified",
              file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="top-k ImageNet classes of image files")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG...)")
    parser.add_argument("--model", required=True, help="network name (see `inception-resnet models`)")
    add_model_arguments(parser)
    parser.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--input-size", type=int, default=None,
                        help="input side in pixels (default: the weights' own, 299 for the ImageNet models)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.set_defaults(func=run)
