"""CPU inference in fp32, bf16 or int8: what runs (the :class:`InferencePlan`) and the module that runs it.

:func:`~inception_resnet.inference.optimize.optimize_for_inference` (``precision=...``) turns an eval-mode
model into an :class:`InferenceModel`: a CPU-only, inference-only module that takes fp32 images in any memory
format and returns fp32 logits, whatever it computes in. What it runs depends on the precision asked for, on
the backend (PyTorch's oneDNN kernels, :mod:`.torch_backend`, or OpenVINO, :mod:`.openvino_backend`) and on
what the CPU offers (:func:`cpu_features`, read from ``torch.cpu.get_capabilities()``); :func:`plan_inference`
decides it and says why:

* ``"fp32"``: the exact rewrites of :mod:`.rewrites`, then oneDNN kernels (prepacked, or ``torch.compile``
  with freezing) or OpenVINO's CPU plugin.
* ``"bf16"``: the same in bfloat16, on CPUs with native bfloat16 dot products (AVX512-BF16 or AMX). Without
  them bfloat16 would be emulated, slower than fp32, so the fp32 path is chosen instead and the plan says so.
* ``"int8"``: post-training static quantization on the user's calibration images (PyTorch: PT2E with the x86
  quantizer, which needs ``torchao`` and VNNI dot products; OpenVINO: NNCF), the plan naming a fallback.

Compiled, lowered and OpenVINO models run a fixed batch size, the one of their first call: smaller batches are
padded (and the padding dropped from the output), larger ones split, so the model compiles once.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

INFERENCE_PRECISIONS = ("fp32", "bf16", "int8")  # what an optimised CPU model computes in (not autocast's)
BACKENDS = ("auto", "torch", "openvino")
# Attributes of our networks that evaluation, prediction and export read; copied onto the optimised model.
_COPIED_ATTRIBUTES = (
    "model_name",
    "metadata",
    "num_classes",
    "in_chans",
    "default_size",
    "min_input_size",
    "features_only",
    "classify_output",
    "aux_logits",
    "pretrained_cfg",
)


# -- what the CPU offers ------------------------------------------------------------------------------------


def cpu_features() -> dict[str, bool]:
    """The CPU's native bfloat16 and int8 dot-product instructions, as torch detects them.

    ``bf16``: AVX512-BF16 or AMX-BF16 (x86), or the BF16 extension (Arm); ``vnni``: AVX512-VNNI, AVX-VNNI or
    AMX-INT8; ``amx``: AMX tiles; ``x86``: an x86-64 CPU (the int8 path's quantizer targets x86).
    """
    get = getattr(torch.cpu, "get_capabilities", None)
    caps: dict[str, Any] = dict(get()) if get is not None else {}
    arch = str(caps.get("architecture", ""))
    x86 = arch in ("x86_64", "x86", "amd64") or (not arch and "AVX" in torch.backends.cpu.get_cpu_capability())
    bf16 = bool(caps.get("avx512_bf16") or caps.get("amx_bf16") or caps.get("bf16"))
    if not caps:  # older torch: oneDNN's own check
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return {
        "x86": x86,
        "bf16": bf16,
        "vnni": bool(caps.get("avx512_vnni") or caps.get("avx_vnni") or caps.get("amx_int8")),
        "amx": bool(caps.get("amx_tile")),
        "onednn": bool(torch.backends.mkldnn.is_available()),
    }


def have_torchao() -> bool:
    """Whether torchao's PT2E quantization (the int8 path) can be imported."""
    try:
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ImportError:
        return False
    return True


def have_openvino(int8: bool = False) -> bool:
    """Whether OpenVINO (and, for ``int8``, NNCF) is installed: the ``openvino`` extra."""
    names = ("openvino", "nncf") if int8 else ("openvino",)
    return all(importlib.util.find_spec(name) is not None for name in names)


@dataclass
class InferencePlan:
    """What :func:`~inception_resnet.inference.optimize.optimize_for_inference` chose: the precision run, the
    backend and its kernels, and why, as one message (``choice``: why ``backend="auto"`` chose this backend)."""

    requested: str
    precision: str
    kernels: str
    compiled: bool
    reason: str = ""
    calibration_images: int = 0
    features: dict[str, bool] = field(default_factory=dict)
    backend: str = "torch"
    choice: str = ""

    @property
    def fell_back(self) -> bool:
        return self.precision != self.requested

    def __str__(self) -> str:
        text = f"{self.precision} CPU inference: {self.kernels}"
        if self.calibration_images:
            text += f", calibrated on {self.calibration_images} image(s)"
        if self.fell_back:
            text = f"{self.requested} was asked for, {self.reason}; running {text}"
        return text + (f" ({self.choice})" if self.choice else "")


def check_precision(precision: str, backend: str = "torch") -> None:
    """A ValueError naming the choices when ``precision`` or ``backend`` is not one of them."""
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def plan_inference(
    precision: str, compile: bool | None = None, features: dict[str, bool] | None = None, backend: str = "torch"
) -> InferencePlan:
    """The plan for ``precision`` on ``backend`` (``"torch"`` or ``"openvino"``) on this CPU (or on a CPU with
    ``features``, see :func:`cpu_features`)."""
    check_precision(precision, backend)
    if backend == "auto":
        raise ValueError("plan_inference plans one backend; backend='auto' chooses between the plans")
    features = dict(cpu_features() if features is None else features)
    chosen, reason = precision, ""
    if precision == "bf16" and not features.get("bf16"):
        chosen, reason = (
            "fp32",
            "but this CPU has no native bfloat16 instructions (AVX512-BF16 or AMX), so "
            "bfloat16 would be emulated and run slower than fp32",
        )
    if backend == "openvino":
        if compile:
            raise ValueError(
                "compile=True asks for torch.compile, which the openvino backend does not use; "
                "leave compile out or use backend='torch'"
            )
        if not have_openvino(int8=precision == "int8"):
            raise ImportError(
                "backend='openvino' needs OpenVINO"
                + (" and NNCF" if precision == "int8" else "")
                + ": pip install 'inception-resnet[openvino]' (or use backend='torch')"
            )
        hint = {"fp32": "f32", "bf16": "bf16"}.get(chosen, "NNCF int8 static quantization")
        kernels = f"OpenVINO CPU plugin ({hint}) on our rewritten graph"
        return InferencePlan(precision, chosen, kernels, False, reason, features=features, backend="openvino")
    if precision == "int8":
        if not features.get("x86"):
            chosen, reason = "fp32", "but the int8 path quantizes for x86 CPUs and this is not one"
        elif not features.get("vnni"):
            chosen, reason = (
                "fp32",
                "but this CPU has no int8 dot-product instructions (AVX512-VNNI, AVX-VNNI "
                "or AMX), so int8 convolutions would gain little over fp32",
            )
        elif not have_torchao():
            chosen, reason = "fp32", "but the torchao package (PT2E quantization) is not installed: pip install torchao"
    compiled = (chosen == "int8") if compile is None else bool(compile)
    if chosen == "int8":
        kernels = (
            "oneDNN int8 convolutions (VNNI), PT2E static quantization, torch.compile with freezing"
            if compiled
            else "oneDNN int8 convolutions (VNNI), PT2E static quantization, not compiled"
        )
    else:
        dtype = "bfloat16" if chosen == "bf16" else "fp32"
        if not features.get("onednn", True):
            kernels, compiled = f"folded {dtype} convolutions, channels_last (no oneDNN in this torch)", False
        elif compiled:
            kernels = f"oneDNN {dtype} convolutions, channels_last, torch.compile with freezing"
        else:
            kernels = f"oneDNN {dtype} convolutions, prepacked weights, fused ReLU and residual add, channels_last"
    return InferencePlan(precision, chosen, kernels, compiled, reason, features=features)


# -- the optimised model ------------------------------------------------------------------------------------


@contextlib.contextmanager
def freezing() -> Iterator[None]:
    """inductor's freezing switched on while a compiled model traces (weights as constants, prepacked)."""
    # Dynamo decides whether parameters are constants from the global inductor setting, read when it traces;
    # torch.compile(options={"freezing": True}) alone does not freeze (the int8 weight prepacking then fails).
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        yield


class InferenceModel(nn.Module):
    """A CPU inference model in one precision: fp32 images in, fp32 logits out (see the module docstring).

    ``runner`` computes in ``dtype`` on channels_last inputs (or is built by ``build`` from the first batch;
    ``channels_last=False``: on contiguous NCHW inputs);
    with ``fixed_batch`` every call runs the batch size of the first one (padded or split to it). The
    network's descriptive attributes (``model_name``, ``metadata``, ``num_classes``...) are copied from the
    original, so evaluation and prediction treat it as the network. ``plan`` says what runs. It cannot be
    trained, moved off the CPU or copied; keep the original model for that.
    """

    def __init__(
        self,
        runner: nn.Module | None,
        source: nn.Module,
        plan: InferencePlan,
        dtype: torch.dtype = torch.float32,
        input_size: tuple[int, ...] | None = None,
        fixed_batch: bool = False,
        build: Callable[[torch.Tensor], nn.Module] | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if (runner is None) == (build is None):
            raise ValueError("give either a runner or a build function")
        self.body = runner
        self._build = build
        self.fixed_batch = fixed_batch or build is not None or plan.compiled
        for name in _COPIED_ATTRIBUTES:
            value = getattr(source, name, None)
            if value is not None and not isinstance(value, (nn.Module, torch.Tensor)):
                self.__dict__[name] = value
        self.plan = plan
        self.input_dtype = dtype
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.input_size = input_size  # (C, H, W) a graph was exported for; None: any size
        self.batch_size: int | None = None
        self.optimization_report = getattr(runner, "optimization_report", None)
        self.training = False

    @property
    def precision(self) -> str:
        return self.plan.precision

    def _run(self, x: torch.Tensor) -> Any:
        if self.body is None:
            self.body = self._build(x)
        if not self.plan.compiled:
            return self.body(x)
        with freezing():
            return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a 4-d batch (N, C, H, W), got a tensor of shape {list(x.shape)}")
        if self.input_size is not None and tuple(x.shape[1:]) != self.input_size:
            raise ValueError(
                f"this {self.precision} model was {'quantized' if self.precision == 'int8' else 'built'} for "
                f"inputs of shape {list(self.input_size)} (C, H, W), "
                f"got {list(x.shape[1:])}; resize the images, or quantize with calibration images of that size"
            )
        x = x.to(self.input_dtype).contiguous(memory_format=self.memory_format)
        with torch.no_grad():
            if not self.fixed_batch:
                return self._run(x).float()
            if self.batch_size is None:
                self.batch_size = x.shape[0]
            return torch.cat([self._fixed_batch(piece) for piece in x.split(self.batch_size)]).float()

    def _fixed_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Run one piece of at most ``batch_size`` images, padded to exactly that many (one compiled shape)."""
        count = x.shape[0]
        if count < self.batch_size:
            padding = x.new_zeros((self.batch_size - count, *x.shape[1:]))
            x = torch.cat([x, padding]).contiguous(memory_format=self.memory_format)
        return self._run(x)[:count]

    def train(self, mode: bool = True) -> InferenceModel:
        """Eval mode only: the graph inside has its inference behaviour built in (exported graphs refuse
        ``train()``), so this sets no mode below."""
        if mode:
            raise ValueError("an optimised inference model cannot be trained; train the original model")
        self.training = False
        return self

    def _apply(self, fn: Callable, recurse: bool = True) -> InferenceModel:
        probe = fn(torch.zeros(()))
        if probe.device.type != "cpu" or probe.dtype != torch.float32:
            raise ValueError(
                f"an optimised {self.precision} model runs on the CPU as built; move or cast the "
                "original model and optimise that instead"
            )
        return self

    def __deepcopy__(self, memo: dict) -> InferenceModel:
        raise TypeError(
            "an optimised inference model cannot be copied (its weights are packed for oneDNN or "
            "compiled); optimise a copy of the original model instead"
        )

    def extra_repr(self) -> str:
        return f"plan={self.plan}"
