"""``inception-resnet bench``: our model against timm's (same settings, interleaved), inference or training.

A thin layer over :mod:`inception_resnet.bench`. The flags describe one setting (``--channels-last``,
``--compile``, ``--precision``...); ``--optimize`` applies our optimisations to our model, ``--timm`` adds
timm's model with the same settings as the baseline. For CPU inference our model runs
``optimize_for_inference(precision=...)`` for ``--precision fp32|bf16|int8`` (``--compile``: its compiled
path), unless ``--no-optimize``. ``--candidates`` lists candidate specs explicitly instead
(``timm+cl+compile ours+opt+cl+compile``; see :func:`inception_resnet.bench.parse_candidate`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..bench import (
    Candidate,
    Workload,
    document,
    markdown_document,
    parse_candidate,
    run_workload,
    to_markdown,
)
from ..environment import environment
from ..files import check_output_dir, check_output_file, write_text_atomic
from .inference import add_inference_flags, uses_fast_path
from .options import add_flag, resolve_device

DESCRIPTION = (
    "Time our model against timm's (same settings, interleaved rounds; medians reported), for inference or the "
    "trainer's training step. The flags describe one setting (--channels-last, --compile, --precision...); "
    "--optimize applies our optimisations to our model, --timm adds timm's model with the same settings as the "
    "baseline. For CPU inference our model is the optimised one of --precision fp32, bf16 or int8 (spec "
    "ours+fp32, ours+bf16, ours+int8) unless --no-optimize. --candidates lists candidate specs instead, e.g. "
    "'timm+cl+compile ours+opt+cl+compile' (parts: timm or ours, then +cl for channels-last, +compile, +opt for "
    "our optimisations, +onednn for the CPU path, +fp32/+bf16/+int8 for a precision, +ort or +ov for ONNX "
    "Runtime or OpenVINO)."
)


def candidates_from_args(args: argparse.Namespace) -> list[Candidate]:
    """The candidates the flags describe: timm's (with ``--timm``) first, then ours.

    On the CPU (inference, ``--precision`` fp32, bf16 or int8, no ``--no-optimize``) ours is the optimised
    model of that precision; timm's runs as the flags say (autocast for bf16, fp32 for int8).
    """
    if args.candidates:
        return [parse_candidate(spec) for spec in args.candidates]
    common = {"channels_last": args.channels_last, "compile": args.compile}
    device = resolve_device(args.device)
    if args.mode == "infer" and uses_fast_path(args.precision, device, args.no_optimize):
        if args.compile not in (None, "default"):
            raise ValueError(
                f"--compile {args.compile}: the optimised CPU model compiles in the default mode "
                "only; give --compile alone, or --no-optimize"
            )
        ours = Candidate("ours", precision=args.precision, compile=args.compile, engine=args.backend)
    elif args.precision == "int8":
        raise ValueError("--precision int8 is for inference (--mode infer) on the CPU with the optimised model")
    else:
        ours = Candidate("ours", optimize=args.optimize, **common)
    return [Candidate("timm", **common), ours] if args.timm else [ours]


def workload_from_args(args: argparse.Namespace) -> Workload:
    device = str(resolve_device(args.device))
    return Workload(
        model=args.model,
        mode=args.mode,
        batch_size=args.batch_size,
        input_size=args.input_size,
        device=device,
        amp=None if args.precision in ("fp32", "int8") else args.precision,
        steps=args.steps,
        warmup=args.warmup,
        rounds=args.rounds,
        model_options=tuple(args.model_option),
        peak_tflops=args.peak_tflops,
    )


def command_line(args: argparse.Namespace) -> str:
    """The command, rebuilt from the parsed flags (the results files quote it)."""
    words = [
        "inception-resnet",
        "bench",
        "--model",
        args.model,
        "--mode",
        args.mode,
        "--batch-size",
        str(args.batch_size),
        "--input-size",
        str(args.input_size),
    ]
    for flag in ("device", "compile", "baseline", "json", "markdown"):
        value = getattr(args, flag)
        words += [f"--{flag}", str(value)] if value is not None else []
    words += ["--precision", args.precision] if args.precision != "fp32" else []
    for flag in ("channels_last", "optimize", "timm", "no_optimize"):
        words += ["--" + flag.replace("_", "-")] if getattr(args, flag) else []
    words += ["--candidates", *args.candidates] if args.candidates else []
    for key, value in args.model_option:
        words += ["--model-option", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    words += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--rounds", str(args.rounds)]
    words += ["--threads", str(args.threads)] if args.threads else []
    return " ".join(words)


def run(args: argparse.Namespace) -> int:
    if args.threads < 0:
        raise ValueError(f"--threads must be 0 (leave as is) or more, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    workload = workload_from_args(args)
    candidates = candidates_from_args(args)
    for output, what in ((args.json, "--json file"), (args.markdown, "--markdown file")):
        if output is not None:  # found before the benchmark runs, not after
            check_output_dir(Path(output).parent if str(Path(output).parent) else ".", what, create=True)
            check_output_file(output, what)
    log = (lambda message: print(message, file=sys.stderr)) if args.verbose else (lambda _message: None)
    results = run_workload(workload, candidates, baseline=args.baseline, log=log)
    env = environment(command_line(args))
    print(to_markdown(results))
    if args.json:
        write_text_atomic(args.json, json.dumps(document(results, env), indent=2) + "\n", "the --json file")
    if args.markdown:
        write_text_atomic(
            args.markdown,
            markdown_document(results, env, f"inception-resnet bench: {workload.key}"),
            "the --markdown file",
        )
    return 1 if all(r.error for r in results) else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time a model against timm's (images/s, latency, TFLOP/s, peak memory)",
        description=DESCRIPTION,
    )
    add_flag(parser, "model", required=True)
    add_flag(parser, "model_option", default=[])
    parser.add_argument(
        "--mode", choices=["infer", "train"], default="infer", help="inference, or the trainer's training step"
    )
    add_flag(parser, "batch_size", default=1)
    parser.add_argument("--input-size", type=int, default=299, metavar="N", help="input side in pixels")
    add_flag(parser, "device", default="auto")
    add_inference_flags(parser, calibration=False)
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        default=None,
        metavar="MODE",
        help="torch.compile, optionally with a mode: default, max-autotune, reduce-overhead... (default: not compiled)",
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="ours: optimize_for_inference's rewrites (infer; on the CPU with --no-optimize or "
        "--precision fp16) or fuse_branches (train)",
    )
    parser.add_argument("--timm", action="store_true", help="add timm's model with the same settings (baseline)")
    parser.add_argument(
        "--candidates", nargs="+", metavar="SPEC", help="explicit candidate specs (default: from the flags above)"
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="SPEC",
        help="ratios against this candidate (default: the first timm candidate, else the first)",
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps after building (compiles)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="peak for the FLOP utilisation column (default: no such column)"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON (default: none)")
    parser.add_argument(
        "--markdown", default=None, metavar="FILE", help="write a markdown results file (default: none)"
    )
    parser.add_argument("--verbose", action="store_true", help="log progress to stderr")
    parser.set_defaults(func=run)
