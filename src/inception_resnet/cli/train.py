"""``inception-resnet train``: every :class:`~inception_resnet.training.TrainConfig` field as a ``--flag``.

Values come, lowest priority first, from the recorded configuration of the run being resumed (with
``--resume``), a JSON file (``--config``), then the flags given; ``model_options`` are merged key by key
(``--model-option KEY=VALUE`` changes one option of the file's). Flags not given are not passed on, so the
recipe fills them in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import add_flag, says_default

if TYPE_CHECKING:
    from ..training import TrainConfig


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int`` (a union: its first member, the flag's type); other annotations unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


# TrainConfig fields set by the flags every command shares (cli/options.py), and the shared flag of each.
SHARED_FIELDS = {
    "model": "model",
    "model_options": "model_option",
    "pretrained": "weights",
    "num_classes": "num_classes",
    "device": "device",
    "batch_size": "batch_size",
    "num_workers": "workers",
    "precision": "precision",
    "data": "data",
}
# What an unset (None) field means, for fields whose help does not say it and the recipe does not fill in.
NONE_MEANS = {
    "pretrained": "none, random initialisation",
    "max_train_images": "all",
    "max_val_images": "all",
    "threads": "torch's",
    "resume": "a new run",
}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def default_help(name: str, default: Any, text: str) -> str:
    """The help of a TrainConfig flag with its default: the field's, the recipes', or what unset means."""
    from ..training import RECIPES

    text = text.replace("`", "")  # plain text: the field docs quote names in Markdown
    if says_default(text):
        return text
    if isinstance(default, dict):
        return f"{text} (default: none)"
    if name in RECIPES["paper"] and default is None:
        values = {recipe: _shown(settings[name]) for recipe, settings in RECIPES.items()}
        if len(set(values.values())) == 1:
            return f"{text} (default: {next(iter(values.values()))} in both recipes)"
        return f"{text} (default: the recipe's: " + ", ".join(f"{k} {v}" for k, v in values.items()) + ")"
    if default is None:
        return f"{text} (default: {NONE_MEANS.get(name, 'unset')})"
    return f"{text} (default: {_shown(default)})"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..training import RECIPES, TrainConfig, field_help, field_types

    parser = subparsers.add_parser(
        "train",
        help="train a model (the paper's recipe by default); resumable, torchrun-ready",
        description=(
            "Train a model with the paper's recipe (--recipe paper: RMSProp with TF semantics, lr 0.045 per 32 "
            "images, x0.94 every 2 epochs, label smoothing, EMA) or --recipe sgd. Without --data it trains on "
            "Fashion-MNIST; a data folder without a val/ split gives --val-fraction of its training images to "
            "validation. Distributed: torchrun --nproc_per_node=N -m inception_resnet train ..."
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="JSON file of settings: a dict of fields, or a run's config.json (default: none)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        default=False,
        help="print the configuration the run would use (recipe, model and data resolved) as JSON and exit",
    )
    helps = field_help()
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, annotation in field_types().items():
        flag = "--" + name.replace("_", "-")
        kind = _base_type(annotation)
        default = defaults[name] if defaults[name] is not dataclasses.MISSING else {}
        text = default_help(name, default, helps[name])
        if name in SHARED_FIELDS:
            add_flag(parser, SHARED_FIELDS[name], dest=name, default=argparse.SUPPRESS, help=text)
        elif kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=text)
        elif name == "recipe":
            parser.add_argument(flag, dest=name, choices=sorted(RECIPES), help=text)
        elif typing.get_origin(kind) is list:  # --classes Sandal Shirt 7: texts, read as names or indices
            parser.add_argument(flag, dest=name, nargs="+", metavar="ITEM", help=text)
        else:
            parser.add_argument(flag, dest=name, type=kind, metavar=name.upper(), help=text)
    parser.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (and in ``--config``), as a dict of TrainConfig fields."""
    from ..training import TrainConfig

    values: dict[str, Any] = {}
    config_file = getattr(args, "config_file", None)
    if config_file:
        values.update(read_config_file(Path(config_file)))
    names = set(TrainConfig.field_names())
    for name, value in vars(args).items():
        if name in names:
            values[name] = {**values.get(name, {}), **dict(value)} if name == "model_options" else value
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings of a ``--config`` file: a JSON object of fields, or a run's ``config.json`` (its ``config``)."""
    from ..training.config import checked_settings

    if not path.exists():
        raise FileNotFoundError(f"--config file not found: {path}")
    if not path.is_file():
        raise ValueError(f"--config {path} is not a regular file (a folder, a pipe or a device); give a JSON file")
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--config {path} is not valid JSON text (UTF-8): {err}") from None
    if isinstance(loaded, dict) and "config" in loaded:
        loaded = loaded["config"]
    if not isinstance(loaded, dict):
        raise ValueError(
            f"--config {path} must hold a JSON object of training settings (or a run's config.json, "
            f"whose 'config' is one), got {json.dumps(loaded)[:80]}"
        )
    return checked_settings(loaded, f"--config {path}")


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig the flags describe (merged with the recorded one when resuming)."""
    from ..training import TrainConfig, config_for_resume

    values = settings_from_args(args)
    if values.get("resume"):
        return config_for_resume(values)
    return TrainConfig.from_dict(values)


def effective_config(config: TrainConfig) -> tuple[dict[str, Any], list[str]]:
    """The settings a run of ``config`` uses, each resolved: the recipe's values, the model's input size and
    options, the data's number of classes; plus notes on what could not be resolved and where validation
    comes from. The dict is a valid ``--config`` file."""
    import torch

    from ..data import parse_synthetic, train_val_datasets
    from ..models.registry import model_option_defaults
    from ..weights.factory import create_model

    values = config.resolved().to_dict()
    notes: list[str] = []
    options = {**model_option_defaults(values["model"]), **config.model_options}
    values["model_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    if values["num_classes"] is None and config.classes:
        values["num_classes"] = len(config.classes)
    elif values["num_classes"] is None:
        synthetic = parse_synthetic(config.data)
        try:
            if synthetic is not None:
                values["num_classes"] = synthetic[1]
            else:
                train_set, _val, validation = train_val_datasets(
                    config.data, config.val_fraction, config.seed, download=False
                )
                values["num_classes"] = len(train_set.classes)
                notes.append(validation)
        except RuntimeError as err:  # Fashion-MNIST / MNIST not here yet: the run would download them
            notes.append(f"num_classes left unresolved: the data is not available without a download ({err})")
    with torch.device("meta"):
        model = create_model(
            values["model"],
            num_classes=values["num_classes"] or 1000,
            in_chans=config.in_chans,
            **config.model_options,
        )
    if values["input_size"] is None:
        values["input_size"] = int(model.metadata.input_size[-1])
    return values, notes


def run(args: argparse.Namespace) -> int:
    from ..training import train

    config = build_config(args)
    if args.print_config:
        values, notes = effective_config(config)
        for note in notes:
            print(note, file=sys.stderr)
        print(json.dumps(values, indent=2))
        return 0
    summary = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return summary.exit_code
    final = summary.final
    lines = [
        f"{summary.status}: {summary.epochs_completed} epoch(s), {summary.global_step} steps, "
        f"{summary.seconds:.1f} s, {summary.images_per_second:.1f} img/s (training)"
    ]
    if summary.best_top1_error is not None:
        lines.append(
            f"best top-1/top-5 error {summary.best_top1_error:.2f}/{summary.best_top5_error:.2f}% "
            f"(epoch {summary.best_epoch})"
        )
    if final.get("zero_fraction") is not None:
        lines.append(f"zeros entering the final pooling: {100 * final['zero_fraction']:.1f}%")
    lines.append(f"run directory: {summary.run_dir}")
    if summary.last_checkpoint:
        lines.append(f"last checkpoint: {summary.last_checkpoint}")
    if summary.exit_code:
        lines.append(f"resume with: inception-resnet train --run-dir {summary.run_dir} --resume auto")
    print("\n".join(lines), file=sys.stderr if summary.exit_code else sys.stdout)
    return summary.exit_code
