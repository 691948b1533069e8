"""Argument types the subcommands share."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. width_multiplier=0.25")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# Arguments of create_model that have a flag of their own: as --model-option they would clash with it.
RESERVED_OPTIONS = {"num_classes": "--num-classes", "pretrained": "--weights", "in_chans": "--in-chans",
                    "drop_rate": "--drop-rate", "features_only": None, "out_indices": None}


def parse_model_option(text: str) -> tuple[str, Any]:
    """:func:`parse_option` for ``--model-option``, refusing keys that are not network options."""
    key, value = parse_option(text)
    if key in RESERVED_OPTIONS:
        flag = RESERVED_OPTIONS[key]
        where = f"give it with {flag}" if flag else "it is not available from the command line"
        raise argparse.ArgumentTypeError(f"{text!r}: {key} is not a network option; {where}")
    return key, value
