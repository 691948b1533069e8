"""One training step, shared by the training loop and the training benchmark (:mod:`inception_resnet.bench`).

:class:`TrainingModule` runs a network for training, :func:`classification_loss` is the loss, and
:class:`StepRunner` does the forward/backward over micro-batches, clipping and the update.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.forward import autocast_dtype
from ..models.base import InceptionNet


class TrainingModule(nn.Module):
    """Wraps a network for training: returns ``(logits, [auxiliary logits...], zero_fraction)``.

    ``zero_fraction`` is the share of exact zeros in the feature map entering the final average pooling,
    the symptom of the "died" networks of the paper's section 3.3. Inception networks go through
    ``forward_aux`` / ``forward_head`` (so every auxiliary head comes along); other networks with
    ``forward_features`` / ``forward_head`` (timm's) through those; anything else through ``forward``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        net = self.net
        aux: list[torch.Tensor] = []
        if isinstance(net, InceptionNet):
            features, aux = net.forward_aux(images)
        elif hasattr(net, "forward_features") and hasattr(net, "forward_head"):
            features = net.forward_features(images)
        else:
            output = net(images)
            logits = output[0] if isinstance(output, (tuple, list)) else output
            return logits, [], torch.full((), float("nan"), device=logits.device)
        zero_fraction = (features.detach() == 0).float().mean()
        logits = net.forward_head(features)
        return logits, aux, zero_fraction


def classification_loss(
    logits: torch.Tensor,
    aux: list[torch.Tensor],
    labels: torch.Tensor,
    label_smoothing: float,
    aux_weight: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(main loss, total loss)``: label-smoothed cross-entropy, plus ``aux_weight`` x each auxiliary one."""
    main = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    total = main
    for aux_logits in aux:
        total = total + aux_weight * F.cross_entropy(aux_logits.float(), labels, label_smoothing=label_smoothing)
    return main, total


class StepRunner:
    """One optimiser step: forward/backward over micro-batches, gradient unscaling and clipping, the update.

    The training loop and the training benchmark (:mod:`inception_resnet.bench`) share it, so both time the
    same work.
    """

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device,
        precision: str = "fp32",
        channels_last: bool = False,
        label_smoothing: float = 0.0,
        aux_loss_weight: float = 0.0,
        clip_grad_norm: float = 0.0,
        accum_steps: int = 1,
    ) -> None:
        self.module = module
        self.optimizer = optimizer
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.label_smoothing = label_smoothing
        self.aux_loss_weight = aux_loss_weight
        self.clip_grad_norm = clip_grad_norm
        self.accum_steps = accum_steps
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.autocast_dtype = autocast_dtype(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def prepare(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=True)

    def forward_backward(
        self, images: torch.Tensor, labels: torch.Tensor, *, sync: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Accumulate the gradients of one micro-batch; returns detached (main loss, total loss, zero fraction).

        ``sync=False`` skips DDP's gradient all-reduce (all micro-batches of a step but the last).
        """
        no_sync = getattr(self.module, "no_sync", None)
        context = no_sync() if (not sync and no_sync is not None) else contextlib.nullcontext()
        with context:
            with torch.autocast(
                self.device.type, dtype=self.autocast_dtype or torch.float32, enabled=self.autocast_dtype is not None
            ):
                logits, aux, zero_fraction = self.module(images)
            main, total = classification_loss(logits, aux, labels, self.label_smoothing, self.aux_loss_weight)
            scaled = total / self.accum_steps
            if self.scaler is not None:
                scaled = self.scaler.scale(scaled)
            scaled.backward()
        return main.detach(), total.detach(), zero_fraction.detach()

    def unscale_and_clip(self) -> torch.Tensor:
        """Unscale (fp16) and clip the gradients; returns their global norm before clipping."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return torch.zeros((), device=self.device)
        if self.clip_grad_norm and self.clip_grad_norm > 0:
            return torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad_norm)
        return torch.nn.utils.get_total_norm(grads)

    def apply(self) -> None:
        """The optimiser update (skipped by the fp16 scaler when gradients overflowed); clears gradients."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
