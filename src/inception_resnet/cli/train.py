"""``inception-resnet train``: every :class:`~inception_resnet.training.TrainConfig` field as a ``--flag``.

Values come, lowest priority first, from the recorded configuration of the run being resumed (with
``--resume``), a JSON file (``--config``), then the flags given. Flags not given are not passed on, so the
recipe fills them in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import parse_option

if TYPE_CHECKING:
    from ..training import TrainConfig


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; other annotations unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else str
    return annotation


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..training import RECIPES, field_help, field_types

    parser = subparsers.add_parser(
        "train",
        help="train a model (the paper's recipe by default); resumable, torchrun-ready",
        description=(
            "Train a model with the paper's recipe (--recipe paper: RMSProp with TF semantics, lr 0.045 per 32 "
            "images, x0.94 every 2 epochs, label smoothing, EMA) or --recipe sgd. Without --data it trains on "
            "Fashion-MNIST. Distributed: torchrun --nproc_per_node=N -m inception_resnet train ..."
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", dest="config_file", metavar="FILE",
                        help="JSON file of settings (a dict of fields, or a run's config.json)")
    parser.add_argument("--print-config", action="store_true", default=False,
                        help="print the resolved configuration as JSON and exit")
    helps = field_help()
    for name, annotation in field_types().items():
        flag = "--" + name.replace("_", "-")
        kind = _base_type(annotation)
        text = helps.get(name, "")
        if name == "model_options":
            parser.add_argument("--model-option", dest="model_options", action="append", type=parse_option,
                                metavar="KEY=VALUE", help=text + " (repeatable; VALUE parsed as JSON)")
        elif kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=text)
        elif name == "recipe":
            parser.add_argument(flag, dest=name, choices=sorted(RECIPES), help=text)
        else:
            parser.add_argument(flag, dest=name, type=kind, metavar=name.upper(), help=text)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (and in ``--config``), as a dict of TrainConfig fields."""
    from ..training import TrainConfig

    values: dict[str, Any] = {}
    config_file = getattr(args, "config_file", None)
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"--config file not found: {path}")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"--config {path} is not valid JSON ({err})") from None
        values.update(loaded.get("config", loaded) if isinstance(loaded, dict) else {})
    names = set(TrainConfig.field_names())
    for name, value in vars(args).items():
        if name in names:
            values[name] = dict(value) if name == "model_options" else value
    return values


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the flags describe (merged with the recorded one when resuming)."""
    from ..training import TrainConfig, config_for_resume

    values = settings_from_args(args)
    if values.get("resume"):
        return config_for_resume(values)
    return TrainConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    from ..training import train

    config = build_config(args)
    if args.print_config:
        print(json.dumps(config.resolved().to_dict(), indent=2))
        return 0
    summary = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return summary.exit_code
    final = summary.final
    lines = [f"{summary.status}: {summary.epochs_completed} epoch(s), {summary.global_step} steps, "
             f"{summary.seconds:.1f} s, {summary.images_per_second:.1f} img/s (training)"]
    if summary.best_top1_error is not None:
        lines.append(f"best top-1/top-5 error {summary.best_top1_error:.2f}/{summary.best_top5_error:.2f}% "
                     f"(epoch {summary.best_epoch})")
    if final.get("zero_fraction") is not None:
        lines.append(f"zeros entering the final pooling: {100 * final['zero_fraction']:.1f}%")
    lines.append(f"run directory: {summary.run_dir}")
    if summary.last_checkpoint:
        lines.append(f"last checkpoint: {summary.last_checkpoint}")
    if summary.exit_code:
        lines.append(f"resume with: inception-resnet train --run-dir {summary.run_dir} --resume auto")
    print("\n".join(lines), file=sys.stderr if summary.exit_code else sys.stdout)
    return summary.exit_code
