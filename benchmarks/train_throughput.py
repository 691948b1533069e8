"""Training throughput of the paper's recipe step, our networks against timm's, in the same run and loop.

Every candidate runs :class:`inception_resnet.train.StepRunner`, the step the trainer runs: forward through
:class:`~inception_resnet.train.TrainingModule` (which also measures the zero fraction), label-smoothed
cross-entropy (plus the auxiliary loss when there is a head), backward, gradient clipping at norm 2.0, a
:class:`~inception_resnet.optim.RMSpropTF` update. Inputs are random tensors already on the device, so the
numbers are the model's and the optimiser's, not the data pipeline's. timm's models (``inception_v3``,
``inception_v4``, ``inception_resnet_v2``) go through the same runner; Inception-ResNet-v1 and the paper's
IR-v2 have no timm counterpart.

Variants (``--variants``, comma-separated): ``fp32``, ``bf16`` (autocast), ``cl`` (channels_last) and
``compile`` (``torch.compile`` default mode), combined with ``+``: e.g. ``bf16+cl+compile``. Candidates are
timed in interleaved rounds (the order rotates every round) and the median step time is reported::

    python benchmarks/train_throughput.py --device cpu --batch-size 4 --steps 2 --rounds 2 --variants fp32
    python benchmarks/train_throughput.py --device cuda --batch-size 128 --json train_h200.json

With ``--dry-run`` every path runs at a quarter width on 75-pixel inputs for one step (a code check, not a
measurement).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.optim import RMSpropTF, param_groups  # noqa: E402
from inception_resnet.train import StepRunner, TrainingModule  # noqa: E402

PAPER_MODELS = ("inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2",
                "inception_resnet_v2_paper")
TIMM_NAMES = {"inception_v3": "inception_v3", "inception_v4": "inception_v4",
              "inception_resnet_v2": "inception_resnet_v2"}
FLAGS = ("fp32", "bf16", "cl", "compile")


@dataclass
class Row:
    """One measured candidate."""

    model: str
    library: str
    variant: str
    batch_size: int
    input_size: int
    images_per_second: float | None = None
    ms_per_step: float | None = None
    setup_s: float | None = None
    error: str | None = None


def parse_variant(text: str) -> set[str]:
    flags = set(text.split("+"))
    unknown = flags - set(FLAGS)
    if unknown:
        raise SystemExit(f"unknown variant flag(s) {sorted(unknown)} in {text!r}; use {'+'.join(FLAGS)}")
    return flags


def build_network(library: str, name: str, num_classes: int, width: float | None) -> torch.nn.Module:
    if library == "timm":
        import timm

        return timm.create_model(TIMM_NAMES[name], num_classes=num_classes, drop_rate=0.2)
    options = {"width_multiplier": width} if width else {}
    return create_model(name, num_classes=num_classes, drop_rate=0.2, **options)


def prepare(library: str, name: str, variant: str, args: argparse.Namespace) -> tuple[Callable[[], None], float]:
    """Build a candidate and warm it up; returns its step function and the set-up seconds."""
    start = time.perf_counter()
    flags = parse_variant(variant)
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = build_network(library, name, args.num_classes, args.width).to(device).train()
    if "cl" in flags:
        net = net.to(memory_format=torch.channels_last)
    optimizer = RMSpropTF(param_groups(net, 4e-5), lr=0.045 * args.batch_size / 32, foreach=device.type == "cuda")
    module: torch.nn.Module = TrainingModule(net)
    if "compile" in flags:
        module = torch.compile(module, backend="eager" if args.dry_run else "inductor")
    runner = StepRunner(module, optimizer, device=device, precision="bf16" if "bf16" in flags else "fp32",
                        channels_last="cl" in flags, label_smoothing=0.1, aux_loss_weight=0.4, clip_grad_norm=2.0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.input_size, args.input_size, generator=generator)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator)
    images, labels = runner.prepare(images, labels)

    def step() -> None:
        runner.forward_backward(images, labels)
        runner.unscale_and_clip()
        runner.apply()

    for _ in range(args.warmup):
        step()
    synchronize(device)
    return step, time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Callable[[], None], steps: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def candidates(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    found = []
    for name in args.models:
        for variant in args.variants:
            found.append((name, "ours", variant))
            if name in TIMM_NAMES and not args.no_timm:
                found.append((name, "timm", variant))
    return found


def run(args: argparse.Namespace) -> list[Row]:
    device = torch.device(args.device)
    prepared: dict[tuple[str, str, str], Callable[[], None]] = {}
    rows: dict[tuple[str, str, str], Row] = {}
    for key in candidates(args):
        name, library, variant = key
        row = Row(name, library, variant, args.batch_size, args.input_size)
        rows[key] = row
        try:
            prepared[key], row.setup_s = prepare(library, name, variant, args)
        except Exception as err:  # one failing candidate (no compiler, out of memory) must not stop the rest
            row.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        print(f"prepared {name} {library} {variant}" + (f" ({row.error})" if row.error else ""), file=sys.stderr)
    times: dict[tuple[str, str, str], list[float]] = {key: [] for key in prepared}
    order = list(prepared)
    for round_index in range(args.rounds):
        shift = round_index % max(1, len(order))
        for key in order[shift:] + order[:shift]:
            times[key].append(time_step(prepared[key], args.steps, device))
    for key, seconds in times.items():
        median = statistics.median(seconds)
        rows[key].ms_per_step = 1e3 * median
        rows[key].images_per_second = args.batch_size / median
    return list(rows.values())


def markdown(rows: list[Row]) -> str:
    lines = ["| model | library | variant | batch | size | img/s | ms/step | setup s |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        if row.error:
            lines.append(f"| {row.model} | {row.library} | {row.variant} | {row.batch_size} | {row.input_size} "
                         f"| error: {row.error} | | |")
            continue
        lines.append(f"| {row.model} | {row.library} | {row.variant} | {row.batch_size} | {row.input_size} | "
                     f"{row.images_per_second:.2f} | {row.ms_per_step:.1f} | {row.setup_s:.1f} |")
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor(), "threads": torch.get_num_threads(), "argv": sys.argv[1:]}
    if torch.device(args.device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", type=lambda s: s.split(","), default=list(PAPER_MODELS))
    parser.add_argument("--variants", type=lambda s: s.split(","),
                        default=["fp32", "bf16", "cl", "bf16+cl", "bf16+cl+compile"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--width", type=float, default=None, help="width multiplier of our models (timm: 1.0)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-timm", action="store_true", help="only our models")
    parser.add_argument("--dry-run", action="store_true", help="tiny, one step: check the code paths")
    parser.add_argument("--json", default=None, help="also write the rows and the environment to this file")
    args = parser.parse_args(argv)
    for variant in args.variants:
        parse_variant(variant)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.dry_run:
        args.width, args.input_size, args.batch_size = 0.25, 75, 2
        args.steps, args.rounds, args.warmup, args.no_timm = 1, 1, 1, True
    if torch.device(args.device).type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = run(args)
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment(args),
                                               "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
