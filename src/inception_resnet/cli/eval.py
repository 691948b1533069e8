"""``inception-resnet eval``: top-1/top-5 error of a model or an ensemble with a crop set (1, 10, 12, 144).

A thin layer over :func:`inception_resnet.evaluation.evaluate.evaluate`: it builds the dataset (to know its classes),
the models (``create_model(name, pretrained=SOURCE, num_classes=<classes of the data>)``), checks the
output files can be written before any work starts, runs the evaluation and prints a paper-style table.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.crops import CROP_SETS
from ..data.datasets import build_dataset
from ..data.transforms import EVAL_STYLES
from ..evaluation.evaluate import EvalResult, evaluate
from ..files import check_output_file
from ..weights.factory import create_model
from .options import parse_model_option


@dataclass(frozen=True)
class MemberSpec:
    """One ensemble member as given on the command line: ``NAME[:WEIGHTS[:WEIGHT]]``."""

    name: str
    weights: str | None = None
    weight: float = 1.0


def parse_member(text: str) -> MemberSpec:
    """``NAME``, ``NAME:WEIGHTS``, ``NAME:WEIGHTS:WEIGHT`` or ``NAME::WEIGHT`` (no weights: random init).

    The last ``:``-part is the ensemble weight only when it is a number, so sources with colons work.
    """
    name, _, source = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME[:WEIGHTS[:WEIGHT]]")
    weight = 1.0
    head, colon, tail = source.rpartition(":")
    if colon:
        try:
            weight = float(tail)
        except ValueError:
            pass
        else:
            source = head
    return MemberSpec(name, source or None, weight)




def check_writable(path: str | None, what: str) -> None:
    """Fail before evaluating when an output file could not be written afterwards."""
    if path is not None:
        check_output_file(path, what)


def build_member(spec: MemberSpec, num_classes: int, in_chans: int, options: dict[str, Any]) -> torch.nn.Module:
    """The model of one member, with as many outputs as the data has classes."""
    try:
        return create_model(spec.name, num_classes=num_classes, in_chans=in_chans, pretrained=spec.weights,
                            **options)
    except ValueError as err:
        if spec.weights is None:
            raise
        raise ValueError(
            f"{err}\n(the data has {num_classes} classes, so the weights {spec.weights} must be for a "
            f"{spec.name} with {num_classes} outputs and the same options {options or ''})"
        ) from None


def run(args: argparse.Namespace) -> int:
    check_writable(args.json, "--json file")
    check_writable(args.csv, "--csv file")
    if args.json and args.csv and Path(args.json).resolve() == Path(args.csv).resolve():
        raise ValueError("--json and --csv name the same file; give two different files")
    members = ([MemberSpec(args.model, args.weights, args.model_weight)] if args.model else []) + args.ensemble
    if not members:
        raise ValueError("give a model with --model NAME (and --weights SOURCE), or members with --ensemble")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was given but no CUDA device is available; use --device cpu")
    decode_on_gpu = device.type == "cuda" and not args.no_gpu_decode
    dataset = build_dataset(args.data, args.split, strict=args.strict, download=not args.no_download,
                            decode=not decode_on_gpu)
    options = dict(args.model_option)
    models = [build_member(spec, len(dataset.classes), args.in_chans, options) for spec in members]
    result = evaluate(
        models, dataset, crops=args.crops, batch_size=args.batch_size,
        weights_for_ensemble=[spec.weight for spec in members], device=device, amp=args.amp,
        channels_last=args.channels_last, num_workers=args.workers, strict=args.strict,
        per_class=args.per_class, limit=args.limit, seed=args.seed, progress=not args.quiet,
        style=args.style, input_size=args.input_size, gpu_decode=decode_on_gpu,
        check_class_names=not args.ignore_class_names,
    )
    result.dataset = f"{args.data or 'fashion-mnist'} ({args.split})"
    report(result, args)
    return 0


def report(result: EvalResult, args: argparse.Namespace) -> None:
    print(result.format_table())
    if result.skipped_files:
        shown = result.skipped_files[:10]
        more = len(result.skipped_files) - len(shown)
        print(f"skipped {result.num_skipped} file(s) that could not be decoded: " + ", ".join(shown)
              + (f" and {more} more" if more else ""), file=sys.stderr)
    if args.json:
        result.write_json(args.json)
        print(f"wrote {args.json}")
    if args.csv:
        result.write_csv(args.csv)
        print(f"wrote {args.csv}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="top-1/top-5 error with 1, 10, 12 or 144 crops, of a model or an ensemble",
        description="Evaluate a model (or an ensemble: softmax averaged) on an image folder or Fashion-MNIST.",
    )
    parser.add_argument("--model", help="registered model name (see `inception-resnet models`)")
    parser.add_argument("--weights", help="weights for --model: a file or anything create_model(pretrained=) takes")
    parser.add_argument("--model-weight", type=float, default=1.0, help="ensemble weight of --model (default 1)")
    parser.add_argument("--ensemble", type=parse_member, action="append", default=[], metavar="NAME[:W[:WEIGHT]]",
                        help="add an ensemble member: model name, optional weights source and ensemble weight")
    parser.add_argument("--model-option", type=parse_model_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a model option for every member, e.g. width_multiplier=0.25 (repeatable)")
    parser.add_argument("--in-chans", type=int, default=3, help="input channels of the models (default 3)")
    parser.add_argument("--data", help="image folder (DIR/val/<class>/*.jpg or DIR/<class>/*.jpg), "
                        "'fashion-mnist' or 'mnist'; default: Fashion-MNIST")
    parser.add_argument("--split", choices=("train", "val"), default="val", help="split to evaluate (default val)")
    parser.add_argument("--crops", type=int, choices=CROP_SETS, default=1, help="crop set (default 1)")
    parser.add_argument("--style", choices=EVAL_STYLES, help="single-crop preprocessing (default: the weights')")
    parser.add_argument("--input-size", type=int, help="input side in pixels (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=32, help="views per forward pass (default 32)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader worker processes (default: up to 8)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--amp", nargs="?", const="bf16", default=None, choices=["bf16", "fp16"],
                        help="autocast: bf16 (the default when given alone) or fp16")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    parser.add_argument("--no-gpu-decode", action="store_true", help="decode JPEGs on the CPU even with cuda")
    parser.add_argument("--strict", action="store_true", help="stop at the first undecodable file")
    parser.add_argument("--ignore-class-names", action="store_true",
                        help="evaluate even when the weights were trained on other class names (a warning)")
    parser.add_argument("--per-class", action="store_true", help="also report top-1 accuracy per class")
    parser.add_argument("--limit", type=int, help="evaluate a class-balanced subset of N images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit subset (default 0)")
    parser.add_argument("--no-download", action="store_true", help="never download Fashion-MNIST/MNIST")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--csv", help="write the results to this CSV file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
