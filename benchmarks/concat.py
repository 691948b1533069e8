"""Does writing branch outputs straight into the concatenated block output pay? Measured, on the CPU.

Issue 7 asks to write each branch's output into its slice of the block output where that avoids a copy.
In eager PyTorch a convolution cannot write into a slice of another tensor (``conv2d`` has no ``out=``, and
oneDNN's in-place variant accumulates into it, which costs the same memory traffic as the copy), so the
eager choice is between ``torch.cat`` and copying each branch into a preallocated output. Under
``torch.compile``, inductor already makes the kernel that ends each branch (a ReLU, a pooling) write into
its slice of the output (a ``reinterpret_tensor`` alias of the output buffer) and no concatenation runs.

This script measures the three facts that decide it:

1. every concatenation of Inception-v4 and Inception-ResNet-v2 at the given batch, channels_last as our CPU
   path runs them: ``torch.cat`` against copying into a preallocated output (interleaved rounds, medians);
2. the share of a forward pass of the oneDNN path (``optimize_for_inference(onednn=True)``) spent in
   ``aten::cat`` (torch profiler);
3. the code inductor generates for one Inception-A block (our model, channels_last): whether it holds a
   concatenation or aliases into the output.

    python benchmarks/concat.py --batch-size 16 --threads 2 --out docs/results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.bench import write_results  # noqa: E402
from inception_resnet.environment import (
    environment,  # noqa: E402
    environment_lines,  # noqa: E402
)
from inception_resnet.inference import optimize_for_inference  # noqa: E402

MODELS = ("inception_v4", "inception_resnet_v2")


def concatenation_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[list[torch.Tensor]]:
    """The branch outputs of every channel concatenation in one forward pass of ``model``."""
    seen: list[list[torch.Tensor]] = []
    original = torch.cat

    def spy(tensors, dim=0, **kwargs):  # noqa: ANN001, ANN202 - torch.cat's signature
        if dim == 1 and len(tensors) > 1 and tensors[0].dim() == 4:
            seen.append([t.clone(memory_format=torch.preserve_format) for t in tensors])
        return original(tensors, dim, **kwargs)

    torch.cat = spy
    try:
        with torch.no_grad():
            model(x)
    finally:
        torch.cat = original
    return seen


def copy_into_output(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The eager stand-in for writing into the output: one channels_last buffer, one copy per branch."""
    first = tensors[0]
    out = torch.empty(
        (first.shape[0], sum(t.shape[1] for t in tensors), *first.shape[2:]),
        dtype=first.dtype,
        memory_format=torch.channels_last,
    )
    start = 0
    for t in tensors:
        out[:, start : start + t.shape[1]].copy_(t)
        start += t.shape[1]
    return out


def time_concatenations(groups: list[list[torch.Tensor]], rounds: int) -> dict[str, float]:
    """Median milliseconds over ``rounds`` for all of a network's concatenations, each way (interleaved)."""
    ways = {"torch.cat": lambda ts: torch.cat(ts, 1), "copy into output": copy_into_output}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm-up: the allocator's first large blocks
        for tensors in groups:
            way(tensors)
    for index in range(rounds):
        order = list(ways.items()) if index % 2 == 0 else list(ways.items())[::-1]
        for name, way in order:
            start = time.perf_counter()
            for tensors in groups:
                way(tensors)
            times[name].append(time.perf_counter() - start)
    for tensors in groups:
        assert torch.equal(copy_into_output(tensors), torch.cat(tensors, 1))
    return {name: 1e3 * statistics.median(values) for name, values in times.items()}


def cat_share(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Milliseconds per forward pass in total and in ``aten::cat`` (self CPU time, two profiled passes)."""
    with torch.no_grad():
        model(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model(x)
            model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 2e3
    cat = sum(e.self_cpu_time_total for e in events if e.key == "aten::cat") / 2e3
    return {"forward_ms": total, "cat_ms": cat, "cat_percent": 100 * cat / total}


def inductor_block_code() -> dict[str, object]:
    """Compile our Inception-v4's first Inception-A block (channels_last, CPU) and inspect the code."""
    from torch._inductor.utils import run_and_get_code

    model = create_model("inception_v4").eval()
    block = next(m for name, m in model.features.named_children() if name == "6")  # first Inception-A
    block = block.to(memory_format=torch.channels_last)
    x = torch.randn(2, block.in_channels, 35, 35).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    with torch.no_grad():
        _, codes = run_and_get_code(torch.compile(block), x)
    code = "\n".join(codes)
    return {
        "block": type(block).__name__,
        "aten_cat_calls": code.count("aten.cat"),
        "aliases_into_output": sum("# alias" in line for line in code.splitlines()),
        "convolutions": code.count("extern_kernels.convolution") + code.count("mkldnn._convolution"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-inductor", action="store_true", help="skip the compiled-block check")
    parser.add_argument("--out", default=None, help="write concat-<date>.json and .md into this folder")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size).contiguous(memory_format=torch.channels_last)
    rows = []
    for name in MODELS:
        model = optimize_for_inference(create_model(name).eval(), onednn=True)
        groups = concatenation_inputs(model, x)
        times = time_concatenations(groups, args.rounds)
        share = cat_share(model, x)
        rows.append({"model": name, "concatenations": len(groups), **times, **share})
        del model, groups
    inductor = None if args.no_inductor else inductor_block_code()
    env = environment()
    lines = [
        "# Concatenation on the CPU: torch.cat, copies into the output, and inductor",
        "",
        *environment_lines(env),
        f"- batch {args.batch_size}, {args.input_size}x{args.input_size}, channels_last, oneDNN path, "
        f"median of {args.rounds} interleaved rounds",
        "",
        "| network | concatenations | torch.cat ms | copy into output ms | forward ms | aten::cat ms | % of forward |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['concatenations']} | {r['torch.cat']:.1f} | {r['copy into output']:.1f} "
            f"| {r['forward_ms']:.0f} | {r['cat_ms']:.1f} | {r['cat_percent']:.1f} |"
        )
    if inductor is not None:
        lines += [
            "",
            f"inductor, one compiled {inductor['block']} block (CPU, channels_last): "
            f"{inductor['aten_cat_calls']} `aten.cat` calls, {inductor['aliases_into_output']} branch "
            f"buffers aliased into the output, {inductor['convolutions']} convolutions.",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_results(
            args.out,
            f"concat-cpu-{time.strftime('%Y-%m-%d')}",
            text,
            {"environment": env, "rows": rows, "inductor": inductor},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
