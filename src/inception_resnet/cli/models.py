"""``inception-resnet models``: the table of registered networks, computed from the models themselves."""

from __future__ import annotations

import argparse
import json

import torch

from ..markdown import table
from ..models.complexity import count_macs, count_parameters
from ..models.registry import list_models
from ..weights.factory import create_model


def model_table(pattern: str = "*") -> list[dict]:
    """One row per registered model: parameters, GMACs at the default size, input sizes and source."""
    rows = []
    for name in list_models(pattern):
        with torch.device("meta"):
            model = create_model(name)
        meta = model.metadata
        rows.append(
            {
                "name": name,
                "params": count_parameters(model),
                "gmacs": round(count_macs(model, meta.input_size) / 1e9, 3),
                "input_size": meta.input_size[-1],
                "min_input_size": meta.min_input_size,
                "source": meta.source,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    header = ["name", "params", "GMACs", "input", "min input", "source"]
    return table(
        header,
        [
            [r["name"], f"{r['params']:,}", f"{r['gmacs']:.2f}", r["input_size"], r["min_input_size"], r["source"]]
            for r in rows
        ],
    )


def run(args: argparse.Namespace) -> int:
    rows = model_table(args.pattern)
    if not rows:
        raise ValueError(f"no model matches {args.pattern!r}; see `inception-resnet models`")
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the networks with parameters and GMACs",
        description="The registered networks with their parameters (1000 classes), GMACs at the default input "
        "size, default and minimum input sizes and source, computed from the models themselves.",
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'inception_resnet*'")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
