"""Model size and cost: parameters and multiply-accumulates, computed from the models themselves.

MACs are counted as timm's tables count conv and linear work (``Ho * Wo * Cout * Cin / groups * kh * kw``
per convolution, ``in * out`` per linear layer), using PyTorch's FLOP counter (2 FLOPs per MAC) on the
meta device, so nothing is computed and any input size costs the same.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Learnable parameters (BatchNorm's gamma and beta included, running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, int, int], batch_size: int = 1) -> int:
    """Convolution and linear multiply-accumulates of one forward pass, per image, in eval mode."""
    device = next(model.parameters()).device
    x = torch.empty(batch_size, *input_size, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // (2 * batch_size)


def model_macs(name: str, input_size: tuple[int, int, int] | None = None, **options) -> int:
    """MACs of a registered model built on the meta device (no memory, no compute)."""
    from .registry import build_model

    with torch.device("meta"):
        model = build_model(name, **options)
    return count_macs(model, input_size or model.metadata.input_size)
