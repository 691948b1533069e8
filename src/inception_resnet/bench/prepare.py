"""Building a benchmark candidate: the model (ours or timm's), its runtime (eager, compiled, TorchScript, ONNX
Runtime, CUDA graph) and the step that is timed, for inference or for training.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..evaluation.forward import autocast_dtype
from ..inference import fuse_branches, optimize_for_inference
from ..training.config import RECIPES
from ..training.optimizers import build_optimizer, param_groups, scale_lr
from ..training.step import StepRunner, TrainingModule
from ..weights.factory import create_model
from .spec import Candidate, Workload

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
    note: str = ""


def _autocast(workload: Workload, cache: bool = True) -> contextlib.AbstractContextManager:
    """Autocast to the workload's dtype; ``cache=False`` inside CUDA graph capture (cached casts would dangle)."""
    dtype = autocast_dtype(workload.amp)
    if dtype is None:
        return contextlib.nullcontext()
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


CALIBRATION_IMAGES = 32  # int8 candidates (ours and NNCF) observe the same random images, as many as this


def calibration_images(workload: Workload, in_chans: int) -> torch.Tensor:
    """The images every int8 candidate calibrates on: standard-normal, like the timed input, another seed."""
    generator = torch.Generator().manual_seed(1)
    size = (CALIBRATION_IMAGES, in_chans, workload.input_size, workload.input_size)
    return torch.randn(size, generator=generator)


def _export_onnx(model: nn.Module, x: torch.Tensor, folder: str, dynamic_batch: bool = False) -> str:
    path = os.path.join(folder, "model.onnx")
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on our input checks: constant for a fixed shape
        torch.onnx.export(
            model,
            (x,),
            path,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamic_axes=axes,
        )
    return path


def _openvino_session(
    model: nn.Module,
    x: torch.Tensor,
    precision: str,
    calibration: torch.Tensor | None,
) -> tuple[Callable[[], Any], Callable[[], None]]:
    """OpenVINO on the CPU: the model's ONNX export, compiled with ``precision`` as the inference precision
    hint; for int8, first quantized by NNCF (``nncf.quantize``, its default mixed preset) on ``calibration``,
    with OpenVINO's default precision for the layers NNCF leaves in floating point (bf16 where the CPU has
    native bfloat16). One infer request, torch's thread count."""
    import openvino as ov

    folder = tempfile.TemporaryDirectory(prefix="ir-bench-")
    core = ov.Core()
    network = core.read_model(_export_onnx(model, x, folder.name, dynamic_batch=True))
    if precision == "int8":
        import nncf

        images = [image.unsqueeze(0).numpy() for image in calibration]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            network = nncf.quantize(network, nncf.Dataset(images), subset_size=len(images))
    network.reshape({0: list(x.shape)})  # static shapes, as the other candidates
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
    if precision != "int8":  # int8: OpenVINO's own choice for what NNCF left in floating point (as users run it)
        config["INFERENCE_PRECISION_HINT"] = "bf16" if precision == "bf16" else "f32"
    compiled = core.compile_model(network, "CPU", config)
    request = compiled.create_infer_request()
    feed = {0: x.contiguous().numpy()}

    def run() -> Any:
        request.infer(feed)
        return request.get_output_tensor(0).data

    return run, folder.cleanup


def _onnx_session(model: nn.Module, x: torch.Tensor) -> tuple[Callable[[], Any], Callable[[], None]]:
    import onnxruntime as ort

    folder = tempfile.TemporaryDirectory(prefix="ir-bench-")
    path = _export_onnx(model, x, folder.name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input": x.contiguous().numpy()}
    return (lambda: session.run(None, feed)[0]), folder.cleanup


def _prepare_inference(candidate: Candidate, workload: Workload, model: nn.Module, x: torch.Tensor) -> Prepared:
    device = torch.device(workload.device)
    model = model.eval()
    if candidate.precision is not None and device.type != "cpu":
        raise ValueError("the fp32/bf16/int8 candidates run on the CPU; on a GPU use the workload's autocast")
    result: list[Any] = [None]
    calibration = None
    if candidate.precision == "int8":
        calibration = calibration_images(workload, int(getattr(model, "in_chans", 3)))
    if candidate.runtime == "torch" and candidate.precision is not None:
        # Without 'compile' the library's own default runs (compiled for int8), as eval and predict run it.
        options = {}
        if candidate.engine != "torch":  # OpenVINO on our rewritten graph, or the backend measured fastest here
            options = {"backend": candidate.engine, "batch_size": workload.batch_size}
        optimized = optimize_for_inference(
            model,
            precision=candidate.precision,
            calibration=calibration,
            compile=True if candidate.compile is not None else None,
            **options,
        )

        def run_optimized() -> None:
            result[0] = optimized(x)

        return Prepared(candidate, run_optimized, lambda: result[0], note=str(optimized.plan))
    if candidate.optimize:
        model = optimize_for_inference(model.to(device), onednn=candidate.onednn)
    model = model.to(device)
    if candidate.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if candidate.runtime == "ov":
        if workload.amp is not None:
            raise ValueError("the OpenVINO candidate takes its precision from its spec (ours+opt+ov+bf16), not amp")
        run_ov, cleanup_ov = _openvino_session(model, x, candidate.precision or "fp32", calibration)

        def run_openvino() -> None:
            result[0] = run_ov()

        return Prepared(candidate, run_openvino, lambda: torch.from_numpy(result[0].copy()), cleanup=cleanup_ov)
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
    """The trainer's own step under the paper's recipe (:data:`~inception_resnet.training.config.RECIPES` ``paper``).

    Through :class:`~inception_resnet.training.step.TrainingModule` and
    :class:`~inception_resnet.training.step.StepRunner`, exactly as ``inception-resnet train`` runs it:
    forward (auxiliary heads and the zero-fraction probe included), label-smoothed cross-entropy, backward,
    gradient clipping by global norm, an :class:`~inception_resnet.training.optimizers.RMSpropTF` update with
    weight decay. timm's models go through the same code. Not included: the data pipeline and the weight
    average (EMA), which the trainer updates after the
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
        recipe["optimizer"],
        param_groups(model, recipe["weight_decay"], recipe["no_decay"]),
        lr=scale_lr(recipe["lr"], workload.batch_size, recipe["reference_batch_size"]),
        momentum=recipe["momentum"],
        rmsprop_decay=recipe["rmsprop_decay"],
        rmsprop_eps=recipe["rmsprop_eps"],
    )
    module: nn.Module = TrainingModule(model)
    runner = StepRunner(
        _compile(module, candidate) if candidate.compile is not None else module,
        optimizer,
        device=device,
        precision=workload.amp or "fp32",
        channels_last=candidate.channels_last,
        label_smoothing=recipe["label_smoothing"],
        aux_loss_weight=getattr(model, "aux_loss_weight", 0.4),
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


def example_input(workload: Workload, in_chans: int) -> torch.Tensor:
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
    x = example_input(workload, int(getattr(model, "in_chans", 3)))
    if workload.mode == "infer":
        prepared = _prepare_inference(candidate, workload, model, x)
    else:
        prepared = _prepare_training(candidate, workload, model, x)
    for _ in range(workload.warmup):
        prepared.step()
    synchronize(workload.device)
    prepared.resident_bytes = prepared.resident()  # after warm-up: the optimizer state exists by then
    prepared.comparable = comparable
    prepared.setup_s = time.perf_counter() - start
    return prepared


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
