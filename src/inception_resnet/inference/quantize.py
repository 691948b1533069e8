"""int8 post-training static quantization with PyTorch's PT2E flow, on the user's calibration images only.

:func:`quantize_int8` exports the network with ``torch.export``, annotates it with torchao's
``X86InductorQuantizer`` (per-channel symmetric int8 weights, per-tensor affine uint8 activations), observes the
calibration batches (:func:`calibration_batches`: a tensor, a DataLoader, an iterable of images) and converts
it to quantize / dequantize nodes around int8 weights; :func:`lowered` turns that graph into oneDNN int8
convolutions without compiling C++ (``torch.compile`` with freezing does the same with generated code).

PT2E is PyTorch's own quantization stack (the eager ``torch.ao.quantization`` flow is deprecated and was
removed from torch; its PT2E half lives on in torchao, kept by the PyTorch team): it quantizes the exported
graph of any of our networks without edits to their code, and its x86 lowering targets the same oneDNN
kernels the fp32 and bf16 paths use. Building an int8 model exports the network with ``torch.export``;
compiled models are kept in torch's compile cache, which the export may clear, so a model built earlier may
compile again at its next call.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from .precision import freezing

__all__ = ["calibration_batches", "lowered", "quantize_int8"]


# -- calibration --------------------------------------------------------------------------------------------


def calibration_batches(calibration: Any, batch_size: int = 32) -> Iterator[torch.Tensor]:
    """The image batches of ``calibration``: an ``(N, C, H, W)`` tensor (split into batches), or an iterable of
    image tensors, of ``(images, labels)`` pairs (a DataLoader) or of single ``(C, H, W)`` images."""
    if calibration is None:
        raise ValueError(
            "int8 needs calibration images: pass calibration= a tensor (N, C, H, W) or an iterable "
            "of image batches, preprocessed as the model's inputs (a few hundred images)"
        )
    if isinstance(calibration, torch.Tensor):
        if calibration.dim() != 4:
            raise ValueError(f"calibration images must be a 4-d tensor (N, C, H, W), got {list(calibration.shape)}")
        yield from calibration.split(batch_size)
        return
    if not isinstance(calibration, Iterable):
        raise TypeError(
            f"calibration must be a tensor or an iterable of image batches, got {type(calibration).__name__}"
        )
    for item in calibration:
        images = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(images, torch.Tensor):
            raise TypeError(
                f"calibration items must be image tensors or (images, labels) pairs, got {type(images).__name__}"
            )
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


def lowered(quantized: nn.Module, example: torch.Tensor) -> nn.Module:
    """The quantized graph with oneDNN int8 kernels and without compiled C++ (torchao's x86 lowering)."""
    from torchao.quantization.pt2e.lowering import lower_pt2e_quantized_to_x86

    with torch.no_grad(), freezing():
        return lower_pt2e_quantized_to_x86(quantized, (example,))
