"""Which of our inference rewrites OpenVINO gains from: OpenVINO's CPU plugin on the plain network and on the
network after each rewrite in turn, timed in interleaved rounds within one process.

Each variant is converted by OpenVINO's PyTorch frontend (``openvino.convert_model``, as our ``openvino``
backend converts), reshaped to the batch, and compiled with the latency hint, torch's thread count and the
precision hint (``f32`` or ``bf16``). The variants: the plain network; BatchNorms and residual scales folded;
also the pooling branches projecting first; also the 1x1 convolutions that read one input merged (every
rewrite of :func:`~inception_resnet.inference.rewrites.rewrite_for_inference`). The median of the rounds,
in images per second and as a ratio to the plain network.

    python benchmarks/openvino_rewrites.py --threads 2 --out docs/results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet import create_model  # noqa: E402
from inception_resnet.bench import publish  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.inference.rewrites import rewrite_for_inference  # noqa: E402

VARIANTS = {
    "plain": None,
    "folded": dict(fuse=False, project_pools=False),
    "folded, pools project first": dict(fuse=False),
    "folded, pools project first, 1x1 merged": dict(fuse=True),
}


def compiled(network: torch.nn.Module, x: torch.Tensor, hint: str):
    """A function running ``network`` on ``x`` in OpenVINO's CPU plugin."""
    import openvino as ov

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(network, example_input=x[:1], input=[ov.PartialShape(list(x.shape))])
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
    request = ov.Core().compile_model(converted, "CPU", {**config, "INFERENCE_PRECISION_HINT": hint})
    request = request.create_infer_request()
    feed = {0: x.numpy()}
    return lambda: request.infer(feed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["inception_v4", "inception_resnet_v2"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--hints", nargs="+", default=["f32", "bf16"])
    parser.add_argument("--input-size", type=int, default=299)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=None, help="write openvino-rewrites-<date>.{json,md} here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        model = create_model(name).eval()
        networks = {k: model if v is None else rewrite_for_inference(model, **v) for k, v in VARIANTS.items()}
        for batch in args.batch_sizes:
            x = torch.randn(batch, 3, args.input_size, args.input_size, generator=torch.Generator().manual_seed(0))
            steps = max(1, 4 // batch)
            for hint in args.hints:
                runs = {k: compiled(network, x, hint) for k, network in networks.items()}
                times: dict[str, list[float]] = {k: [] for k in runs}
                for run in runs.values():
                    run()
                for _ in range(args.rounds):
                    for k, run in runs.items():
                        start = time.perf_counter()
                        for _ in range(steps):
                            run()
                        times[k].append((time.perf_counter() - start) / steps)
                median = {k: statistics.median(v) for k, v in times.items()}
                for k, seconds in median.items():
                    row = dict(model=name, batch=batch, hint=hint, variant=k, img_s=batch / seconds)
                    row["ratio"] = median["plain"] / seconds
                    rows.append(row)
                    print(f"{name} b{batch} {hint} {k}: {row['img_s']:.2f} img/s ({row['ratio']:.3f}x)", flush=True)
    env = environment()
    lines = [
        "# OpenVINO on our rewritten networks: each rewrite against the plain network",
        "",
        *environment_lines(env),
        f"- {args.input_size}x{args.input_size} inputs, {args.rounds} interleaved rounds per workload, medians; "
        "OpenVINO's PyTorch frontend, latency hint",
        "",
        "| network | batch | precision hint | variant | img/s | x plain |",
        "|---|---:|---|---|---:|---:|",
        *(
            f"| {r['model']} | {r['batch']} | {r['hint']} | {r['variant']} | {r['img_s']:.2f} | {r['ratio']:.3f}x |"
            for r in rows
        ),
    ]
    publish(lines, args.out, "openvino-rewrites", {"environment": env, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
