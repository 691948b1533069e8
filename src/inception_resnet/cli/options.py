"""The flags several commands share, each defined once here, and the help formatter every command uses.

A command adds a shared flag with :func:`add_flag` (``add_flag(parser, "batch_size", default=32)``), so the
same setting has the same spelling, short form, type, choices and metavar everywhere: ``--model``,
``--model-option KEY=VALUE``, ``--weights``, ``--num-classes``, ``--class-map FILE``, ``--device`` (default
``auto`` everywhere), ``-b/--batch-size``, ``-j/--workers``, ``--precision {fp32,bf16,fp16}`` (with ``int8``
in the inference commands: :data:`INFERENCE_FLAG_CHOICES`), ``--data``/``--data-dir``, and for the inference
commands ``--no-optimize``, ``--calibration`` and ``--calibration-images``; the names follow timm's scripts
where timm users would type them.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

from ..inference.precision import BACKENDS, INFERENCE_PRECISIONS
from ..training.config import AUTOCAST_PRECISIONS

# eval, predict and bench take autocast's precisions and the CPU inference ones (int8: post-training static
# quantization, on the CPU); each set is defined once, where it acts.
INFERENCE_FLAG_CHOICES = tuple(dict.fromkeys((*AUTOCAST_PRECISIONS, *INFERENCE_PRECISIONS)))
INFERENCE_PRECISION_HELP = (
    "on the CPU, our optimised model in fp32, bf16 or int8 (oneDNN kernels; int8: calibrated with "
    "--calibration); fp16 and, with --no-optimize or on a GPU, bf16 run the plain model under autocast"
)


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. width_multiplier=0.25")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


# Arguments of create_model that have a flag of their own: as --model-option they would clash with it.
RESERVED_OPTIONS = {
    "num_classes": "--num-classes",
    "pretrained": "--weights",
    "in_chans": "--in-chans",
    "drop_rate": "--drop-rate",
    "features_only": None,
    "out_indices": None,
}


def parse_model_option(text: str) -> tuple[str, Any]:
    """:func:`parse_option` for ``--model-option``, refusing keys that are not network options."""
    key, value = parse_option(text)
    if key in RESERVED_OPTIONS:
        flag = RESERVED_OPTIONS[key]
        where = f"give it with {flag}" if flag else "it is not available from the command line"
        raise argparse.ArgumentTypeError(f"{text!r}: {key} is not a network option; {where}")
    return key, value


@dataclass(frozen=True)
class Flag:
    """One shared flag: its option strings, argparse keywords and help text."""

    names: tuple[str, ...]
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)


SHARED: dict[str, Flag] = {
    "model": Flag(("--model",), "registered model name (see: inception-resnet models)", {"metavar": "NAME"}),
    "model_option": Flag(
        ("--model-option",),
        "a model option, e.g. width_multiplier=0.25 or aux_logits=true (repeatable; VALUE "
        "is read as JSON when it parses)",
        {"type": parse_model_option, "action": "append", "metavar": "KEY=VALUE"},
    ),
    "weights": Flag(
        ("--weights",),
        "weights to load: a file (.safetensors, .pth, TF-slim .ckpt, Keras .h5), a folder holding "
        "model.safetensors, or a hub tag such as timm/inception_v4.tf_in1k",
        {"metavar": "SOURCE"},
    ),
    "num_classes": Flag(
        ("--num-classes",), "classifier outputs (1001 keeps TF-slim's background class)", {"type": int, "metavar": "N"}
    ),
    "class_map": Flag(
        ("--class-map",),
        "map class folder names to the model's class indices: a text file with one class name "
        "per line (line k is index k, as timm's class maps) or 'NAME INDEX' lines, or a JSON object; lets weights "
        "trained on many classes (ImageNet) be evaluated on a folder holding some of them",
        {"metavar": "FILE"},
    ),
    "device": Flag(("--device",), "auto (cuda when available, else cpu), cpu, cuda or cuda:N", {"metavar": "DEVICE"}),
    "batch_size": Flag(("-b", "--batch-size"), "batch size", {"type": int, "metavar": "N"}),
    "workers": Flag(
        ("-j", "--workers"),
        "data loader worker processes (0: load in the main process)",
        {"type": int, "metavar": "N"},
    ),
    "precision": Flag(("--precision",), "fp32, or autocast to bf16 or fp16", {"choices": AUTOCAST_PRECISIONS}),
    "no_optimize": Flag(
        ("--no-optimize",),
        "on the CPU, run the plain model (under autocast for bf16) instead of the optimised one --precision selects",
        {"action": "store_true"},
    ),
    "backend": Flag(
        ("--backend",),
        "on the CPU, what runs the optimised model: torch (oneDNN kernels), openvino (the openvino "
        "extra), or auto (default: the one measured fastest here for this model, batch size and precision, "
        "remembered)",
        {"choices": BACKENDS},
    ),
    "calibration": Flag(
        ("--calibration",),
        "int8: the images to calibrate on, preprocessed as the inputs: image files, a folder "
        "of images (its train/ split when it has one) or fashion-mnist/mnist",
        {"nargs": "+", "metavar": "SOURCE"},
    ),
    "calibration_images": Flag(
        ("--calibration-images",),
        "int8: how many calibration images to use at most (class-balanced from a dataset)",
        {"type": int, "metavar": "N"},
    ),
    "data": Flag(
        ("--data", "--data-dir"),
        "an image folder (DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg, or "
        "DIR/<class>/*.jpg), 'fashion-mnist' or 'mnist'",
        {"metavar": "DIR"},
    ),
}


def add_flag(
    parser: argparse.ArgumentParser, key: str, *, help: str | None = None, extra_help: str = "", **overrides: Any
) -> argparse.Action:
    """Add the shared flag ``key`` to ``parser``; ``overrides`` set ``default``, ``required``, ``dest``...

    ``help`` replaces the shared help text, ``extra_help`` is appended to it.
    """
    flag = SHARED[key]
    kwargs = {**flag.kwargs, **overrides}
    text = help if help is not None else flag.help
    return parser.add_argument(*flag.names, help=text + (f" {extra_help}" if extra_help else ""), **kwargs)


def resolve_device(name: str | None) -> Any:
    """``--device``: ``auto`` (or None) is cuda when available, else cpu; cuda without CUDA is a clear error."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r} is not a device ({err}); use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} was given but no CUDA device is available; use --device cpu or auto")
    return device


_SWITCHES = (
    argparse._StoreTrueAction,
    argparse._StoreFalseAction,
    argparse._StoreConstAction,
    argparse._CountAction,
    argparse._HelpAction,
    argparse._VersionAction,
)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help with the default appended to every flag that takes a value and has one.

    As argparse's ``ArgumentDefaultsHelpFormatter``, except that a help text that already says its default
    (or what its absence means) is left as it is, an unset default reads "none", and switches, which are
    off unless given, get no "(default: False)".
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if says_default(text) or not action.option_strings or isinstance(action, _SWITCHES) or action.required:
            return text
        if action.default is argparse.SUPPRESS:
            return text
        if action.default is None or action.default == []:
            return text + " (default: none)"
        return text + " (default: %(default)s)"


def says_default(text: str) -> bool:
    """Whether a help text already states its default (or what leaving the flag out means)."""
    return "(default" in text or "default:" in text


def is_switch(action: argparse.Action) -> bool:
    """Whether the flag takes no value (its help needs no default)."""
    return isinstance(action, _SWITCHES)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults (:class:`HelpFormatter`); sub-commands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
