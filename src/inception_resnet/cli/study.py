"""``inception-resnet study compare|sweep|scaling|presets``: the paper's residual study, a thin layer over the API.

``study compare``, ``study sweep`` and ``study scaling`` read a preset (``--preset cpu|gpu|imagenet|scaling-cpu|...``
or ``FILE.json``; ``study presets`` lists them; default
``gpu`` when CUDA is available, else ``cpu``), apply ``--set KEY=VALUE`` changes, train the runs not done
yet in ``--out`` and write the report there; ``study compare --models NAME ...`` adds baseline models.
``study compare`` ends by printing its verdict lines and the report's path; ``study sweep`` the chosen rates.
``study presets [NAME]`` lists the presets or prints one, to copy and edit. Under torchrun every process runs the
same command; only rank 0 writes the report.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .options import add_flag


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study",
        help="the paper's residual study: residual vs non-residual pairs, and residual scaling (dying networks)",
        description="Train the paper's comparisons under one recipe for several seeds and write a report with "
        "curves, tables and the paper's numbers beside ours. Resumable: finished runs are skipped.",
    )
    sub = parser.add_subparsers(dest="study_command", metavar="STUDY")
    sub.required = True
    descriptions = {
        "compare": "residual networks against their partners (Inception-v3 vs Inception-ResNet-v1 and "
        "Inception-ResNet-v1 without vs with its shortcuts; likewise v4 / Inception-ResNet-v2): curves, "
        "steps and time to fixed error levels, final errors, with t-intervals and sign-flip p-values",
        "sweep": "each entry of the comparison at several learning rates, validated on held-out training images: "
        "the rate per entry that the preset's comparison then uses",
        "scaling": "wide, full-depth Inception-ResNets for a grid of learning rates and residual scales "
        "1.0/0.3/0.2/0.1: dead channels before the final pooling and the residual stream measured as "
        "they train, the runs that died (with living controls) and every run's validation error",
    }
    for name, text in descriptions.items():
        command = sub.add_parser(name, help=text.split(":")[0], description=text)
        command.add_argument(
            "--preset",
            default=None,
            help="cpu, cpu-evidence, gpu, imagenet, scaling-cpu, scaling-cpu-long or a JSON file "
            "(default: gpu with CUDA, else cpu)",
        )
        command.add_argument(
            "--out", default=None, metavar="DIR", help=f"report directory (default: study-results/<preset>/{name})"
        )
        command.add_argument(
            "--parallel",
            type=int,
            default=None,
            metavar="N",
            help="train N runs at once, one process each (shortcut for --set parallel=N)",
        )
        command.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="change a setting: a study key (seeds=[0,1], pairs=..., scales=...), a "
            "training setting (epochs=2, train.lr=0.1) or a model option (model_options.width_multiplier=0.25); "
            "VALUE is JSON when it parses",
        )
        add_flag(
            command,
            "data",
            default=None,
            help="shortcut for --set data=DIR: an image folder, 'fashion-mnist' or 'mnist' (default: the preset's)",
        )
        command.add_argument(
            "--seeds", default=None, help="shortcut for --set seeds=[..], e.g. 0,1,2 (default: the preset's)"
        )
        command.add_argument(
            "--time-limit",
            type=float,
            default=None,
            metavar="SECONDS",
            help="start no new run after this many seconds; the report marks the rest (default: no limit)",
        )
        command.add_argument(
            "--report-only",
            action="store_true",
            help="train nothing; rebuild the report from the runs already in --out",
        )
        command.add_argument(
            "--print-config", action="store_true", help="print the study configuration (after --set) as JSON and exit"
        )
        command.add_argument("--quiet", action="store_true", help="no per-run progress bars")
        if name == "compare":
            command.add_argument(
                "--models",
                nargs="+",
                default=None,
                metavar="NAME",
                help="extra baseline models (e.g. googlenet bn_inception) trained under the same "
                "recipe, data order, budget and seeds; shortcut for --set baselines=[..]",
            )
        command.set_defaults(func=run, section=name)
    presets = sub.add_parser(
        "presets",
        help="list the presets, or print one (to copy and edit)",
        description="Without NAME: the presets and their descriptions. With NAME: its JSON.",
    )
    presets.add_argument("name", nargs="?", default=None, help="a preset to print (default: list them all)")
    presets.set_defaults(func=show_presets)


def show_presets(args: argparse.Namespace) -> int:
    from ..study import load_preset, preset_names, preset_path

    if args.name:
        print(preset_path(args.name).read_text(), end="")
        return 0
    for name in preset_names():
        preset = load_preset(name)
        print(f"{name:10s} {preset.description}")
    return 0


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data={json.dumps(args.data)}")
    if args.seeds is not None:
        try:
            seeds = [int(s) for s in str(args.seeds).replace(" ", "").split(",") if s]
        except ValueError:
            raise ValueError(
                f"--seeds {args.seeds!r}: expected whole numbers separated by commas, e.g. 0,1,2"
            ) from None
        overrides.append(f"seeds={json.dumps(seeds)}")
    if args.time_limit is not None:
        overrides.append(f"time_limit_s={args.time_limit}")
    if args.quiet:
        overrides.append("progress=false")
    if getattr(args, "parallel", None) is not None:
        overrides.append(f"parallel={args.parallel}")
    if getattr(args, "models", None):
        overrides.append(f"baselines={json.dumps(args.models)}")
    return overrides


def command_line(args: argparse.Namespace, preset: str, out: Path) -> str:
    """The command as an equivalent shell line (shortcut flags spelled as --set), for the report."""
    words = ["inception-resnet", "study", args.section, "--preset", preset, "--out", str(out)]
    for item in overrides_from_args(args):
        words += ["--set", item]
    if args.report_only:
        words.append("--report-only")
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    from ..study import default_preset_name, load_preset, run_compare, run_scaling, run_sweep, with_overrides

    preset = load_preset(args.preset or default_preset_name())
    section = with_overrides(preset.section(args.section), overrides_from_args(args), compare=preset.compare)
    if args.print_config:
        from ..study.config import section_to_dict

        print(json.dumps(section_to_dict(section), indent=2))
        return 0
    out = Path(args.out or f"study-results/{preset.name}/{args.section}")
    command = command_line(args, args.preset or preset.name, out)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    if args.section == "sweep":
        result = run_sweep(
            section, preset.compare, out, preset=preset.name, command=command, report_only=args.report_only, log=log
        )
        for name, lr in result.chosen.items():
            print(f"chosen learning rate for {name}: {lr:g}")
    else:
        runner = run_compare if args.section == "compare" else run_scaling
        result = runner(section, out, preset=preset.name, command=command, report_only=args.report_only, log=log)
        if args.section == "compare" and result.report is not None:
            print("\n".join(result.verdict_lines()))
    if result.report is not None:
        print(f"report: {result.report}")
    not_run = [r.spec.key for r in result.records if r.status == "not run"]
    if not_run:
        print(f"{len(not_run)} run(s) not run; run the same command again to continue", file=sys.stderr)
    return 0
