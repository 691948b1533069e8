"""CPU inference in fp32, bf16 or int8, with the kernels that run fastest on the CPU at hand.

:func:`optimize_for_precision` (reached as ``optimize_for_inference(model, precision=...)``) turns an eval-mode
model into an :class:`InferenceModel`: a CPU-only, inference-only module that takes fp32 images in any memory
format and returns fp32 logits, whatever it computes in. What it runs depends on the precision asked for and
on what the CPU offers (:func:`cpu_features`, read from ``torch.cpu.get_capabilities()``):

* ``"fp32"``: the exact rewrites of :mod:`.rewrites` (BatchNorm and residual-scale folding, pooling branches
  projecting first), then either every convolution prepacked for oneDNN with its ReLU or residual add fused
  (:func:`~inception_resnet.inference.onednn.pack_for_cpu`; ready at once), or, with ``compile=True``,
  ``torch.compile`` with inductor's freezing (weights constant-folded and prepacked, the pooling,
  concatenation and slicing generated as fused C++ loops; the first call compiles).
* ``"bf16"``: the same with bfloat16 weights and activations, on CPUs with native bfloat16 dot products
  (AVX512-BF16 or AMX). Without them oneDNN would emulate bfloat16, slower than fp32, so the fp32 path is
  chosen instead and the plan says so.
* ``"int8"``: post-training static quantization with PyTorch's PT2E flow (``torch.export``, then
  ``prepare_pt2e`` / ``convert_pt2e`` from torchao with the ``X86InductorQuantizer``: per-channel symmetric
  int8 weights, per-tensor affine uint8 activations, observers run on the calibration images only), then
  inductor with freezing, which lowers the quantize / convolution / dequantize patterns to oneDNN's int8
  convolutions with fused requantization. It needs the ``torchao`` package and CPUs with VNNI dot products
  (AVX512-VNNI, AVX-VNNI or AMX); elsewhere the fp32 path is chosen and the plan says so. ``compile=False``
  lowers the same graph to oneDNN int8 convolutions without compiling C++ (ready sooner, slower).

PT2E is PyTorch's own quantization stack (the eager ``torch.ao.quantization`` flow is deprecated and was
removed from torch; its PT2E half lives on in torchao, kept by the PyTorch team): it quantizes the exported
graph of any of our networks without edits to their code, and its x86 lowering targets the same oneDNN
kernels the fp32 and bf16 paths use.

Compiled and lowered int8 models run a fixed batch size, the one of their first call: smaller batches are
padded (and the padding dropped from the output), larger ones split, so the model compiles once. Building an int8 model
exports the network with ``torch.export``; compiled models are kept in torch's compile cache, which the
export may clear, so a model built earlier may compile again at its next call.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "int8")
# Attributes of our networks that evaluation, prediction and export read; copied onto the optimised model.
_COPIED_ATTRIBUTES = ("model_name", "metadata", "num_classes", "in_chans", "default_size", "min_input_size",
                      "features_only", "classify_output", "aux_logits", "pretrained_cfg")


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


@dataclass
class InferencePlan:
    """What :func:`optimize_for_precision` chose: the precision run, the kernels, and why, as one message."""

    requested: str
    precision: str
    kernels: str
    compiled: bool
    reason: str = ""
    calibration_images: int = 0
    features: dict[str, bool] = field(default_factory=dict)

    @property
    def fell_back(self) -> bool:
        return self.precision != self.requested

    def __str__(self) -> str:
        text = f"{self.precision} CPU inference: {self.kernels}"
        if self.calibration_images:
            text += f", calibrated on {self.calibration_images} image(s)"
        if self.fell_back:
            text = f"{self.requested} was asked for, {self.reason}; running {text}"
        return text


def plan_inference(precision: str, compile: bool | None = None, features: dict[str, bool] | None = None,
                   ) -> InferencePlan:
    """The plan for ``precision`` on this CPU (or on a CPU with ``features``, see :func:`cpu_features`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    features = dict(cpu_features() if features is None else features)
    chosen, reason = precision, ""
    if precision == "bf16" and not features.get("bf16"):
        chosen, reason = "fp32", "but this CPU has no native bfloat16 instructions (AVX512-BF16 or AMX), so " \
                                 "bfloat16 would be emulated and run slower than fp32"
    if precision == "int8":
        if not features.get("x86"):
            chosen, reason = "fp32", "but the int8 path quantizes for x86 CPUs and this is not one"
        elif not features.get("vnni"):
            chosen, reason = "fp32", "but this CPU has no int8 dot-product instructions (AVX512-VNNI, AVX-VNNI " \
                                     "or AMX), so int8 convolutions would gain little over fp32"
        elif not have_torchao():
            chosen, reason = "fp32", "but the torchao package (PT2E quantization) is not installed: " \
                                     "pip install torchao"
    compiled = (chosen == "int8") if compile is None else bool(compile)
    if chosen == "int8":
        kernels = ("oneDNN int8 convolutions (VNNI), PT2E static quantization, torch.compile with freezing"
                   if compiled else "oneDNN int8 convolutions (VNNI), PT2E static quantization, not compiled")
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
def _freezing() -> Iterator[None]:
    # Dynamo decides whether parameters are constants from the global inductor setting, read when it traces;
    # torch.compile(options={"freezing": True}) alone does not freeze (the int8 weight prepacking then fails).
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        yield


class InferenceModel(nn.Module):
    """A CPU inference model in one precision: fp32 images in, fp32 logits out (see the module docstring).

    ``runner`` computes in ``dtype`` on channels_last inputs (or is built by ``build`` from the first batch);
    with ``fixed_batch`` every call runs the batch size of the first one (padded or split to it). The
    network's descriptive attributes (``model_name``, ``metadata``, ``num_classes``...) are copied from the
    original, so evaluation and prediction treat it as the network. ``plan`` says what runs. It cannot be
    trained, moved off the CPU or copied; keep the original model for that.
    """

    def __init__(self, runner: nn.Module | None, source: nn.Module, plan: InferencePlan,
                 dtype: torch.dtype = torch.float32, input_size: tuple[int, ...] | None = None,
                 fixed_batch: bool = False, build: Callable[[torch.Tensor], nn.Module] | None = None) -> None:
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
        with _freezing():
            return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"expected a 4-d batch (N, C, H, W), got a tensor of shape {list(x.shape)}")
        if self.input_size is not None and tuple(x.shape[1:]) != self.input_size:
            raise ValueError(
                f"this {self.precision} model was quantized for inputs of shape {list(self.input_size)} (C, H, W), "
                f"got {list(x.shape[1:])}; resize the images, or quantize with calibration images of that size")
        x = x.to(self.input_dtype).contiguous(memory_format=torch.channels_last)
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
            x = torch.cat([x, padding]).contiguous(memory_format=torch.channels_last)
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
            raise ValueError(f"an optimised {self.precision} model runs on the CPU as built; move or cast the "
                             "original model and optimise that instead")
        return self

    def __deepcopy__(self, memo: dict) -> InferenceModel:
        raise TypeError("an optimised inference model cannot be copied (its weights are packed for oneDNN or "
                        "compiled); optimise a copy of the original model instead")

    def extra_repr(self) -> str:
        return f"plan={self.plan}"


# -- calibration --------------------------------------------------------------------------------------------


def calibration_batches(calibration: Any, batch_size: int = 32) -> Iterator[torch.Tensor]:
    """The image batches of ``calibration``: an ``(N, C, H, W)`` tensor (split into batches), or an iterable of
    image tensors, of ``(images, labels)`` pairs (a DataLoader) or of single ``(C, H, W)`` images."""
    if calibration is None:
        raise ValueError("int8 needs calibration images: pass calibration= a tensor (N, C, H, W) or an iterable "
                         "of image batches, preprocessed as the model's inputs (a few hundred images)")
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() != 4:
            raise ValueError(f"calibration images must be a 4-d tensor (N, C, H, W), got {list(calibration.shape)}")
        yield from calibration.split(batch_size)
        return
    if not isinstance(calibration, Iterable):
        raise TypeError(f"calibration must be a tensor or an iterable of image batches, got "
                        f"{type(calibration).__name__}")
    for item in calibration:
        images = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"calibration items must be image tensors or (images, labels) pairs, got "
                            f"{type(images).__name__}")
        yield images.unsqueeze(0) if images.dim() == 3 else images


def _observe(observed: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Run the calibration batches through the observed model; returns the number of images."""
    count = 0
    with torch.no_grad():
        for batch in batches:
            observed(batch.float().contiguous())
            count += batch.shape[0]
    if count == 0:
        raise ValueError("the calibration data held no images; pass a few hundred images like the model's inputs")
    return count


def _ceil_mode_pool(node: Any) -> bool:
    """Whether an exported graph node is a max pool with ``ceil_mode=True``."""
    if node.target is not torch.ops.aten.max_pool2d.default:
        return False
    return bool(node.args[5] if len(node.args) > 5 else node.kwargs.get("ceil_mode", False))


def quantize_int8(model: nn.Module, calibration: Any, example: torch.Tensor) -> tuple[nn.Module, int]:
    """PT2E static quantization of an eval-mode fp32 model for x86: ``(quantized graph module, images seen)``.

    The graph is exported with a dynamic batch dimension, annotated by the ``X86InductorQuantizer`` (its
    default configuration), observed on the ``calibration`` batches only, then converted (quantize and
    dequantize nodes around int8 weights; no kernels chosen yet).
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    class Quantizer(X86InductorQuantizer):
        """The x86 quantizer, leaving ceil-mode max pools (GoogLeNet's, BN-Inception's) in fp32, and the
        concatenations they read: inductor's int8 max-pool lowering drops ``ceil_mode`` (it pools to a smaller
        map), and a quantized concatenation that an fp32 operation also reads compiles to outputs further from
        the quantized graph than rounding explains (torch 2.14, torchao 0.18; the uncompiled lowering is exact).
        """

        def _annotate_maxpool2d(self, node: Any, quantization_config: Any) -> None:
            if not _ceil_mode_pool(node):
                super()._annotate_maxpool2d(node, quantization_config)

        def _annotate_cat(self, node: Any, quantization_config: Any) -> None:
            if not any(_ceil_mode_pool(user) for user in node.users):
                super()._annotate_cat(node, quantization_config)

    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's notes on the deprecated training-IR flag and the like
        exported = torch.export.export(model, (example.repeat(2, 1, 1, 1),), dynamic_shapes=({0: batch},))
    quantizer = Quantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # notes on the ops it leaves in fp32 (a max pool of an fp32 input)
        observed = prepare_pt2e(exported.module(), quantizer)
    count = _observe(observed, calibration_batches(calibration))
    quantized = convert_pt2e(observed)
    move_exported_model_to_eval(quantized)
    return quantized, count


def _lowered(quantized: nn.Module, example: torch.Tensor) -> nn.Module:
    """The quantized graph with oneDNN int8 kernels and without compiled C++ (torchao's x86 lowering)."""
    from torchao.quantization.pt2e.lowering import lower_pt2e_quantized_to_x86

    with torch.no_grad(), _freezing():
        return lower_pt2e_quantized_to_x86(quantized, (example,))


def optimize_for_precision(
    model: nn.Module,
    precision: str = "fp32",
    *,
    calibration: Any = None,
    compile: bool | None = None,
    example_input: torch.Tensor | None = None,
    features: dict[str, bool] | None = None,
    warn: bool = True,
) -> InferenceModel:
    """An :class:`InferenceModel` of ``model`` in ``precision`` (see the module docstring); ``model`` is untouched.

    ``calibration``: int8 only, the images the activation ranges are observed on (:func:`calibration_batches`),
    preprocessed as the model's inputs; only these are used. ``compile``: ``torch.compile`` with freezing
    (default: on for int8, off for fp32 and bf16, which then run prepacked oneDNN kernels without a compile
    wait). ``example_input``: one input of the shape the model will see (default: one image at the model's
    default size). ``features``: the CPU's capabilities (default: :func:`cpu_features`; for tests). When the
    CPU lacks what ``precision`` needs, the fp32 path is taken and, with ``warn``, a warning says so; the
    plan is always in ``result.plan``.
    """
    from .onednn import pack_for_cpu
    from .rewrites import optimize_for_inference

    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("precision= builds CPU inference models; move the model to the CPU first (on a GPU, run "
                         "the plain model under torch.autocast instead)")
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise ValueError("precision= starts from an fp32 model; call model.float() first")
    plan = plan_inference(precision, compile, features)
    if plan.fell_back and warn:
        warnings.warn(str(plan), stacklevel=3)
    if plan.precision == "int8":
        batches = calibration_batches(calibration)
        first = next(batches, None)
        if first is None:
            raise ValueError("the calibration data held no images; pass a few hundred images like the model's "
                             "inputs")
        example = (first if example_input is None else example_input)[:1].float()
        rewritten = optimize_for_inference(model, fuse=False)
        quantized, plan.calibration_images = quantize_int8(rewritten, itertools.chain([first], batches), example)
        if plan.compiled:
            result = InferenceModel(torch.compile(quantized, dynamic=False), model, plan,
                                    input_size=tuple(example.shape[1:]))
        else:
            result = InferenceModel(None, model, plan, input_size=tuple(example.shape[1:]),
                                    build=functools.partial(_lowered, quantized))
        result.quantized_graph = quantized
        return result
    if example_input is None:
        size = int(getattr(model, "default_size", 224))
        example_input = torch.zeros(1, int(getattr(model, "in_chans", 3)), size, size)
    example = example_input[:1].float()
    dtype = torch.bfloat16 if plan.precision == "bf16" else torch.float32
    rewritten = optimize_for_inference(model, fuse=False, channels_last=True).to(dtype)
    if plan.compiled:
        runner: nn.Module = torch.compile(rewritten, dynamic=False)
    elif plan.features.get("onednn", True):
        rewritten.optimization_report.convs_packed = pack_for_cpu(
            rewritten, example.to(dtype).contiguous(memory_format=torch.channels_last))
        runner = rewritten
    else:
        runner = rewritten
    result = InferenceModel(runner, model, plan, dtype)
    result.optimization_report = rewritten.optimization_report
    return result
