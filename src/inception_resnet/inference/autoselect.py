"""``backend="auto"``: the CPU inference backend measured fastest on this machine, remembered on disk.

For one network (its name, parameter count and input shape), batch size and precision, :func:`choose_backend`
builds the torch and the OpenVINO model, checks each against the fp32 eager network (largest logit difference
within :data:`TOLERANCE` of the largest logit), times a few batches of each, taking turns, keeps the faster
and writes the timings to a JSON file keyed by the CPU's identity (its name, thread count, features and the library
versions): the next call with the same key builds only the chosen backend. The file is
``$INCEPTION_RESNET_CACHE/backends.json`` (default ``~/.cache/inception_resnet``); deleting it measures again.
Without OpenVINO (or, for int8, NNCF) the choice is torch, and the plan says why in one line.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..environment import cpu_name
from ..files import write_text_atomic
from .openvino_backend import build_openvino
from .precision import InferenceModel, InferencePlan, have_openvino, plan_inference
from .torch_backend import build_torch

__all__ = ["TOLERANCE", "cache_path", "choose_backend", "cpu_identity", "workload_key"]

# Largest logit difference from fp32 eager a backend may show, as a share of the largest fp32 logit.
TOLERANCE = {"fp32": 1e-3, "bf16": 0.05, "int8": 0.25}
TIMED_RUNS = 5


def cache_path() -> Path:
    """Where the measured choices are kept: ``$INCEPTION_RESNET_CACHE`` or ``~/.cache/inception_resnet``."""
    folder = os.environ.get("INCEPTION_RESNET_CACHE") or Path.home() / ".cache" / "inception_resnet"
    return Path(folder) / "backends.json"


def cpu_identity(features: dict[str, bool]) -> str:
    """The CPU and software a timing holds for: CPU name, threads, features, torch and OpenVINO versions."""
    try:
        import openvino

        ov_version = openvino.__version__
    except ImportError:
        ov_version = "none"
    flags = ",".join(sorted(k for k, v in features.items() if v))
    return (
        f"{cpu_name() or platform.processor()} | {torch.get_num_threads()} threads | {flags} | "
        f"torch {torch.__version__} | openvino {ov_version}"
    )


def workload_key(model: nn.Module, example: torch.Tensor, precision: str) -> str:
    """The network (name, parameters), input shape, batch size and precision a timing holds for."""
    name = getattr(model, "model_name", type(model).__name__)
    params = sum(p.numel() for p in model.parameters())
    return f"{name} {params} params {'x'.join(map(str, example.shape[1:]))} b{example.shape[0]} {precision}"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, identity: str, key: str, entry: dict[str, Any]) -> None:
    data = _read_cache(path)
    data.setdefault(identity, {})[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True), "the backend cache")
    except OSError as error:  # a read-only home: the choice holds for this call, and is measured again next time
        warnings.warn(f"could not remember the backend choice in {path}: {error}", stacklevel=3)


def _interleaved_seconds(models: dict[str, InferenceModel], x: torch.Tensor) -> dict[str, float]:
    """Seconds per batch of each model: one warm-up call each (which builds or compiles), then
    :data:`TIMED_RUNS` rounds in which every model runs once in turn; the median of its rounds. Taking turns
    lets a slow spell of the machine fall on every backend alike rather than on whichever ran during it."""
    for model in models.values():
        model(x)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(TIMED_RUNS):
        for name, model in models.items():
            start = time.perf_counter()
            model(x)
            times[name].append(time.perf_counter() - start)
    return {name: sorted(values)[len(values) // 2] for name, values in times.items()}


def _check_input(example: torch.Tensor, batches: list[torch.Tensor] | None) -> torch.Tensor:
    """The batch both backends are checked and timed on: calibration images for int8 (their range is what was
    quantized for), else standard-normal images."""
    if batches:
        images = torch.cat(batches)
        repeats = -(-example.shape[0] // images.shape[0])
        return images.repeat(repeats, 1, 1, 1)[: example.shape[0]].contiguous()
    return torch.randn(example.shape, generator=torch.Generator().manual_seed(0))


def choose_backend(
    model: nn.Module,
    precision: str,
    calibration: Callable[[], list[torch.Tensor] | None],
    example: Callable[[list[torch.Tensor] | None], torch.Tensor],
    *,
    compile: bool | None = None,
    features: dict[str, bool] | None = None,
    warn: bool = True,
) -> InferenceModel:
    """The model of ``precision`` on the backend measured fastest for it here (see the module docstring).

    ``calibration()``: the int8 batches (None for other precisions); ``example(batches)``: a batch of the size
    the model will run.
    """
    torch_plan = plan_inference(precision, compile, features, "torch")
    if not have_openvino(int8=precision == "int8"):
        missing = "OpenVINO and NNCF are" if precision == "int8" else "OpenVINO is"
        torch_plan.choice = f"auto: torch, as {missing} not installed (pip install 'inception-resnet[openvino]')"
        return _build_one(model, torch_plan, calibration, example, warn)
    plans = {"torch": torch_plan, "openvino": plan_inference(precision, None, features, "openvino")}
    batches = calibration() if any(p.precision == "int8" for p in plans.values()) else None
    x = example(batches)
    identity, key, path = cpu_identity(torch_plan.features), workload_key(model, x, precision), cache_path()
    cached = _read_cache(path).get(identity, {}).get(key)
    if isinstance(cached, dict) and cached.get("backend") in plans:
        plan = plans[cached["backend"]]
        plan.choice = f"auto: {cached['backend']}, {cached.get('why', 'measured fastest')} (remembered in {path})"
        return _build_one(model, plan, lambda: batches, lambda _: x, warn)
    reference_model = model if not model.training else copy.deepcopy(model).eval()
    check = _check_input(x, batches)
    with torch.no_grad():
        reference = reference_model(check)
    limit = TOLERANCE[precision] * float(reference.abs().max())
    built, notes = {}, []
    for name, plan in plans.items():
        try:
            candidate = (build_torch if name == "torch" else build_openvino)(model, plan, x[:1], batches)
        except ValueError as error:  # what this backend does not run (e.g. OpenVINO and a features_only model)
            notes.append(f"{name} left out: {error}")
            continue
        difference = float((candidate(check) - reference).abs().max())
        if not difference <= limit:
            notes.append(f"{name} left out: its logits differ from fp32 by {difference:.3g} (limit {limit:.3g})")
            continue
        built[name] = candidate
    if not built:
        raise RuntimeError(
            f"no backend reproduced the fp32 model within the {precision} tolerance: "
            f"{'; '.join(notes)}; use backend='torch' or another precision"
        )
    seconds = _interleaved_seconds(built, check)
    chosen = min(seconds, key=seconds.get)
    timings = " vs ".join(f"{name} {1e3 * s:.1f} ms" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
    why = f"measured fastest: {timings} per batch of {x.shape[0]}" + (f"; {'; '.join(notes)}" if notes else "")
    _write_cache(path, identity, key, {"backend": chosen, "why": why, "seconds": seconds})
    result = built[chosen]
    result.plan.choice = f"auto: {chosen}, {why}"
    if result.plan.fell_back and warn:
        warnings.warn(str(result.plan), stacklevel=3)
    return result


def _build_one(
    model: nn.Module, plan: InferencePlan, calibration: Callable, example: Callable, warn: bool
) -> InferenceModel:
    if plan.fell_back and warn:
        warnings.warn(str(plan), stacklevel=4)
    batches = calibration() if plan.precision == "int8" else None
    builder = build_torch if plan.backend == "torch" else build_openvino
    return builder(model, plan, example(batches)[:1], batches)
