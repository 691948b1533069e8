"""Where our compiled CPU models spend their time, per precision: the convolution kernels against the rest.

For each precision and batch size, ``optimize_for_inference(model, precision=P, compile=True)`` is built
(int8 calibrated on 32 random images, as in ``bench_models.py --suite precision``), warmed up, timed, and one
forward pass is recorded with ``torch.profiler``. The table splits the recorded CPU time into the oneDNN
convolution and linear calls (``mkldnn::_convolution_pointwise``, ``onednn::qconv_pointwise``,
``onednn::qlinear_pointwise`` and the like) and everything else (the compiled graph's own loops: quantize,
pooling, concatenation; the guards). ``conv ms`` set beside another engine's time for the whole network says
whether a gap lies in the convolution kernels or around them.

    python benchmarks/profile_precision.py --model inception_v4 --threads 2 --out docs/results
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.inference import optimize_for_inference  # noqa: E402

CALIBRATION_IMAGES = 32


def is_kernel(name: str) -> bool:
    """Whether a profiler event is a oneDNN convolution or linear call (fp32, bf16 or int8)."""
    return any(part in name for part in ("convolution", "qconv", "qlinear", "linear_pointwise", "mkldnn_linear"))


def profile_one(
    model: torch.nn.Module, precision: str, batch: int, size: int, calibration: torch.Tensor, repeats: int
) -> dict:
    fast = optimize_for_inference(
        model, precision=precision, compile=True, calibration=calibration if precision == "int8" else None
    )
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        fast(x)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fast(x)
        seconds.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as recorded:
        fast(x)
    events = recorded.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    kernels = sum(e.self_cpu_time_total for e in events if is_kernel(e.key)) / 1e3
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:4]
    return {
        "precision": precision,
        "batch": batch,
        "plan": str(fast.plan),
        "ms_best": 1e3 * min(seconds),
        "img_s": batch / min(seconds),
        "profiled_ms": total,
        "conv_ms": kernels,
        "top": [{"name": e.key, "ms": e.self_cpu_time_total / 1e3, "calls": e.count} for e in top],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="inception_v4")
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"], choices=["fp32", "bf16", "int8"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=None, help="write profile-precision-<model>-<date>.{json,md} here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    size = (CALIBRATION_IMAGES, 3, args.input_size, args.input_size)
    calibration = torch.randn(size, generator=torch.Generator().manual_seed(1))
    rows = [
        profile_one(model, p, b, args.input_size, calibration, args.repeats)
        for b in args.batch_sizes
        for p in args.precisions
    ]
    env = environment()
    lines = [
        f"# Where the time goes: {args.model}, {args.input_size}px, our compiled CPU models",
        "",
        *environment_lines(env),
        f"- Command: `python benchmarks/profile_precision.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        f"- img/s: best of {args.repeats} timed calls; the split: one call under `torch.profiler` (self CPU "
        "time summed over the threads' events as the profiler records them)",
        "",
        "| precision | batch | img/s | ms/batch | profiled ms | conv ms | conv % | the rest, largest first |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rest = ", ".join(f"{t['name']} {t['ms']:.1f} ms" for t in r["top"] if not is_kernel(t["name"]))
        lines.append(
            f"| {r['precision']} | {r['batch']} | {r['img_s']:.1f} | {r['ms_best']:.1f} | "
            f"{r['profiled_ms']:.1f} | {r['conv_ms']:.1f} | {100 * r['conv_ms'] / r['profiled_ms']:.0f}% | "
            f"{rest} |"
        )
    publish(lines, args.out, f"profile-precision-{args.model}", {"environment": env, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
