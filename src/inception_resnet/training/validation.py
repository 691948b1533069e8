"""Validation during training (the :class:`RunValidation` part of the trainer), and the measurements the
residual study needs (:mod:`inception_resnet.study`).

* :meth:`RunValidation.validate`: top-1/top-5 error and loss of the raw and the averaged weights, on rank 0.
* ``validate_every_steps``: :meth:`RunValidation.validate_at_step` measures the untrained network (step 0)
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

from .distributed import broadcast_object, unwrap_model

STEP_ROW_KEYS = ("step", "epoch", "train_seconds", "elapsed")  # validation.jsonl keys that are not results


def recompute_batchnorm(
    net: nn.Module, loader: Any, *, device: torch.device, precision: str = "fp32", channels_last: bool = False,
) -> nn.Module:
    """A copy of ``net`` in eval mode whose BatchNorm statistics are re-estimated over ``loader``'s images.

    Every BatchNorm layer's running mean and variance are reset and set to the plain average over the
    batches (``momentum=None``), with the other layers in eval mode (no dropout). ``net``, its weights and
    its running statistics are not changed; the copy is what gets evaluated.
    """
    clone = copy.deepcopy(net)
    clone.eval()
    norms = [m for m in clone.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
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


class RunValidation:
    """Validation methods of :class:`~inception_resnet.training.trainer.Trainer` (it holds the state)."""

    def validate(self) -> dict[str, Any]:
        """Top-1/top-5 error of the raw and the averaged weights (rank 0; shared with the other ranks)."""
        from ..evaluation.evaluate import evaluate_loader

        results: dict[str, Any] = {}
        if self.ctx.is_main and self.val_loader is not None:
            amp = self.config.precision  # fp16 runs validate under fp16 autocast (GPUs without bf16)
            with torch.random.fork_rng(devices=[self.ctx.device] if self.ctx.device.type == "cuda" else []):
                candidates = [("val", unwrap_model(self.net))]
                if self.ema is not None:
                    candidates.append(("ema_val", self.ema.module))
                for prefix, network in candidates:
                    if self.bn_loader is not None:
                        network = recompute_batchnorm(network, self.bn_loader, device=self.ctx.device,
                                                      precision=amp, channels_last=self.config.channels_last)
                    result = evaluate_loader(network, self.val_loader, device=self.ctx.device, precision=amp,
                                             channels_last=self.config.channels_last)
                    results.update({
                        f"{prefix}_top1_error": result.top1_error, f"{prefix}_top5_error": result.top5_error,
                        f"{prefix}_loss": result.loss,
                    })
                results["val_skipped"] = result.num_skipped
            self.set_train_mode()
        return broadcast_object(results, self.ctx)

    def validate_at_step(self) -> None:
        """Validate now (step 0, then every ``validate_every_steps``); one row of validation.jsonl."""
        results = self.validate()
        seconds = sum(row.get("epoch_seconds", 0.0) for row in self.history) + self.epoch_sums.get("seconds", 0.0)
        row = {"step": self.global_step, "epoch": self.global_step / self.steps_per_epoch, "train_seconds": seconds,
               **results, "elapsed": self.elapsed()}
        self.evaluations.append(row)
        if self.ctx.is_main:
            self.log.validation(row)

    def validation_due(self) -> bool:
        """Whether this step validates: every ``validate_every_steps`` steps, or, with ``validate_spacing``,
        once the gap since the last validation reaches the larger of ``validate_every_steps`` and
        ``validate_spacing`` x the last validated step (rounded down)."""
        every, spacing = self.config.validate_every_steps, self.config.validate_spacing
        if not every:
            return False
        if not spacing:
            return self.global_step % every == 0
        last = self.evaluations[-1]["step"] if self.evaluations else 0
        return self.global_step - last >= max(every, int(spacing * last))

    def epoch_results(self) -> dict[str, Any]:
        """The validation of an epoch's end: with ``validate_every_steps`` also a point of the curve (validated
        now unless the step's validation just happened)."""
        if not self.config.validate_every_steps:
            return self.validate()
        if not (self.evaluations and self.evaluations[-1]["step"] == self.global_step):
            self.validate_at_step()
        return {k: v for k, v in self.evaluations[-1].items() if k not in STEP_ROW_KEYS}
