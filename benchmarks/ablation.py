"""Which of ``optimize_for_inference``'s rewrites pay on the CPU: each one switched off in turn, same run.

Variants (all fp32, channels_last input, our model with the same weights), timed in interleaved rounds whose
order alternates, medians reported, and checked against the plain model's output:

* ``onednn``: ``optimize_for_inference(model, onednn=True)``, the default CPU path;
* ``onednn+merge``: the same with the 1x1 heads merged (``fuse=True``), the default before it measured slower;
* ``onednn-pools``: without pooling branches that project first (``project_pools=False``);
* ``cl`` and ``cl-pools``: ``optimize_for_inference(model, channels_last=True)`` with and without them.

    python benchmarks/ablation.py --model inception_v4 --batch-size 16 --threads 2 --out docs/results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.environment import (
    environment,  # noqa: E402
    environment_lines,  # noqa: E402
)
from inception_resnet.inference import optimize_for_inference  # noqa: E402

VARIANTS: dict[str, dict[str, bool]] = {
    "onednn": {"onednn": True},
    "onednn+merge": {"onednn": True, "fuse": True},
    "onednn-pools": {"onednn": True, "project_pools": False},
    "cl": {"channels_last": True},
    "cl-pools": {"channels_last": True, "project_pools": False},
}


def time_variants(models: dict[str, Callable], x: torch.Tensor, rounds: int) -> dict[str, list[float]]:
    """Milliseconds of one forward pass of each model, ``rounds`` times, in alternating order."""
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():
            model(x)
        for index in range(rounds):
            order = list(models.items()) if index % 2 == 0 else list(models.items())[::-1]
            for name, model in order:
                start = time.perf_counter()
                model(x)
                times[name].append(1e3 * (time.perf_counter() - start))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="inception_v4")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=None, help="write ablation-<model>-b<batch>-<date>.{json,md} here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    plain = create_model(args.model).eval()
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size)
    with torch.no_grad():
        expected = plain(x[:2])
    x = x.contiguous(memory_format=torch.channels_last)
    models = {name: optimize_for_inference(plain, **VARIANTS[name]) for name in args.variants}
    with torch.no_grad():
        diffs = {name: float((m(x[:2]) - expected).abs().max()) for name, m in models.items()}
    times = time_variants(models, x, args.rounds)
    base = statistics.median(times[args.variants[0]])
    env = environment()
    lines = [
        f"# Ablation of optimize_for_inference: {args.model}, batch {args.batch_size}, {args.input_size}px, CPU",
        "",
        *environment_lines(env),
        f"- median of {args.rounds} interleaved rounds (order alternating)",
        "",
        f"| variant | ms/batch (median) | min-max | x {args.variants[0]} | max abs diff |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append(
            {"variant": name, "options": VARIANTS[name], "ms": values, "median_ms": median, "max_abs_diff": diffs[name]}
        )
        lines.append(
            f"| `{name}` | {median:,.0f} | {min(values):,.0f}-{max(values):,.0f} | "
            f"{base / median:.2f}x | {diffs[name]:.1e} |"
        )
    publish(lines, args.out, f"ablation-{args.model}-b{args.batch_size}", {"environment": env, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
