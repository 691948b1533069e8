"""Where a run is and what it has measured so far: the counters and rows a checkpoint keeps besides the weights.

:class:`RunProgress` is one of the run's parts (:class:`~.parts.RunParts`). The loop
(:mod:`inception_resnet.training.trainer`) advances it one step at a time, adds each step's statistics to the
epoch's running sums (:meth:`RunProgress.account`) and closes an epoch into one row of ``metrics.jsonl``
(:meth:`RunProgress.epoch_row`, :meth:`RunProgress.close_epoch`). The validations of ``validation.jsonl`` are
kept here too, so that a resumed run continues them (:mod:`.checkpoint_state`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


def fresh_epoch_sums() -> dict[str, float]:
    """The running sums of an epoch that has not taken a step yet."""
    return {
        "loss": 0.0,
        "total_loss": 0.0,
        "zero_fraction": 0.0,
        "grad_norm": 0.0,
        "grad_norm_max": 0.0,
        "steps": 0,
        "images": 0,
        "seconds": 0.0,
        "skipped": 0,
        "clipped_steps": 0,
    }


@dataclass
class RunProgress:
    """The position of a run (epoch, step), the epoch's running sums, its rows so far and its training time.

    ``elapsed_before`` is the training time of the earlier sessions of a resumed run; ``started`` is when this
    session began (``time.perf_counter``), so :meth:`elapsed` counts the whole run.
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epoch_sums: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch: metrics.jsonl
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # validate_every_steps: validation.jsonl
    best: dict[str, Any] = field(default_factory=dict)  # the best epoch's number and errors
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the run began, over every session of it."""
        return self.elapsed_before + time.perf_counter() - self.started

    def train_seconds(self) -> float:
        """Training time so far (the epochs' step times; validation and logging excluded)."""
        return sum(row.get("epoch_seconds", 0.0) for row in self.history) + self.epoch_sums.get("seconds", 0.0)

    def advance(self) -> None:
        """One optimiser step was taken."""
        self.global_step += 1
        self.step_in_epoch += 1

    def account(self, stats: dict[str, Any], images: int) -> None:
        """Add one step's statistics (from the step of :mod:`inception_resnet.training.trainer`) to the epoch's sums."""
        sums = self.epoch_sums
        sums["loss"] += stats["loss"]
        sums["total_loss"] += stats["total_loss"]
        sums["zero_fraction"] += stats["zero_fraction"]
        if math.isfinite(stats["grad_norm"]):
            sums["grad_norm"] += stats["grad_norm"]
            sums["grad_norm_max"] = max(sums["grad_norm_max"], stats["grad_norm"])
        else:  # fp16: the gradient scaler found an overflow and skipped the update
            sums["overflow_steps"] = sums.get("overflow_steps", 0) + 1
        sums["steps"] += 1
        sums["images"] += images
        sums["clipped_steps"] = sums.get("clipped_steps", 0) + int(stats["clipped"])

    def epoch_row(self, lr: float) -> dict[str, Any]:
        """The training columns of the ending epoch's row of ``metrics.jsonl`` (validation is added after)."""
        sums = self.epoch_sums
        steps = max(1, sums["steps"])
        return {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "train_loss": sums["loss"] / steps,
            "train_total_loss": sums["total_loss"] / steps,
            "lr": lr,
            "images_per_second": sums["images"] / max(sums["seconds"], 1e-9),
            "epoch_seconds": sums["seconds"],
            "zero_fraction": sums["zero_fraction"] / steps,
            "grad_norm": sums["grad_norm"] / max(1, steps - sums.get("overflow_steps", 0)),
            "overflow_steps": sums.get("overflow_steps", 0),
            "grad_norm_max": sums["grad_norm_max"],
            "clipped_steps": sums.get("clipped_steps", 0),
            "train_skipped": sums["skipped"],
        }

    def close_epoch(self, row: dict[str, Any]) -> bool:
        """Keep the epoch's row, move to the next epoch; True when the row is the best so far (EMA first)."""
        self.history.append(row)
        metric = row.get("ema_val_top1_error", row.get("val_top1_error"))
        is_best = metric is not None and (not self.best or metric < self.best["top1_error"])
        if is_best:
            top5 = row.get("ema_val_top5_error", row.get("val_top5_error"))
            self.best = {"epoch": self.epoch + 1, "top1_error": metric, "top5_error": top5}
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_sums = {}
        return is_best
