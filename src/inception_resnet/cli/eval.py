"""``inception-resnet eval``: top-1/top-5 error of a model or an ensemble with a crop set (1, 10, 12, 144).

A thin layer over :func:`inception_resnet.evaluation.evaluate.evaluate`: it builds the dataset (to know its
classes; relabelled by ``--class-map``), the models (``create_model(name, num_classes=<classes of the data>)``,
then ``load_weights(SOURCE)``, which must fit; random weights drawn with ``--seed``), checks the output files can
be written before any work starts, runs the evaluation and prints a paper-style table. On the CPU each model is
first optimised for ``--precision`` (fp32 by default; :mod:`.inference`), unless ``--no-optimize``; int8
calibrates on ``--calibration``, by default on the training split of ``--data``.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.class_map import apply_class_map, read_class_map
from ..data.crops import CROP_SETS, multi_crop_transform_for
from ..data.datasets import build_dataset
from ..data.transforms import EVAL_STYLES, as_size
from ..evaluation.evaluate import evaluate
from ..evaluation.metrics import EvalResult
from ..files import check_output_file
from ..weights.factory import create_model
from ..weights.records import read_model_config
from .inference import add_inference_flags, describe_run, optimize_model, uses_fast_path
from .options import add_flag, resolve_device
from .predict import model_from_flags


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


def build_member(
    spec: MemberSpec,
    num_classes: int,
    in_chans: int | None,
    options: dict[str, Any],
    input_size: int | None = None,
    explicit_classes: int | None = None,
) -> torch.nn.Module:
    """The model of one member: the one its weights record (our checkpoints and run directories), else ``spec.name``
    with as many outputs as the data has classes (random weights without a weights source)."""
    if spec.weights is None:
        if spec.name is None:
            raise ValueError("give a model with --model NAME (and --weights SOURCE), or members with --ensemble")
        return create_model(spec.name, num_classes=num_classes, in_chans=in_chans, **options).eval()
    recorded = read_model_config(spec.weights) is not None
    try:
        return model_from_flags(
            spec.name,
            spec.weights,
            explicit_classes if recorded else num_classes,
            options,
            in_chans=in_chans,
            input_size=input_size,
        )
    except ValueError as err:
        if recorded:
            raise
        raise ValueError(
            f"{err}\n(the data has {num_classes} classes, so the weights {spec.weights} must be for a "
            f"{spec.name} with {num_classes} outputs and the same options {options or ''})"
        ) from None


def load_data(args: argparse.Namespace, decode: bool) -> torch.utils.data.Dataset:
    """The dataset to evaluate, relabelled by ``--class-map`` when one is given."""
    dataset = build_dataset(args.data, args.split, strict=args.strict, download=not args.no_download, decode=decode)
    if args.class_map:
        dataset = apply_class_map(dataset, read_class_map(args.class_map), f"--class-map {args.class_map}")
    return dataset


def run(args: argparse.Namespace) -> int:
    check_writable(args.json, "--json file")
    check_writable(args.csv, "--csv file")
    if args.json and args.csv and Path(args.json).resolve() == Path(args.csv).resolve():
        raise ValueError("--json and --csv name the same file; give two different files")
    if args.input_size is not None:  # before any model is built: a huge size would take minutes to refuse
        as_size(args.input_size)
    given = args.model or args.weights
    members = ([MemberSpec(args.model, args.weights, args.model_weight)] if given else []) + args.ensemble
    if not members:
        raise ValueError("give a model with --model NAME (and --weights SOURCE), or members with --ensemble")
    device = resolve_device(args.device)
    fast = uses_fast_path(args.precision, device, args.no_optimize)
    decode_on_gpu = device.type == "cuda" and not args.no_gpu_decode
    dataset = load_data(args, decode=not decode_on_gpu)
    num_classes = args.num_classes or len(dataset.classes)
    options = dict(args.model_option)
    torch.manual_seed(args.seed)  # members without weights get the same random weights on every run
    models = [
        build_member(spec, num_classes, args.in_chans, options, args.input_size, args.num_classes) for spec in members
    ]
    transforms = [
        multi_crop_transform_for(model, args.crops, style=args.style, input_size=args.input_size) for model in models
    ]
    if fast:
        models = [optimize_member(model, args) for model in models]
    result = evaluate(
        models,
        dataset,
        crops=args.crops,
        batch_size=args.batch_size,
        weights_for_ensemble=[spec.weight for spec in members],
        device=device,
        precision="fp32" if fast else args.precision,
        channels_last=args.channels_last and not fast,
        num_workers=args.workers,
        strict=args.strict,
        per_class=args.per_class,
        limit=args.limit,
        seed=args.seed,
        progress=not args.quiet,
        style=args.style,
        input_size=args.input_size,
        gpu_decode=decode_on_gpu,
        check_class_names=not args.ignore_class_names,
    )
    result.run = {
        "members": [
            {
                "model": getattr(model, "model_name", spec.name),
                "weights": spec.weights,
                **describe_run(model, args.precision, device, transform),
            }
            for spec, model, transform in zip(members, models, transforms, strict=True)
        ]
    }
    result.dataset = f"{args.data or 'fashion-mnist'} ({args.split})"
    report(result, args)
    return 0


def optimize_member(model: torch.nn.Module, args: argparse.Namespace) -> torch.nn.Module:
    """One member optimised for ``--precision`` on the CPU, for the size of its single-crop evaluation transform;
    int8 calibrates on ``--calibration`` (default: the training split of ``--data``) through that transform."""
    calibration = args.calibration or [args.data or "fashion-mnist"]
    transform = multi_crop_transform_for(model, 1, style=args.style, input_size=args.input_size)
    return optimize_model(
        model,
        args.precision,
        calibration=calibration,
        calibration_images=args.calibration_images,
        transform=transform,
        compile=True if args.compile else None,
        seed=args.seed,
        backend=args.backend,
        batch_size=args.batch_size,
    )


def report(result: EvalResult, args: argparse.Namespace) -> None:
    print(result.format_table())
    if result.skipped_files:
        shown = result.skipped_files[:10]
        more = len(result.skipped_files) - len(shown)
        print(
            f"skipped {result.num_skipped} file(s) that could not be decoded: "
            + ", ".join(shown)
            + (f" and {more} more" if more else ""),
            file=sys.stderr,
        )
    if args.json:
        result.write_json(args.json)
        print(f"wrote {args.json}")
    if args.csv:
        result.write_csv(args.csv)
        print(f"wrote {args.csv}")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="top-1/top-5 error with 1, 10, 12 or 144 crops, of a model or an ensemble",
        description="Evaluate a model (or an ensemble: softmax averaged) on an image folder or Fashion-MNIST. "
        "The models get as many outputs as the data has classes (or --num-classes); a model "
        "without --weights gets random weights drawn with --seed.",
    )
    add_flag(
        parser,
        "model",
        extra_help="(default: the one --weights records (our checkpoints and run "
        "directories do), else none; give --model or --ensemble)",
    )
    add_flag(
        parser,
        "weights",
        extra_help="(default: none, random weights); a training run directory stands for "
        "its final weights (RUN/model/) or its best checkpoint",
    )
    add_flag(
        parser,
        "model_option",
        default=[],
        help="a model option for every member, e.g. width_multiplier=0.25 "
        "(repeatable; VALUE is read as JSON when it parses)",
    )
    add_flag(
        parser,
        "num_classes",
        help="classifier outputs of every member (default: the number of classes in the data, or of the --class-map)",
    )
    add_flag(parser, "class_map")
    parser.add_argument("--model-weight", type=float, default=1.0, help="ensemble weight of --model")
    parser.add_argument(
        "--ensemble",
        type=parse_member,
        action="append",
        default=[],
        metavar="NAME[:W[:WEIGHT]]",
        help="add an ensemble member: model name, optional weights source and ensemble weight (repeatable)",
    )
    parser.add_argument(
        "--in-chans", type=int, default=None, help="input channels of the models (default: the weights', else 3)"
    )
    add_flag(
        parser,
        "data",
        help="image folder (DIR/val/<class>/*.jpg or DIR/<class>/*.jpg), 'fashion-mnist' "
        "or 'mnist' (default: Fashion-MNIST's 10,000 test images)",
    )
    parser.add_argument("--split", choices=("train", "val"), default="val", help="split to evaluate")
    parser.add_argument("--crops", type=int, choices=CROP_SETS, default=1, help="crop set")
    parser.add_argument("--style", choices=EVAL_STYLES, help="single-crop preprocessing (default: the weights')")
    parser.add_argument("--input-size", type=int, metavar="N", help="input side in pixels (default: the model's)")
    add_flag(parser, "batch_size", default=32, help="views per forward pass")
    add_flag(parser, "workers", default=min(8, os.cpu_count() or 1))
    add_flag(parser, "device", default="auto")
    add_inference_flags(parser)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="on the CPU, also compile the fp32 and bf16 models (torch.compile with freezing: "
        "faster per image after a minute or more of compiling; int8 always compiles)",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory format (the optimised CPU model always uses it)",
    )
    parser.add_argument("--no-gpu-decode", action="store_true", help="decode JPEGs on the CPU even with cuda")
    parser.add_argument("--strict", action="store_true", help="stop at the first undecodable file")
    parser.add_argument(
        "--ignore-class-names",
        action="store_true",
        help="evaluate even when the weights were trained on other class names (a warning)",
    )
    parser.add_argument("--per-class", action="store_true", help="also report top-1 accuracy per class")
    parser.add_argument(
        "--limit", type=int, metavar="N", help="evaluate a class-balanced subset of N images (default: all)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the --limit subset and of the random weights of members without weights",
    )
    parser.add_argument("--no-download", action="store_true", help="never download Fashion-MNIST/MNIST")
    parser.add_argument("--json", metavar="FILE", help="write the results to this JSON file (default: none)")
    parser.add_argument("--csv", metavar="FILE", help="write the results to this CSV file (default: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
