"""Leaving PyTorch: safetensors in timm's layout, ONNX with a dynamic batch dimension, TorchScript.

:func:`export_model` writes one format and, for ONNX and TorchScript, runs the written file (onnxruntime,
``torch.jit.load``) on a random batch of a different size than the one it was exported with, comparing
with the PyTorch model (max abs difference at most ``atol``, 1e-4 by default). Files are built and checked
in memory, then written under a temporary name and moved into place only once complete, so a failed export
(a failed check, a full disk, a read-only folder) never leaves a partial file or replaces an existing one,
and the error names the cause. Models are exported in eval mode; a training-mode graph (BatchNorm on batch statistics,
dropout, and the ``(logits, aux_logits)`` pair of a model with ``aux_logits``) is refused with a clear
error, as is TorchScript for a ``features_only`` model (its forward uses hooks that scripting cannot keep).

safetensors files hold the state dict under the model's key names, which for ``inception_v3``,
``inception_v4`` and ``inception_resnet_v2`` are timm's: ``timm.create_model(name)`` loads them as they
are (timm's v4 and IR-v2 have no auxiliary head, so those weights are left out for those two).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..files import check_output_file, write_bytes_atomic

FORMATS = ("safetensors", "onnx", "torchscript")
SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
# Models whose timm counterpart has no auxiliary head: their AuxLogits weights stay out of timm-layout files.
TIMM_WITHOUT_AUX = ("inception_v4", "inception_resnet_v2")


@dataclass
class ExportResult:
    """What :func:`export_model` wrote: the file, its format and the check against PyTorch (``agreement``: an
    int8 file's top-1 agreement with the fp32 model, in percent)."""

    path: Path
    format: str
    max_abs_diff: float | None = None
    notes: list[str] = field(default_factory=list)
    agreement: float | None = None


def default_path(model_name: str, fmt: str) -> Path:
    """``<model name><suffix of the format>`` in the current folder."""
    return Path(model_name + SUFFIXES[check_format(fmt)])


def check_format(fmt: str) -> str:
    """``fmt`` when it is one of :data:`FORMATS`, else a ValueError listing them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt


def check_exportable(model: nn.Module, fmt: str, train_mode: bool = False) -> None:
    """Raise a ValueError when ``fmt`` cannot represent the model as asked."""
    check_format(fmt)
    if fmt == "safetensors":
        return
    if train_mode:
        what = (
            "the training-mode output (logits, aux_logits) of a model with aux_logits"
            if getattr(model, "aux_logits", False)
            else "a training-mode graph (BatchNorm on batch statistics, dropout)"
        )
        raise ValueError(
            f"{fmt} export cannot represent {what}; export in eval mode (the default: logits only) or save "
            "all weights, auxiliary head included, with --format safetensors"
        )
    if fmt == "torchscript" and getattr(model, "features_only", False):
        raise ValueError(
            "TorchScript cannot represent a features_only model (its feature taps are forward hooks); "
            "export it with --format onnx, or export the whole classifier"
        )


def timm_state_dict(model: nn.Module) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The model's weights in timm's layout (contiguous CPU tensors) and notes on what was left out."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    notes = []
    if getattr(model, "model_name", "") in TIMM_WITHOUT_AUX:
        aux = [k for k in state if k.startswith("AuxLogits.")]
        for key in aux:
            del state[key]
        if aux:
            notes.append(f"left out {len(aux)} auxiliary-head tensors (timm's {model.model_name} has no AuxLogits)")
    return state, notes


def safetensors_bytes(model: nn.Module) -> tuple[bytes, list[str]]:
    """The weights as a safetensors file in timm's layout (with our metadata in the header), in memory."""
    from safetensors.torch import save

    state, notes = timm_state_dict(model)
    header = {"format": "pt"}
    meta = getattr(model, "metadata", None)
    if meta is not None:
        header["inception_resnet.model"] = meta.name
        header["inception_resnet.metadata"] = json.dumps(asdict(meta), default=str)
    return save(state, metadata=header), notes


def export_safetensors(model: nn.Module, path: str | os.PathLike) -> ExportResult:
    """Write the weights as safetensors in timm's layout, with our metadata in the header."""
    data, notes = safetensors_bytes(model)
    return ExportResult(write_bytes_atomic(path, data, "the safetensors export"), "safetensors", None, notes)


def example_input(model: nn.Module, input_size: int | None = None, batch_size: int = 2) -> torch.Tensor:
    """A random batch of the model's input shape (``input_size`` overrides the metadata's side)."""
    meta = getattr(model, "metadata", None)
    channels = int(getattr(model, "in_chans", 3))
    side = int(input_size or (meta.input_size[-1] if meta is not None else 299))
    device = next(model.parameters()).device
    return torch.randn(batch_size, channels, side, side, device=device)


def _outputs(result) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    return list(result)


def require_onnx(check: bool = True) -> None:
    """A clear error, before any work, when ONNX export lacks ``onnx`` (or, to check the file, ``onnxruntime``)."""
    missing = [name for name in ("onnx", *(["onnxruntime"] if check else [])) if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(
            f"--format onnx needs the {' and '.join(missing)} package(s), which the runtime install leaves out: "
            f"pip install {' '.join(missing)} (or install inception-resnet with its [bench] extra)"
        )


def onnx_bytes(model: nn.Module, example: torch.Tensor, opset: int = 17) -> bytes:
    """Trace ``model`` (eval mode) to ONNX with a dynamic batch dimension on the input and every output."""
    with torch.no_grad():
        count = len(_outputs(model(example)))
    names = ["logits"] if count == 1 else [f"features_{i}" for i in range(count)]
    dynamic = {name: {0: "batch"} for name in ["input", *names]}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buffer,
            input_names=["input"],
            output_names=names,
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def torchscript_bytes(model: nn.Module) -> bytes:
    """Script ``model`` (eval mode) with ``torch.jit.script`` and serialise it."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


def onnx_difference(data: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference between onnxruntime running the ONNX model ``data`` on ``x`` and the PyTorch model."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.detach().cpu().numpy()})
    with torch.no_grad():
        expected = _outputs(model(x))
    return max(float((torch.from_numpy(g) - e.cpu()).abs().max()) for g, e in zip(got, expected, strict=True))


def torchscript_difference(data: bytes, model: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference between the serialised TorchScript module ``data`` run on ``x`` and the PyTorch model."""
    loaded = torch.jit.load(io.BytesIO(data), map_location=x.device)
    with torch.no_grad():
        got, expected = _outputs(loaded(x)), _outputs(model(x))
    return max(float((g - e).abs().max()) for g, e in zip(got, expected, strict=True))


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    fmt: str,
    *,
    input_size: int | None = None,
    train_mode: bool = False,
    check: bool = True,
    atol: float = 1e-4,
    opset: int = 17,
) -> ExportResult:
    """Export ``model`` to ``path`` in ``fmt`` (see :data:`FORMATS`) and check the file against PyTorch.

    ONNX and TorchScript are exported in eval mode with a batch of 2 and checked on a batch of 3 at
    ``input_size`` (default: the metadata's); a difference above ``atol`` raises a ValueError and leaves no
    file. ``train_mode=True`` is refused for those formats (see :func:`check_exportable`). The output folder
    is checked for writability before the export starts; the file is built and checked in memory, then
    written whole (free space checked first) or not at all, a failure naming the cause.
    """
    check_exportable(model, fmt, train_mode)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as {path / default_path(_name(model), fmt)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder of {path} does not exist; create {path.parent} first")
    check_output_file(path, f"the {fmt} export")
    if fmt == "onnx":
        require_onnx(check)
    if fmt == "safetensors":
        return export_safetensors(model, path)
    was_training = model.training
    model.eval()
    try:
        if fmt == "onnx":
            data = onnx_bytes(model, example_input(model, input_size, 2), opset)
            measure = onnx_difference
        else:
            data = torchscript_bytes(model)
            measure = torchscript_difference
        diff = measure(data, model, example_input(model, input_size, 3)) if check else None
        if diff is not None and not diff <= atol:
            raise ValueError(
                f"the {fmt} export differs from PyTorch by {diff:.3g} (more than {atol}); nothing was written"
            )
    finally:
        model.train(was_training)
    return ExportResult(write_bytes_atomic(path, data, f"the {fmt} export"), fmt, diff)


def _name(model: nn.Module) -> str:
    return str(getattr(model, "model_name", type(model).__name__))
