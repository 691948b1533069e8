"""Validation during training, as functions of the run's parts (:class:`~.parts.RunParts`), and the
measurements the residual study needs (:mod:`inception_resnet.study`).

* :func:`validate`: top-1/top-5 error and loss of the raw and the averaged weights, on rank 0.
* ``validate_every_steps``: :func:`validate_at_step` measures the untrained network (step 0)
  and then every N steps (with ``validate_spacing`` the gap grows to that fraction of the step, so that a
  level crossed at step s lies between validations at most that fraction of s apart); each row of
  ``validation.jsonl`` holds the step, the training time so far (validation excluded) and the errors, and
  the checkpoints keep the rows so a resumed run continues them.
* ``bn_recompute_images``: each validation evaluates a copy of the network whose BatchNorm statistics were
  recomputed on that many clean (unaugmented) training images (:func:`recompute_batchnorm`); the live
  network and its running statistics are untouched, so training is the same with or without it.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..evaluation.evaluate import evaluate_loader
from .config import TrainConfig
from .distributed import broadcast_object, unwrap_model
from .parts import RunParts, set_train_mode
from .progress import RunProgress
from .rundir import RunLog

STEP_ROW_KEYS = ("step", "epoch", "train_seconds", "elapsed")  # validation.jsonl keys that are not results


def recompute_batchnorm(
    net: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
) -> nn.Module:
    """A copy of ``net`` in eval mode whose BatchNorm statistics are re-estimated over ``loader``'s images.

    Every BatchNorm layer's running mean and variance are reset and set to the plain average over the
    batches (``momentum=None``), with the other layers in eval mode (no dropout). ``net``, its weights and
    its running statistics are not changed; the copy is what gets evaluated.
    """
    clone = copy.deepcopy(net)
    clone.eval()
    norms = [m for m in clone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for images, _ in loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            clone(images)
    return clone.eval()


def validate(parts: RunParts) -> dict[str, Any]:
    """Top-1/top-5 error of the raw and the averaged weights (rank 0; shared with the other ranks)."""
    config, ctx = parts.config, parts.ctx
    results: dict[str, Any] = {}
    if ctx.is_main and parts.val_loader is not None:
        amp = config.precision  # fp16 runs validate under fp16 autocast (GPUs without bf16)
        with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
            candidates = [("val", unwrap_model(parts.net))]
            if parts.ema is not None:
                candidates.append(("ema_val", parts.ema.module))
            for prefix, network in candidates:
                if parts.bn_loader is not None:
                    network = recompute_batchnorm(
                        network, parts.bn_loader, device=ctx.device, precision=amp, channels_last=config.channels_last
                    )
                result = evaluate_loader(
                    network, parts.val_loader, device=ctx.device, precision=amp, channels_last=config.channels_last
                )
                results.update(
                    {
                        f"{prefix}_top1_error": result.top1_error,
                        f"{prefix}_top5_error": result.top5_error,
                        f"{prefix}_loss": result.loss,
                    }
                )
            results["val_skipped"] = result.num_skipped
        set_train_mode(parts)
    return broadcast_object(results, ctx)


def validate_at_step(parts: RunParts, log: RunLog) -> None:
    """Validate now (step 0, then as :func:`validation_due` says); one row of validation.jsonl."""
    progress = parts.progress
    results = validate(parts)
    row = {
        "step": progress.global_step,
        "epoch": progress.global_step / parts.steps_per_epoch,
        "train_seconds": progress.train_seconds(),
        **results,
        "elapsed": progress.elapsed(),
    }
    progress.evaluations.append(row)
    if parts.ctx.is_main:
        log.validation(row)


def validation_due(config: TrainConfig, progress: RunProgress) -> bool:
    """Whether this step validates: every ``validate_every_steps`` steps, or, with ``validate_spacing``,
    once the gap since the last validation reaches the larger of ``validate_every_steps`` and
    ``validate_spacing`` x the last validated step (rounded down)."""
    every, spacing = config.validate_every_steps, config.validate_spacing
    if not every:
        return False
    if not spacing:
        return progress.global_step % every == 0
    last = progress.evaluations[-1]["step"] if progress.evaluations else 0
    return progress.global_step - last >= max(every, int(spacing * last))


def epoch_results(parts: RunParts, log: RunLog) -> dict[str, Any]:
    """The validation of an epoch's end: with ``validate_every_steps`` also a point of the curve (validated
    now unless the step's validation just happened)."""
    if not parts.config.validate_every_steps:
        return validate(parts)
    evaluations = parts.progress.evaluations
    if not (evaluations and evaluations[-1]["step"] == parts.progress.global_step):
        validate_at_step(parts, log)
    return {k: v for k, v in evaluations[-1].items() if k not in STEP_ROW_KEYS}
