"""The ``inception-resnet`` command line: a thin layer over the Python API.

Each subcommand lives in its own module of this package, exposing ``add_parser(subparsers)`` (which sets
``func`` on its parser) and nothing else the dispatcher needs; ``COMMANDS`` lists them in help order. The
flags several commands share are defined once, in :mod:`.options`.

The top layer of docs/architecture.md: it may import every other layer, and none imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..version import __version__
from .options import Parser

COMMANDS = ("models", "eval", "train", "plot", "predict", "export", "bench", "study")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="inception-resnet",
        description="Inception-v3/v4 and Inception-ResNet: models, weights, training, evaluation, the study. "
        "Run inception-resnet COMMAND --help for a command's flags and their defaults.",
    )
    parser.add_argument("--version", action="version", version=f"inception-resnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        print(f"inception-resnet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inception-resnet {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
