"""Benchmark harness: our networks against timm's, side by side in one process, inference and training.

A *workload* fixes what is measured (network, inference or training, batch, input size, device, autocast
dtype, steps); a *candidate* fixes how one model runs it (our model or timm's, optimised or not,
channels_last, ``torch.compile`` mode and inductor options, TorchScript freezing, ONNX Runtime, a CUDA
graph). Candidates are written as specs such as ``timm+cl+compile`` or ``ours+opt+cl+compile=max-autotune``
(see :func:`parse_candidate`).

:func:`run_workload` builds and warms up every candidate (compilation included, timed as ``setup_s``), then
times them in interleaved rounds (the order rotates each round) so that drifts of the machine hit all of
them alike, and reports medians over the rounds: images per second, milliseconds per batch, achieved
TFLOP/s (2 FLOPs per MAC, a training step counted as 3 forward passes), model FLOP utilisation against a
given peak, peak memory on a GPU, the ratio against the baseline (timm's first candidate unless told
otherwise) and, for inference, the largest difference of each candidate's output from our eager fp32
model's on the same input (timm gets our weights when its layout is ours, so the outputs are comparable).
GPU timing uses CUDA events; CPU timing ``time.perf_counter``. Every candidate is isolated: an error
(out of memory, a failed compile) is recorded in its row and the others still run.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..weights.factory import create_model
from .prepare import (
    Prepared,
    example_input,
    prepare,
)
from .spec import (
    Candidate,
    Workload,
    forward_gflops,
    parse_candidate,
)

# -- timing -----------------------------------------------------------------------------------------------


def time_steps(step: Callable[[], None], steps: int, device: str) -> float:
    """Seconds per call of ``step`` over ``steps`` calls (CUDA events on a GPU, perf_counter elsewhere)."""
    if torch.device(device).type == "cuda":
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        begin.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3 / steps
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


@contextlib.contextmanager
def _peak_memory(device: str, record: list[int]) -> Iterator[None]:
    """Appends the memory allocated above the starting level at the peak of the block (CUDA only)."""
    if torch.device(device).type != "cuda":
        yield
        return
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield
    torch.cuda.synchronize(device)
    record.append(torch.cuda.max_memory_allocated(device) - base)


@dataclass
class Result:
    """One row: a candidate's measurements on a workload (times are medians over the rounds)."""

    workload: str
    model: str
    mode: str
    batch_size: int
    input_size: int
    device: str
    amp: str | None
    candidate: str
    library: str
    precision: str = "fp32"
    img_s: float | None = None
    ms_per_batch: float | None = None
    ms_min: float | None = None
    ms_max: float | None = None
    rounds: int = 0
    tflops: float | None = None
    mfu: float | None = None
    peak_mem_gib: float | None = None
    setup_s: float | None = None
    ratio: float | None = None
    baseline: str | None = None
    max_abs_diff: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _row(workload: Workload, candidate: Candidate) -> Result:
    return Result(
        workload.key,
        workload.model,
        workload.mode,
        workload.batch_size,
        workload.input_size,
        workload.device,
        workload.amp,
        candidate.spec,
        candidate.library,
        candidate.precision or workload.amp or "fp32",
    )


COMPARED_SAMPLES = 8  # outputs compared with the reference: the first images of the batch (eval is per image)


def _reference_output(workload: Workload) -> tuple[nn.Module, torch.Tensor | None]:
    """Our plain model (timm borrows its weights) and its eager fp32 output on the first images."""
    torch.manual_seed(0)
    reference = create_model(workload.model, **dict(workload.model_options)).eval()
    if workload.mode != "infer":
        return reference, None
    x = example_input(workload, reference.in_chans)[:COMPARED_SAMPLES]
    with torch.inference_mode():
        out = reference.to(workload.device)(x).float().cpu()
    reference.cpu()
    return reference, out


def run_workload(
    workload: Workload,
    candidates: list[Candidate],
    *,
    baseline: str | None = None,
    deadline: float | None = None,
    compile_estimate_s: float = 0.0,
    log: Callable[[str], None] = lambda _m: None,
    peaks: dict[str, float] | None = None,
) -> list[Result]:
    """Prepare every candidate, time them in interleaved rounds, and return one :class:`Result` each.

    ``peaks``: TFLOP/s limits by compute precision (``fp32``, ``bf16``, ``int8``; e.g. a measured GEMM peak);
    a row's ``mfu`` is then taken against the limit of its own precision instead of ``workload.peak_tflops``.

    ``baseline``: the spec the ratios are taken against (default: the first timm candidate, else the first).
    ``deadline`` (a ``time.monotonic()`` value): a candidate is skipped when it would not be ready by then
    (a compiled one is expected to take as long as the slowest compiled one so far, at first
    ``compile_estimate_s``), and rounds stop early (at least one round runs for every prepared candidate).
    """
    if torch.device(workload.device).type == "cuda":
        torch.backends.cudnn.benchmark = True
    options = dict(workload.model_options)
    gflops = forward_gflops(workload.model, workload.input_size, **options)
    gflops *= 3 if workload.mode == "train" else 1
    reference, expected = _reference_output(workload)
    rows = [_row(workload, c) for c in candidates]
    prepared: list[tuple[int, Prepared]] = []
    for index, candidate in enumerate(candidates):
        row = rows[index]
        compiles = candidate.compile is not None or candidate.precision == "int8"
        expected_s = compile_estimate_s if compiles else 0.0
        if deadline is not None and time.monotonic() + expected_s > deadline:
            row.error = f"skipped: time budget (setup expected to take {expected_s:.0f} s)"
            log(f"skip {workload.key} {candidate.spec}: {row.error}")
            continue
        log(f"prepare {workload.key} {candidate.spec}")
        try:
            ready = prepare(candidate, workload, reference)
        except Exception as err:  # noqa: BLE001 - one failing candidate must not stop the others
            row.error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
            log(f"  failed: {row.error}")
            _release(workload.device)
            continue
        row.setup_s = round(ready.setup_s, 2)
        if ready.note:
            row.extra["plan"] = ready.note
        if compiles:
            compile_estimate_s = max(compile_estimate_s, ready.setup_s)
        prepared.append((index, ready))
    for index, ready in prepared:  # once more after all are built: building one may drop another's compiled code
        try:
            ready.step()
        except Exception as err:  # noqa: BLE001
            rows[index].error = f"{type(err).__name__}: {err}"[:300]
    times: dict[int, list[float]] = {i: [] for i, _ in prepared}
    memory: dict[int, list[int]] = {i: [] for i, _ in prepared}
    for r in range(workload.rounds):
        if r > 0 and deadline is not None and time.monotonic() > deadline:
            break
        shift = r % len(prepared) if prepared else 0
        for index, ready in prepared[shift:] + prepared[:shift]:
            if rows[index].error:
                continue
            try:
                with _peak_memory(workload.device, memory[index]):
                    times[index].append(time_steps(ready.step, workload.steps, workload.device))
            except Exception as err:  # noqa: BLE001
                rows[index].error = f"{type(err).__name__}: {err}"[:300]
    for index, ready in prepared:
        peak = (peaks or {}).get(rows[index].precision, workload.peak_tflops)
        _fill(rows[index], times[index], memory[index], ready.resident_bytes, workload, gflops, peak)
        if expected is not None and ready.comparable and times[index]:
            rows[index].max_abs_diff = _max_abs_diff(ready.output(), expected)
        ready.cleanup()
    results = rows
    _ratios(results, baseline)
    del prepared
    _release(workload.device)
    return results


def _round_sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}")


def _max_abs_diff(out: torch.Tensor | None, expected: torch.Tensor) -> float | None:
    if not isinstance(out, torch.Tensor):
        return None
    return float((out.detach()[:COMPARED_SAMPLES].float().cpu() - expected).abs().max())


def _fill(
    row: Result,
    seconds: list[float],
    peaks: list[int],
    resident: int,
    workload: Workload,
    gflops: float,
    peak_tflops: float | None,
) -> None:
    if not seconds:
        return
    median = statistics.median(seconds)
    row.rounds = len(seconds)
    row.ms_per_batch = round(median * 1e3, 3)
    row.ms_min, row.ms_max = round(min(seconds) * 1e3, 3), round(max(seconds) * 1e3, 3)
    row.img_s = round(workload.batch_size / median, 2)
    row.tflops = _round_sig(row.img_s * gflops / 1e3)
    if peak_tflops:
        row.mfu = _round_sig(row.tflops / peak_tflops)
    if peaks:
        row.peak_mem_gib = round((max(peaks) + max(resident, 0)) / 2**30, 3)


def _ratios(results: list[Result], baseline: str | None) -> None:
    timed = [r for r in results if r.img_s]
    if baseline is None:
        timm_rows = [r for r in timed if r.library == "timm"]
        base = timm_rows[0] if timm_rows else (timed[0] if timed else None)
    else:
        base = next((r for r in timed if r.candidate == baseline), None)
    if base is None:
        return
    for r in timed:
        r.baseline = base.candidate
        r.ratio = round(r.img_s / base.img_s, 3)


def _release(device: str) -> None:
    import gc

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    torch._dynamo.reset()


# -- the simple entry points ------------------------------------------------------------------------------


def benchmark_inference(name: str, candidate: str | Candidate = "ours", **workload: Any) -> Result:
    """Time one model's inference, e.g. ``benchmark_inference("inception_v4", "ours+opt+cl", batch_size=16)``."""
    cand = parse_candidate(candidate) if isinstance(candidate, str) else candidate
    return run_workload(Workload(name, "infer", **workload), [cand])[0]


def compare_with_timm(name: str, candidates: list[str] | None = None, **workload: Any) -> list[Result]:
    """Our model against timm's with the same settings, interleaved; default: eager, plain and optimised."""
    specs = candidates or ["timm", "ours", "ours+opt"]
    return run_workload(Workload(name, **workload), [parse_candidate(s) for s in specs])
