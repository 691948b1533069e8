"""Exponential moving average of a model's weights, the copy the paper evaluates.

After every optimiser step, each floating-point entry of the state dict (parameters and BatchNorm running
statistics, as TF's ``research/inception`` averages both) moves towards the live model::

    ema <- d * ema + (1 - d) * live

with the decay ``d`` adjusted for short runs by TensorFlow's ``ExponentialMovingAverage(num_updates=...)``
rule, ``d = min(decay, (1 + n) / (10 + n))`` where ``n`` is the number of optimiser steps taken so far. At
0.9999 the average would otherwise still be 37 % made of the random initialisation after 10,000 steps;
with the rule it tracks the model closely early on (d = 0.18 after the first step, 0.91 after 100) and
reaches the full decay only after about 90,000 steps. Integer entries (``num_batches_tracked``) are copied.
``warmup=False`` uses the fixed decay from the first step.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .distributed import unwrap_model


class ModelEma:
    """A frozen copy of a model whose weights follow the live model's by an exponential moving average."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.module = copy.deepcopy(unwrap_model(model))
        self.module.eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    def decay_at(self, num_updates: int) -> float:
        """The decay applied by the update that brings the count of optimiser steps to ``num_updates``."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1.0 + num_updates) / (10.0 + num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> float:
        """Move the average towards ``model``; ``step`` is the optimiser step count (default: one more).

        Returns the decay that was used.
        """
        self.num_updates = self.num_updates + 1 if step is None else int(step)
        decay = self.decay_at(self.num_updates)
        live = unwrap_model(model).state_dict()
        averaged, targets = [], []
        for name, value in self.module.state_dict().items():
            source = live[name].detach()
            if value.is_floating_point():
                averaged.append(value)
                targets.append(source.to(dtype=value.dtype))
            else:
                value.copy_(source)
        if averaged:
            torch._foreach_lerp_(averaged, targets, 1.0 - decay)
        return decay

    def state_dict(self) -> dict:
        """The averaged weights and the update count (everything needed to resume the average)."""
        return {"module": self.module.state_dict(), "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
