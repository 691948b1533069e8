"""Benchmark suites: our networks against timm's on the CPU or on one GPU, JSON and markdown out.

    python benchmarks/bench_models.py --suite cpu --out docs/results          # 2-core CPU, fp32
    python benchmarks/bench_models.py --suite precision --threads 2 --out docs/results  # fp32/bf16/int8 vs peers
    python benchmarks/bench_models.py --suite deploy --threads 2 --out docs/results     # our best path vs plain exports
    python benchmarks/bench_models.py --suite gpu --out "$OUT"                # one H200 (gpu_suite.sh)
    python benchmarks/bench_models.py --suite gpu --dry-run                   # the same code paths, tiny, CPU
    python benchmarks/bench_models.py --suite train --device cpu --out docs/results   # training, every model
    python benchmarks/bench_models.py --suite train --device cuda --out "$OUT"         # the same on one GPU

Each suite is a list of stages; a stage is one workload and the candidates timed against each other on it
(interleaved rounds, medians; see ``inception_resnet.bench``), most important candidate first. ``--budget-s``
bounds the whole run: a stage gets a share of what is left, a candidate whose compilation would not fit is
skipped (and marked so), and the results files are rewritten after every stage, so a run stopped from
outside still leaves everything measured so far. ``--dry-run`` runs every stage on the CPU with our models at
a quarter width, 75-pixel inputs, one step and one round, and ``torch.compile`` on its ``eager`` backend
(CUDA graphs and inductor options dropped): it checks the code paths in a minute or two, not the speed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script from a checkout: use the package in src/ unless installed
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "src"))

from inception_resnet.bench import (  # noqa: E402
    H200_BF16_TFLOPS,
    Candidate,
    Result,
    Workload,
    document,
    markdown_document,
    parse_candidate,
    run_workload,
    to_markdown,
    write_results,
)
from inception_resnet.bench.peak import gemm_peaks  # noqa: E402
from inception_resnet.environment import environment, environment_lines  # noqa: E402
from inception_resnet.markdown import table  # noqa: E402


@dataclass(frozen=True)
class Stage:
    """One workload, its candidates (most important first), and its share of the time budget."""

    workload: Workload
    candidates: tuple[str, ...]
    share: float = 1.0
    compile_estimate_s: float = 60.0


def cpu_suite(models: list[str]) -> list[Stage]:
    """fp32 inference on the CPU at batch 1 (latency) and batch 16 (throughput), against timm eager."""
    specs = ("timm", "timm+cl", "ours", "ours+cl", "ours+opt", "ours+opt+cl", "ours+opt+onednn", "ours+ort", "timm+ort")
    stages = []
    for model in models:
        stages.append(Stage(Workload(model, "infer", 1, steps=3, warmup=2, rounds=7), specs))
        stages.append(Stage(Workload(model, "infer", 16, steps=1, warmup=1, rounds=5), specs))
    return stages


# Ours in each precision (the library's default path, then its torch.compile path) and the peers: timm eager
# (the baseline), ONNX Runtime and OpenVINO on the ONNX export of our optimised model, OpenVINO in bf16 and
# NNCF's int8. Ours first within each precision, so that a short budget still times the main rows.
PRECISION_SPECS = (
    "timm",
    "ours+fp32",
    "ours+fp32+compile",
    "ours+opt+ort",
    "ours+opt+ov",
    "ours+bf16",
    "ours+bf16+compile",
    "ours+opt+ov+bf16",
    "ours+int8",
    "ours+opt+ov+int8",
)
PEERS = {"fp32": "ours+opt+ov", "bf16": "ours+opt+ov+bf16", "int8": "ours+opt+ov+int8"}


def precision_suite(models: list[str]) -> list[Stage]:
    """CPU inference in fp32, bf16 and int8 at batch 1 and 16: ours against timm eager, ONNX Runtime and
    OpenVINO (fp32, bf16, NNCF int8), all interleaved within a stage."""
    stages = []
    for model in models:
        stages.append(
            Stage(Workload(model, "infer", 1, steps=3, warmup=2, rounds=7), PRECISION_SPECS, compile_estimate_s=90.0)
        )
        stages.append(
            Stage(
                Workload(model, "infer", 16, steps=1, warmup=1, rounds=5),
                PRECISION_SPECS,
                share=1.5,
                compile_estimate_s=90.0,
            )
        )
    return stages


def precision_summary(results: list[Result]) -> str:
    """Per workload and precision: our fastest path against OpenVINO's, the target (1.0x) met or missed."""
    header = [
        "workload",
        "precision",
        "ours (fastest path)",
        "ours img/s",
        "OpenVINO img/s",
        "ours / OpenVINO",
        "target 1.0x",
        "ours / timm eager",
        "% of GEMM peak",
    ]
    rows = []
    for key in dict.fromkeys(r.workload for r in results):
        timed = [r for r in results if r.workload == key and r.img_s]
        for precision, peer_spec in PEERS.items():
            ours = [
                r
                for r in timed
                if r.library == "ours"
                and r.precision == precision
                and parse_candidate(r.candidate).runtime == "torch"
                and "was asked for" not in r.extra.get("plan", "")
            ]
            peer = next((r for r in timed if r.candidate == peer_spec), None)
            if not ours:
                continue
            best = max(ours, key=lambda r: r.img_s)
            ratio = best.img_s / peer.img_s if peer else None
            verdict = "" if ratio is None else "met" if ratio >= 1.0 else f"missed by {100 * (1 - ratio):.0f}%"
            rows.append(
                [
                    key,
                    precision,
                    f"`{best.candidate}`",
                    f"{best.img_s:.1f}",
                    f"{peer.img_s:.1f}" if peer else "",
                    f"{ratio:.2f}x" if ratio else "",
                    verdict,
                    f"{best.ratio:.2f}x" if best.ratio else "",
                    f"{100 * best.mfu:.0f}%" if best.mfu else "",
                ]
            )
    return table(header, rows)


# Our paths in each precision (the backend auto chooses, then each backend) against what a user deploying without
# us would run: OpenVINO and ONNX Runtime on the plain ONNX export of timm's network or of our unoptimised one.
DEPLOY_SPECS = (
    "timm",
    *(f"ours+{p}{e}" for p in ("fp32", "bf16", "int8") for e in ("+auto", "", "+openvino")),
    "timm+ov",
    "ours+ov",
    "timm+ort",
    "ours+ort",
    "timm+ov+bf16",
    "ours+ov+bf16",
    "timm+ov+int8",
    "ours+ov+int8",
)


def deploy_suite(models: list[str]) -> list[Stage]:
    """CPU inference in fp32, bf16 and int8 at batch 1 and 16: our best path against the plain exports run by
    OpenVINO and ONNX Runtime, all interleaved within a stage."""
    return [replace(stage, candidates=DEPLOY_SPECS, compile_estimate_s=120.0) for stage in precision_suite(models)]


def deploy_summary(results: list[Result]) -> str:
    """Per workload and precision: our fastest path against the fastest plain-export peer; target 1.05x."""
    header = [
        "workload",
        "precision",
        "ours (fastest)",
        "ours img/s",
        "peer (fastest plain export)",
        "peer img/s",
        "ours / peer",
        "target 1.05x",
        "auto chose",
    ]
    rows = []
    for key in dict.fromkeys(r.workload for r in results):
        timed = [r for r in results if r.workload == key and r.img_s and "was asked for" not in r.extra.get("plan", "")]
        for precision in ("fp32", "bf16", "int8"):
            ours = [
                r
                for r in timed
                if r.precision == precision
                and parse_candidate(r.candidate).runtime == "torch"
                and r.library == "ours"
                and parse_candidate(r.candidate).precision is not None
            ]
            peers = [
                r
                for r in timed
                if r.precision == precision
                and parse_candidate(r.candidate).runtime != "torch"
                and not parse_candidate(r.candidate).optimize
            ]
            if not ours or not peers:
                continue
            best, peer = max(ours, key=lambda r: r.img_s), max(peers, key=lambda r: r.img_s)
            ratio = best.img_s / peer.img_s
            auto = next((r.extra.get("plan", "") for r in ours if r.candidate.endswith("+auto")), "")
            rows.append(
                [
                    key,
                    precision,
                    f"`{best.candidate}`",
                    f"{best.img_s:.1f}",
                    f"`{peer.candidate}`",
                    f"{peer.img_s:.1f}",
                    f"{ratio:.2f}x",
                    "met" if ratio >= 1.05 else f"missed by {100 * (1 - ratio / 1.05):.0f}%",
                    auto.partition("(auto: ")[2].rstrip(")"),
                ]
            )
    return table(header, rows)


def gpu_suite(models: list[str], extended: bool = False) -> list[Stage]:
    """bf16 channels_last on one GPU: compiled inference at batch 256 and training at batch 128, against timm."""
    infer = {
        "mode": "infer",
        "batch_size": 256,
        "device": "cuda",
        "amp": "bf16",
        "steps": 20,
        "warmup": 3,
        "rounds": 5,
        "peak_tflops": H200_BF16_TFLOPS,
    }
    train = {**infer, "mode": "train", "batch_size": 128, "steps": 10}
    stages = []
    for model in models:
        specs = ["timm+cl+compile", "ours+opt+cl+compile", "ours+opt+cl+compile+conv_1x1_as_mm", "ours+cl+compile"]
        if extended:
            specs += ["ours+opt+cl+compile+freezing", "ours+opt+cl+compile=max-autotune-no-cudagraphs"]
        stages.append(Stage(Workload(model, **infer), tuple(specs), share=1.0, compile_estimate_s=60.0))
    for model in models[:1] if not extended else models:
        specs = ["timm+cl+compile", "ours+opt+cl+compile", "ours+cl+compile"]
        stages.append(Stage(Workload(model, **train), tuple(specs), share=1.3, compile_estimate_s=120.0))
    eager = ("timm+cl", "ours+cl", "ours+opt+cl", "ours+opt+cl+graph")
    stages.append(Stage(Workload(models[0], **infer), eager, share=0.3, compile_estimate_s=0.0))
    if extended:
        small = {**infer, "batch_size": 8, "steps": 50}
        graphs = ("timm+cl+compile", "ours+opt+cl+compile", "ours+opt+cl+compile=reduce-overhead", "ours+opt+cl+graph")
        stages.append(Stage(Workload(models[0], **small), graphs, share=0.6, compile_estimate_s=60.0))
    return stages


TIMM_MODELS = ("inception_v3", "inception_v4", "inception_resnet_v2")  # the networks timm has, in our layout


def train_suite(models: list[str], device: str = "cpu") -> list[Stage]:
    """The trainer's step (paper recipe) for every model, fp32 and bf16, with and without channels_last
    (and, on a GPU, torch.compile), ours against timm's where timm has the network."""
    if device == "cpu":
        common = {"batch_size": 4, "steps": 1, "warmup": 1, "rounds": 3}
        variants = {None: ("timm", "ours", "timm+cl", "ours+cl"), "bf16": ("timm+cl", "ours+cl")}
    else:
        common = {"batch_size": 128, "steps": 10, "warmup": 3, "rounds": 3, "peak_tflops": H200_BF16_TFLOPS}
        variants = {
            None: ("timm+cl", "ours+cl"),
            "bf16": ("timm+cl", "ours+cl", "timm+cl+compile", "ours+cl+compile", "ours+opt+cl+compile"),
        }
    stages = []
    for model in models:
        for amp, specs in variants.items():
            kept = tuple(s for s in specs if model in TIMM_MODELS or not s.startswith("timm"))
            compiled = any("compile" in s for s in kept)
            stages.append(
                Stage(
                    Workload(model, "train", device=device, amp=amp, **common),
                    kept,
                    compile_estimate_s=120.0 if compiled else 0.0,
                )
            )
    return stages


SUITES = {
    "cpu": cpu_suite,
    "gpu": gpu_suite,
    "train": train_suite,
    "precision": precision_suite,
    "deploy": deploy_suite,
}
DEFAULT_MODELS = {
    "cpu": ["inception_v4", "inception_resnet_v2"],
    "gpu": ["inception_v4", "inception_resnet_v2"],
    "precision": ["inception_v4", "inception_resnet_v2"],
    "deploy": ["inception_v4", "inception_resnet_v2"],
    "train": ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2"],
}


def dry_run_stage(stage: Stage) -> Stage:
    """The same stage, tiny and on the CPU: our models at quarter width, 75 px, one step, one round."""
    workload = replace(
        stage.workload,
        device="cpu",
        batch_size=2,
        input_size=75,
        steps=1,
        warmup=1,
        rounds=1,
        model_options=(("width_multiplier", 0.25), ("num_classes", 10)),
    )
    return replace(stage, workload=workload, candidates=tuple(dry_run_candidate(c) for c in stage.candidates))


def dry_run_candidate(spec: str) -> str:
    candidate = parse_candidate(spec)
    if candidate.compile is not None and candidate.precision is None:  # dynamo only: traces, compiles nothing
        candidate = replace(candidate, compile="default", backend="eager")
    return replace(candidate, cuda_graph=False).spec


def run_suite(
    stages: list[Stage],
    budget_s: float,
    write: Callable[[list[Result]], None],
    log: Callable[[str], None],
    peaks: dict[str, float] | None = None,
) -> list[Result]:
    """Run the stages in order within ``budget_s`` seconds, calling ``write(results)`` after each."""
    start = time.monotonic()
    end = start + budget_s
    results: list[Result] = []
    for index, stage in enumerate(stages):
        now = time.monotonic()
        shares_left = sum(s.share for s in stages[index:])
        deadline = min(end, now + (end - now) * stage.share / shares_left)
        candidates: list[Candidate] = [parse_candidate(spec) for spec in stage.candidates]
        log(f"stage {index + 1}/{len(stages)}: {stage.workload.key}, {deadline - now:.0f} s")
        results += run_workload(
            stage.workload,
            candidates,
            deadline=deadline,
            compile_estimate_s=stage.compile_estimate_s,
            log=log,
            peaks=peaks,
        )
        write(results)
    log(f"suite done in {time.monotonic() - start:.0f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), required=True)
    parser.add_argument("--models", nargs="+", default=None, help="default: inception_v4 inception_resnet_v2")
    parser.add_argument("--out", default="docs/results", help="folder for <name>.json and <name>.md")
    parser.add_argument("--name", default=None, help="file name stem (default: <suite>-<date>, or dry-run-<suite>)")
    parser.add_argument(
        "--budget-s", type=float, default=None, help="seconds (default: 480 gpu, 540 train on cuda, else 1800)"
    )
    parser.add_argument("--extended", action="store_true", help="gpu: also freezing, max-autotune, batch 8")
    parser.add_argument("--dry-run", action="store_true", help="tiny CPU run of the same code paths")
    parser.add_argument("--device", default=None, help="train suite: cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="replace every stage's candidates (specs as in inception_resnet.bench)",
    )
    parser.add_argument("--note", default=None, help="a remark for the results files (e.g. the machine's load)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # backend="auto" measures its choice within this run, not from what an earlier run remembered
    os.environ["INCEPTION_RESNET_CACHE"] = tempfile.mkdtemp(prefix="bench-backends-")
    models = args.models or DEFAULT_MODELS[args.suite]
    if args.suite == "gpu":
        stages = gpu_suite(models, args.extended)
    elif args.suite == "train":
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        stages = train_suite(models, "cpu" if args.dry_run else device)
    elif args.suite in ("precision", "deploy"):
        stages = SUITES[args.suite](models)
    else:
        stages = cpu_suite(models)
    if args.candidates:
        stages = [replace(s, candidates=tuple(args.candidates)) for s in stages]
    if args.dry_run:
        stages = [dry_run_stage(s) for s in stages]
    elif any(s.workload.device == "cuda" for s in stages) and not torch.cuda.is_available():
        print(f"bench_models.py: --suite {args.suite} on cuda needs a CUDA device (or --dry-run)", file=sys.stderr)
        return 2
    on_gpu = any(s.workload.device == "cuda" for s in stages)
    budget = args.budget_s or (
        480.0
        if args.suite == "gpu"
        else 540.0
        if on_gpu
        else 3600.0
        if args.suite in ("precision", "deploy")
        else 1800.0
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suite = f"train-{'cuda' if on_gpu else 'cpu'}" if args.suite == "train" else args.suite
    stem = args.name or (f"dry-run-{suite}" if args.dry_run else f"{suite}-{time.strftime('%Y-%m-%d')}")
    env = environment()
    env["suite"] = args.suite + (" (dry run)" if args.dry_run else "")
    if args.note:
        env["note"] = args.note
    title = f"inception-resnet benchmark, {env['suite']} suite"

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    peaks = None
    if args.suite in ("precision", "deploy"):
        add_machine_limits(env, log)
        peaks = env["gemm_peak_tflops"]

    def render(results: list[Result]) -> str:
        if args.suite in ("precision", "deploy"):
            return precision_document(results, env, title, deploy=args.suite == "deploy")
        return markdown_document(results, env, title)

    def write(results: list[Result]) -> None:
        write_results(out, stem, render(results), document(results, env))

    results = run_suite(stages, budget, write, log, peaks)
    if args.suite in ("precision", "deploy"):
        add_machine_limits(env, log, again=True)
        write(results)
    print(render(results))
    print(f"wrote {out / stem}.json and .md", file=sys.stderr)
    failed = [r for r in results if r.error and not r.error.startswith("skipped")]
    return 1 if failed and args.dry_run else 0


def add_machine_limits(env: dict, log: Callable[[str], None], again: bool = False) -> None:
    """CPU flags, load average and the GEMM peaks into ``env`` (``again``: measured once more at the end; the
    limit is the higher of the two measurements)."""
    log("measuring the GEMM peaks" + (" again" if again else ""))
    measured = {k: round(v, 4) for k, v in gemm_peaks().items()}
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    if not again:
        env.update(gemm_peak_start=measured, gemm_peak_tflops=dict(measured), load_start=load)
        for module in ("openvino", "nncf", "torchao"):
            try:
                env[module] = __import__(module).__version__
            except ImportError:
                env[module] = None
        return
    env["gemm_peak_end"] = measured
    env["load_end"] = load
    peak = env["gemm_peak_tflops"]
    for key, value in measured.items():  # the same dict run_workload got: later rows use the higher limit too
        peak[key] = max(peak.get(key, 0.0), value)


def precision_document(results: list[Result], env: dict, title: str, deploy: bool = False) -> str:
    """The precision (or deploy) suite's results file: environment, the machine's limits, the rows, the targets."""

    def gflops(measurement: dict | None) -> str:
        parts = [f"{k} {1e3 * v:,.0f}" for k, v in (measurement or {}).items() if k in ("fp32", "bf16", "int8")]
        details = [f"{k} {1e3 * v:,.0f}" for k, v in (measurement or {}).items() if "_" in k]
        return ", ".join(parts) + (f" (of {', '.join(details)})" if details else "")

    limits = [
        "- GEMM peak (2048x2048 matrix product, GFLOP/s; int8: GOP/s), at the start: "
        + gflops(env.get("gemm_peak_start"))
        + (f"; at the end: {gflops(env.get('gemm_peak_end'))}" if env.get("gemm_peak_end") else ""),
        f"- Load average (1 / 5 / 15 min, `uptime`), at the start: {env.get('load_start')}"
        + (f"; at the end: {env.get('load_end')}" if env.get("load_end") else ""),
        "- Peers: " + ", ".join(f"{m} {env[m]}" for m in ("openvino", "nncf", "torchao") if env.get(m)),
    ]
    notes = [
        "MFU % = the row's GFLOP/s (2 FLOPs per multiply-add of the network, whatever the precision) as a share "
        "of the higher GEMM peak of its precision. `ours+P` is `optimize_for_inference(model, precision=P)` "
        "(int8: PT2E with the x86 quantizer, compiled), `ours+P+compile` the same with `compile=True`; OpenVINO "
        "and ONNX Runtime run the ONNX export of `optimize_for_inference(model)`; int8 candidates calibrate on "
        "the same 32 random images. Ratios are within one interleaved run.",
    ]
    if deploy:
        notes = [
            "`ours+P+auto` is `optimize_for_inference(model, precision=P, backend='auto')` (the backend it "
            "measured fastest at the start of this run), `ours+P+openvino` OpenVINO on our rewritten graph, "
            "`ours+P` the torch backend; peers run the plain ONNX export of timm's or our unoptimised network (`+ov`: "
            "OpenVINO, int8 by NNCF; `+ort`: ONNX Runtime, fp32 only). Ratios are within one interleaved run."
        ]
        summary = ["## Against the plain exports", "", *notes, "", deploy_summary(results), ""]
    else:
        summary = ["## Against OpenVINO", "", *notes, "", precision_summary(results), ""]
    return "\n".join([f"# {title}", "", *environment_lines(env), *limits, "", to_markdown(results), "", *summary])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
