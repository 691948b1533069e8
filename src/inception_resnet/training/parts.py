"""The parts of one training run, held together: :class:`RunParts`.

:func:`inception_resnet.training.setup.set_up_run` builds them; the loop
(:class:`~inception_resnet.training.trainer.Trainer`) holds them and advances their
:class:`~.progress.RunProgress`; what a checkpoint holds is a plain function of them
(:mod:`.checkpoint_state`), and so is a validation (:mod:`.validation`). docs/architecture.md draws one
training step through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .distributed import DistContext, GlobalBatchSampler, unwrap_model
from .ema import ModelEma
from .optimizers import LRSchedule
from .progress import RunProgress
from .rng import PerSampleSeeds
from .step import StepRunner


@dataclass
class RunParts:
    """Everything a run trains with: network, data and loaders, optimiser, schedule, averaged weights, progress.

    ``net`` is the bare network (``runner.module`` is its training wrapper, compiled and under DDP when asked);
    ``val_loader`` and ``bn_loader`` exist on rank 0 only (``bn_loader``: clean training images for BatchNorm
    recomputation); ``ema`` is the averaged weights (rank 0, with ``ema_decay``); ``validation``,
    ``train_images`` and ``val_images`` describe the data for ``config.json``.
    """

    config: TrainConfig
    ctx: DistContext
    net: nn.Module
    classes: list[str]
    input_size: int
    train_set: PerSampleSeeds
    sampler: GlobalBatchSampler
    train_loader: Any
    val_loader: Any | None
    bn_loader: Any | None
    peak_lr: float
    schedule: LRSchedule
    optimizer: torch.optim.Optimizer
    ema: ModelEma | None
    runner: StepRunner
    progress: RunProgress
    validation: str
    train_images: int
    val_images: int

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch


def set_train_mode(parts: RunParts) -> None:
    """The network in training mode; BatchNorm layers stay in eval mode with ``freeze_bn`` or ``freeze_body``."""
    net = unwrap_model(parts.net)
    net.train()
    if parts.config.freeze_bn or parts.config.freeze_body:
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def derived_settings(parts: RunParts, resume_path: str | None) -> dict[str, Any]:
    """What ``config.json`` records beside the configuration: the values derived from it and from the data."""
    config, ctx, net = parts.config, parts.ctx, parts.net
    return {
        "peak_lr": parts.peak_lr,
        "aux_loss_weight": parts.runner.aux_loss_weight,
        "world_size": ctx.world_size,
        "micro_batch_per_process": parts.sampler.micro_batch,
        "steps_per_epoch": parts.steps_per_epoch,
        "total_steps": parts.steps_per_epoch * config.epochs,
        "validation": parts.validation,
        "train_images": parts.train_images,
        "val_images": parts.val_images,
        "num_classes": len(parts.classes),
        "classes": parts.classes,
        "input_size": parts.input_size,
        "device": str(ctx.device),
        "parameters": sum(p.numel() for p in net.parameters()),
        "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
        "torch_version": str(torch.__version__),
        "resumed_from": resume_path,
    }
