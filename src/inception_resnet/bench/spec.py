"""What a benchmark measures (a :class:`Workload`) and how one model runs it (a :class:`Candidate`, written as a spec
such as ``ours+opt+cl+compile``); see :mod:`inception_resnet.bench`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..inference.precision import BACKENDS, INFERENCE_PRECISIONS  # a candidate's compute precision and engine
from ..models.complexity import count_macs
from ..weights.factory import create_model

H200_BF16_TFLOPS = 790.0  # dense bf16 matmul ceiling of one H200 assumed for MFU (see benchmarks/README.md)
LIBRARIES = ("ours", "timm")
RUNTIMES = ("torch", "jit", "ort", "ov")
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
    precision: str | None = None
    engine: str = "torch"  # ours with a precision: optimize_for_inference's backend (torch, openvino, auto)

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
        if self.precision is not None and self.precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS}, got {self.precision!r}")
        if self.runtime == "ort" and self.precision not in (None, "fp32"):
            raise ValueError("the ONNX Runtime candidate runs fp32; OpenVINO ('ov') runs bf16 and int8")
        if self.engine not in BACKENDS:
            raise ValueError(f"engine must be one of {BACKENDS}, got {self.engine!r}")
        if self.engine != "torch" and (self.precision is None or self.runtime != "torch" or self.compile is not None):
            raise ValueError(
                "'auto' and 'openvino' choose optimize_for_inference's backend: write them with a "
                "precision and without jit/ort/ov/compile, e.g. ours+int8+auto"
            )
        if self.precision is not None and self.runtime == "torch":
            if self.library != "ours" or self.optimize or self.channels_last or self.cuda_graph:
                raise ValueError(
                    "'fp32', 'bf16' and 'int8' run ours through optimize_for_inference(precision=...), "
                    "which chooses the rewrites and the layout: write e.g. ours+int8 or ours+bf16+compile"
                )
            if self.compile not in (None, "default") or self.inductor or self.backend != "inductor":
                raise ValueError(
                    "with a precision, 'compile' asks optimize_for_inference for torch.compile with "
                    "freezing; modes, backends and inductor options do not apply"
                )

    @property
    def spec(self) -> str:
        parts = [self.library]
        parts += ["opt"] if self.optimize else []
        parts += ["cl"] if self.channels_last and not self.onednn else []  # onednn implies cl
        parts += ["onednn"] if self.onednn else []
        parts += [self.runtime] if self.runtime != "torch" else []
        parts += [self.precision] if self.precision is not None else []
        parts += [self.engine] if self.engine != "torch" else []
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

    * ``opt``: ours only, :func:`~inception_resnet.inference.optimize_for_inference` for inference,
      :func:`~inception_resnet.inference.fusion.fuse_branches` for training;
    * ``cl``: channels_last model and input;
    * ``onednn``: with ``opt``, prepacked oneDNN convolutions (CPU, fp32; implies ``cl``);
    * ``jit``: TorchScript, frozen, ``torch.jit.optimize_for_inference``; ``ort``: ONNX Runtime (CPU);
      ``ov``: OpenVINO (CPU), both on the ONNX export of the model (after ``opt`` when given);
    * ``fp32``, ``bf16``, ``int8``: the compute precision. Ours on the torch runtime:
      ``optimize_for_inference(model, precision=...)`` with the library's defaults (int8 compiled, fp32 and
      bf16 prepacked oneDNN kernels; with ``compile``: fp32 and bf16 compiled too); OpenVINO:
      its inference precision hint, and for int8 NNCF's post-training quantization; both calibrate int8 on
      the same :data:`~inception_resnet.bench.prepare.CALIBRATION_IMAGES` random images;
    * ``auto``, ``openvino`` (with a precision, ours): ``optimize_for_inference``'s ``backend``: OpenVINO
      running our rewritten graph, or the backend measured fastest (``ours+int8+auto``);
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
        elif token in ("jit", "ort", "ov"):
            fields["runtime"] = token
        elif token in ("auto", "openvino"):
            fields["engine"] = token
        elif token in INFERENCE_PRECISIONS:
            fields["precision"] = token
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


def with_workload(workload: Workload, **changes: Any) -> Workload:
    """A copy of ``workload`` with some fields changed."""
    return replace(workload, **changes)
