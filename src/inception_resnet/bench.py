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

import ast
import contextlib
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .complexity import count_macs
from .optim import build_optimizer, param_groups, scale_lr
from .optimize import fuse_branches, optimize_for_inference
from .registry import create_model
from .train import RECIPES, StepRunner, TrainingModule

H200_BF16_TFLOPS = 790.0  # measured dense bf16 matmul ceiling of one H200 (performance reference, section 2)
LIBRARIES = ("ours", "timm")
RUNTIMES = ("torch", "jit", "ort")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


# -- what is measured -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """How one model runs a workload; ``spec`` is its canonical text form (also its label)."""

    library: str = "ours"
    optimize: bool = False
    channels_last: bool = False
    runtime: str = "torch"
    compile: str | None = None
    backend: str = "inductor"
    inductor: tuple[tuple[str, Any], ...] = ()
    cuda_graph: bool = False
    onednn: bool = False

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            raise ValueError(f"library must be one of {LIBRARIES}, got {self.library!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {self.compile!r}")
        if self.compile is not None and self.runtime != "torch":
            raise ValueError("torch.compile applies to the torch runtime only")
        if self.optimize and self.library != "ours":
            raise ValueError("'opt' applies to our models only")
        if self.compile is None and (self.inductor or self.backend != "inductor"):
            raise ValueError("inductor options and backend=... need 'compile'")
        if self.onednn and not (self.optimize and self.runtime == "torch" and self.compile is None):
            raise ValueError("'onednn' packs an optimised eager model: use it with 'opt', without jit/ort/compile")
        if self.cuda_graph and (self.compile is not None or self.runtime != "torch"):
            raise ValueError("'graph' captures eager torch inference; compile=reduce-overhead graphs compiled code")

    @property
    def spec(self) -> str:
        parts = [self.library]
        parts += ["opt"] if self.optimize else []
        parts += ["cl"] if self.channels_last and not self.onednn else []  # onednn implies cl
        parts += ["onednn"] if self.onednn else []
        parts += [self.runtime] if self.runtime != "torch" else []
        if self.compile is not None:
            parts.append("compile" if self.compile == "default" else f"compile={self.compile}")
        parts += [f"backend={self.backend}"] if self.backend != "inductor" else []
        parts += [k if v is True else f"{k}={v}" for k, v in self.inductor]
        parts += ["graph"] if self.cuda_graph else []
        return "+".join(parts)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_candidate(spec: str) -> Candidate:
    """A candidate from its spec: ``LIBRARY[+TOKEN...]``.

    LIBRARY is ``ours`` or ``timm``; tokens:

    * ``opt``: ours only, :func:`~inception_resnet.optimize.optimize_for_inference` for inference,
      :func:`~inception_resnet.optimize.fuse_branches` for training;
    * ``cl``: channels_last model and input;
    * ``onednn``: with ``opt``, prepacked oneDNN convolutions (CPU, fp32; implies ``cl``);
    * ``jit``: TorchScript, frozen, ``torch.jit.optimize_for_inference``; ``ort``: ONNX Runtime (CPU);
    * ``compile`` or ``compile=MODE``, ``backend=NAME`` (a torch.compile backend);
    * ``graph``: a CUDA graph of eager inference;
    * any other ``NAME`` or ``NAME=VALUE``: a ``torch._inductor.config`` option (``freezing``,
      ``conv_1x1_as_mm``...).
    """
    library, *tokens = [t.strip() for t in spec.split("+")]
    fields: dict[str, Any] = {"library": library}
    inductor: list[tuple[str, Any]] = []
    for token in tokens:
        key, sep, value = token.partition("=")
        if token == "opt":
            fields["optimize"] = True
        elif token == "cl":
            fields["channels_last"] = True
        elif token == "onednn":
            fields["onednn"] = fields["channels_last"] = True
        elif token in ("jit", "ort"):
            fields["runtime"] = token
        elif token == "graph":
            fields["cuda_graph"] = True
        elif key == "compile":
            fields["compile"] = value if sep else "default"
        elif key == "backend" and sep:
            fields["backend"] = value
        elif key:
            inductor.append((key, _literal(value) if sep else True))
        else:
            raise ValueError(f"empty token in candidate spec {spec!r}")
    return Candidate(**fields, inductor=tuple(inductor))


@dataclass(frozen=True)
class Workload:
    """What is measured: one network, one mode and one batch shape on one device, timed in rounds."""

    model: str
    mode: str = "infer"
    batch_size: int = 1
    input_size: int = 299
    device: str = "cpu"
    amp: str | None = None
    steps: int = 5
    warmup: int = 2
    rounds: int = 5
    model_options: tuple[tuple[str, Any], ...] = ()
    peak_tflops: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("infer", "train"):
            raise ValueError(f"mode must be 'infer' or 'train', got {self.mode!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        if min(self.batch_size, self.steps, self.rounds) < 1 or self.warmup < 0:
            raise ValueError("batch_size, steps and rounds must be positive and warmup non-negative")

    @property
    def key(self) -> str:
        amp = self.amp or "fp32"
        return f"{self.model} {self.mode} {amp} b{self.batch_size} {self.input_size}px {self.device}"


# -- environment and cost ---------------------------------------------------------------------------------


def forward_gflops(model_name: str, input_size: int, **options: Any) -> float:
    """Forward GFLOP per image (2 FLOPs per conv/linear MAC), counted on the meta device."""
    with torch.device("meta"):
        model = create_model(model_name, **options)
    return 2 * count_macs(model, (model.in_chans, input_size, input_size)) / 1e9


# -- building candidates ----------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A candidate ready to time: ``step`` runs one batch; ``output`` is the last inference output."""

    candidate: Candidate
    step: Callable[[], None]
    output: Callable[[], torch.Tensor | None]
    resident: Callable[[], int] = lambda: 0
    cleanup: Callable[[], None] = lambda: None
    resident_bytes: int = 0
    setup_s: float = 0.0
    comparable: bool = True


def _autocast(workload: Workload, cache: bool = True) -> contextlib.AbstractContextManager:
    """Autocast to the workload's dtype; ``cache=False`` inside CUDA graph capture (cached casts would dangle)."""
    if workload.amp is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if workload.amp == "bf16" else torch.float16
    return torch.autocast(torch.device(workload.device).type, dtype=dtype, cache_enabled=cache)


def _build_model(candidate: Candidate, workload: Workload) -> nn.Module:
    options = dict(workload.model_options)
    if candidate.library == "timm":
        import timm

        timm_options = {k: v for k, v in options.items() if k in ("num_classes", "in_chans", "drop_rate")}
        timm_options.setdefault("drop_rate", 0.2)
        model = timm.create_model(workload.model, pretrained=False, **timm_options)
    else:
        model = create_model(workload.model, **options)
    return model


def _share_weights(model: nn.Module, reference: nn.Module) -> bool:
    """Load ``reference``'s weights into ``model`` when the layouts agree (ours and timm's v3, v4, IR-v2)."""
    try:
        model.load_state_dict(reference.state_dict())
    except (RuntimeError, KeyError):
        return False
    return True


def check_inductor_options(options: dict[str, Any]) -> None:
    """Raise a ValueError naming any key that is not a ``torch._inductor.config`` option."""
    import torch._inductor.config as config

    for key in options:
        target: Any = config
        for part in key.split("."):
            if not hasattr(target, part):
                raise ValueError(f"{key!r} is not a torch._inductor.config option")
            target = getattr(target, part)


def _compile(model: Callable, candidate: Candidate) -> Callable:
    check_inductor_options(dict(candidate.inductor))
    if candidate.backend != "inductor":  # e.g. "eager" for dry runs: inductor options are checked, then unused
        return torch.compile(model, backend=candidate.backend)
    import torch._inductor as inductor

    options = dict(inductor.list_mode_options(candidate.compile))
    options.update(dict(candidate.inductor))
    return torch.compile(model, options=options or None)


def _tensor_bytes(tensors: Iterator[torch.Tensor]) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if t.device.type != "meta" and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def _onnx_session(model: nn.Module, x: torch.Tensor) -> tuple[Callable[[], Any], Callable[[], None]]:
    import onnxruntime as ort

    folder = tempfile.TemporaryDirectory(prefix="ir-bench-")
    path = os.path.join(folder.name, "model.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on our input checks: constant for a fixed shape
        torch.onnx.export(model, (x,), path, dynamo=False, input_names=["input"], output_names=["logits"],
                          opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input": x.contiguous().numpy()}
    return (lambda: session.run(None, feed)[0]), folder.cleanup


def _prepare_inference(candidate: Candidate, workload: Workload, model: nn.Module, x: torch.Tensor) -> Prepared:
    device = torch.device(workload.device)
    model = model.eval()
    if candidate.optimize:
        model = optimize_for_inference(model.to(device), onednn=candidate.onednn)
    model = model.to(device)
    if candidate.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    result: list[Any] = [None]
    if candidate.runtime == "ort":
        if device.type != "cpu" or workload.amp is not None:
            raise ValueError("the ONNX Runtime candidate runs fp32 on the CPU only")
        run, cleanup = _onnx_session(model, x)

        def run_session() -> None:
            result[0] = run()

        return Prepared(candidate, run_session, lambda: torch.from_numpy(result[0]), cleanup=cleanup)
    runner: Callable = model
    if candidate.runtime == "jit":
        with torch.no_grad():
            runner = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model)))
    if candidate.compile is not None:
        runner = _compile(runner, candidate)
    grad_mode = torch.no_grad if candidate.compile is not None else torch.inference_mode

    def step() -> None:
        with grad_mode(), _autocast(workload, cache=not candidate.cuda_graph):
            result[0] = runner(x)

    if candidate.cuda_graph:
        step = _graphed(step, result, workload.warmup)
    def resident() -> int:
        return _tensor_bytes(model.parameters()) + _tensor_bytes(model.buffers())

    return Prepared(candidate, step, lambda: result[0], resident)


def _graphed(step: Callable[[], None], result: list[Any], warmup: int) -> Callable[[], None]:
    """Capture ``step`` (static input and output) in a CUDA graph and return its replay."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(max(warmup, 2)):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def _prepare_training(candidate: Candidate, workload: Workload, model: nn.Module, x: torch.Tensor) -> Prepared:
    """The trainer's own step under the paper's recipe (:data:`~inception_resnet.train.RECIPES` ``paper``).

    Through :class:`~inception_resnet.train.TrainingModule` and :class:`~inception_resnet.train.StepRunner`,
    exactly as ``inception-resnet train`` runs it: forward (auxiliary heads and the zero-fraction probe
    included), label-smoothed cross-entropy, backward, gradient clipping by global norm, an
    :class:`~inception_resnet.optim.RMSpropTF` update with weight decay. timm's models go through the same
    code. Not included: the data pipeline and the weight average (EMA), which the trainer updates after the
    step.
    """
    if candidate.runtime != "torch" or candidate.cuda_graph:
        raise ValueError("training runs on the torch runtime without a manual CUDA graph")
    recipe = RECIPES["paper"]
    device = torch.device(workload.device)
    model = model.train().to(device)
    if candidate.optimize:
        fuse_branches(model)
    if candidate.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(
        recipe["optimizer"], param_groups(model, recipe["weight_decay"], recipe["no_decay"]),
        lr=scale_lr(recipe["lr"], workload.batch_size, recipe["reference_batch_size"]),
        momentum=recipe["momentum"], rmsprop_decay=recipe["rmsprop_decay"], rmsprop_eps=recipe["rmsprop_eps"],
    )
    module: nn.Module = TrainingModule(model)
    runner = StepRunner(
        _compile(module, candidate) if candidate.compile is not None else module, optimizer, device=device,
        precision=workload.amp or "fp32", channels_last=candidate.channels_last,
        label_smoothing=recipe["label_smoothing"], aux_loss_weight=getattr(model, "aux_loss_weight", 0.4),
        clip_grad_norm=recipe["clip_grad_norm"],
    )
    num_classes = int(dict(workload.model_options).get("num_classes", 1000))
    labels = torch.randint(0, num_classes, (x.shape[0],), generator=torch.Generator().manual_seed(0))
    images, labels = runner.prepare(x, labels)

    def step() -> None:
        runner.forward_backward(images, labels)
        runner.unscale_and_clip()
        runner.apply()

    def resident() -> int:
        state = (t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor))
        return _tensor_bytes(model.parameters()) + _tensor_bytes(model.buffers()) + _tensor_bytes(state)

    return Prepared(candidate, step, lambda: None, resident)


def _example_input(workload: Workload, in_chans: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(workload.batch_size, in_chans, workload.input_size, workload.input_size, generator=generator)
    return x.to(workload.device)


def prepare(candidate: Candidate, workload: Workload, reference: nn.Module | None = None) -> Prepared:
    """Build, optimise, compile and warm up one candidate; ``reference`` (our model) lends timm its weights."""
    start = time.perf_counter()
    torch.manual_seed(0)
    model = _build_model(candidate, workload)
    comparable = candidate.library == "ours"
    if reference is not None and candidate.library == "timm":
        comparable = _share_weights(model, reference)
    x = _example_input(workload, int(getattr(model, "in_chans", 3)))
    if workload.mode == "infer":
        prepared = _prepare_inference(candidate, workload, model, x)
    else:
        prepared = _prepare_training(candidate, workload, model, x)
    for _ in range(workload.warmup):
        prepared.step()
    _synchronize(workload.device)
    prepared.resident_bytes = prepared.resident()  # after warm-up: the optimizer state exists by then
    prepared.comparable = comparable
    prepared.setup_s = time.perf_counter() - start
    return prepared


# -- timing -----------------------------------------------------------------------------------------------


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


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
    return Result(workload.key, workload.model, workload.mode, workload.batch_size, workload.input_size,
                  workload.device, workload.amp, candidate.spec, candidate.library)


COMPARED_SAMPLES = 8  # outputs compared with the reference: the first images of the batch (eval is per image)


def _reference_output(workload: Workload) -> tuple[nn.Module, torch.Tensor | None]:
    """Our plain model (timm borrows its weights) and its eager fp32 output on the first images."""
    torch.manual_seed(0)
    reference = create_model(workload.model, **dict(workload.model_options)).eval()
    if workload.mode != "infer":
        return reference, None
    x = _example_input(workload, reference.in_chans)[:COMPARED_SAMPLES]
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
) -> list[Result]:
    """Prepare every candidate, time them in interleaved rounds, and return one :class:`Result` each.

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
        expected_s = compile_estimate_s if candidate.compile is not None else 0.0
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
        if candidate.compile is not None:
            compile_estimate_s = max(compile_estimate_s, ready.setup_s)
        prepared.append((index, ready))
    times: dict[int, list[float]] = {i: [] for i, _ in prepared}
    peaks: dict[int, list[int]] = {i: [] for i, _ in prepared}
    for r in range(workload.rounds):
        if r > 0 and deadline is not None and time.monotonic() > deadline:
            break
        shift = r % len(prepared) if prepared else 0
        for index, ready in prepared[shift:] + prepared[:shift]:
            if rows[index].error:
                continue
            try:
                with _peak_memory(workload.device, peaks[index]):
                    times[index].append(time_steps(ready.step, workload.steps, workload.device))
            except Exception as err:  # noqa: BLE001
                rows[index].error = f"{type(err).__name__}: {err}"[:300]
    for index, ready in prepared:
        _fill(rows[index], times[index], peaks[index], ready.resident_bytes, workload, gflops)
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


def _fill(row: Result, seconds: list[float], peaks: list[int], resident: int, workload: Workload,
          gflops: float) -> None:
    if not seconds:
        return
    median = statistics.median(seconds)
    row.rounds = len(seconds)
    row.ms_per_batch = round(median * 1e3, 3)
    row.ms_min, row.ms_max = round(min(seconds) * 1e3, 3), round(max(seconds) * 1e3, 3)
    row.img_s = round(workload.batch_size / median, 2)
    row.tflops = _round_sig(row.img_s * gflops / 1e3)
    if workload.peak_tflops:
        row.mfu = _round_sig(row.tflops / workload.peak_tflops)
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


def benchmark_training(name: str, candidate: str | Candidate = "ours", **workload: Any) -> Result:
    """Time one model's training step: the trainer's step under the paper's recipe (see ``_prepare_training``)."""
    cand = parse_candidate(candidate) if isinstance(candidate, str) else candidate
    return run_workload(Workload(name, "train", **workload), [cand])[0]


def compare_with_timm(name: str, candidates: list[str] | None = None, **workload: Any) -> list[Result]:
    """Our model against timm's with the same settings, interleaved; default: eager, plain and optimised."""
    specs = candidates or ["timm", "ours", "ours+opt"]
    return run_workload(Workload(name, **workload), [parse_candidate(s) for s in specs])


# -- reports ----------------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "" if value is None else f"{value * scale:,.{digits}f}"


def _sig(value: float | None) -> str:
    """Three significant digits, without exponent for the usual ranges."""
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def to_markdown(results: list[Result]) -> str:
    """A markdown table of results, one row per candidate, grouped by workload."""
    header = ["workload", "candidate", "img/s", "ms/batch (min-max)", "TFLOP/s", "MFU %", "peak GiB",
              "x baseline", "max abs diff", "setup s", "note"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        spread = f"{_fmt(r.ms_per_batch, 2)} ({_fmt(r.ms_min, 2)}-{_fmt(r.ms_max, 2)})" if r.ms_per_batch else ""
        ratio = f"{r.ratio:.2f}x {r.baseline}" if r.ratio is not None else ""
        diff = f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else ""
        lines.append("| " + " | ".join([
            r.workload, f"`{r.candidate}`", _fmt(r.img_s), spread, _sig(r.tflops), _fmt(r.mfu, 1, 100.0),
            _fmt(r.peak_mem_gib, 2), ratio, diff, _fmt(r.setup_s), r.error or "",
        ]) + " |")
    return "\n".join(lines)


def document(results: list[Result], env: dict[str, Any]) -> dict[str, Any]:
    """The JSON results document: environment and rows."""
    return {"environment": env, "results": [asdict(r) for r in results]}


def environment_lines(env: dict[str, Any]) -> list[str]:
    """The environment as markdown list items, in a fixed order (the head of every results file)."""
    keys = ["date", "command", "note", "gpu", "driver", "cuda", "cudnn", "cpu", "cpu_count", "torch_threads",
            "torch", "timm", "onnxruntime", "python"]
    return [f"- {k}: `{env[k]}`" for k in keys if env.get(k) is not None]


def markdown_document(results: list[Result], env: dict[str, Any], title: str = "Benchmark") -> str:
    """Environment as a list, then the table: the format of the files under ``docs/results/``."""
    return "\n".join([f"# {title}", "", *environment_lines(env), "", to_markdown(results), ""])


def write_results(out: str | os.PathLike, stem: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write ``<stem>.md`` and ``<stem>.json`` into the folder ``out`` (created); returns the markdown path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    path = folder / f"{stem}.md"
    path.write_text(markdown)
    return path


def with_workload(workload: Workload, **changes: Any) -> Workload:
    """A copy of ``workload`` with some fields changed."""
    return replace(workload, **changes)
