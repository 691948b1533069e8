"""What a run reports: :class:`TrainSummary`, returned by ``train()``, and the one-line summary of an epoch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .parts import RunParts
from .resume import RunDirectory


@dataclass
class TrainSummary:
    """What a run did: per-epoch history, final and best errors, speed, checkpoints, the stop reason."""

    run_dir: str
    status: str
    epochs_completed: int
    global_step: int
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_top1_error: float | None
    best_top5_error: float | None
    seconds: float
    images_per_second: float
    last_checkpoint: str | None
    best_checkpoint: str | None
    config: dict[str, Any]
    chance_loss: float
    exit_code: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's row (empty before the first epoch ends)."""
        return self.history[-1] if self.history else {}

    @property
    def final_zero_fraction(self) -> float | None:
        return self.final.get("zero_fraction")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["final"] = self.final
        return data


def summarize(parts: RunParts, run_dir: RunDirectory, status: str, exit_code: int) -> TrainSummary:
    """The :class:`TrainSummary` of a run that ended with ``status``."""
    progress = parts.progress
    history = progress.history
    images = sum(row.get("images_per_second", 0.0) * row.get("epoch_seconds", 0.0) for row in history)
    seconds = sum(row.get("epoch_seconds", 0.0) for row in history)
    return TrainSummary(
        run_dir=str(run_dir.path),
        status=status,
        epochs_completed=len(history),
        global_step=progress.global_step,
        history=list(history),
        best_epoch=progress.best.get("epoch"),
        best_top1_error=progress.best.get("top1_error"),
        best_top5_error=progress.best.get("top5_error"),
        seconds=progress.elapsed(),
        images_per_second=images / seconds if seconds > 0 else 0.0,
        last_checkpoint=str(run_dir.last_checkpoint) if run_dir.last_checkpoint else None,
        best_checkpoint=str(run_dir.checkpoints.best_path) if progress.best else None,
        config=parts.config.to_dict(),
        chance_loss=math.log(len(parts.classes)),
        exit_code=exit_code,
        evaluations=list(progress.evaluations),
    )


def _short(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The line printed after an epoch (with ``progress``): loss, learning rate, speed, zeros, errors."""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"loss {row['train_loss']:.4f}",
        f"lr {row['lr']:.4g}",
        f"{row['images_per_second']:.1f} img/s",
        f"zeros {100 * row['zero_fraction']:.1f}%",
    ]
    if "val_top1_error" in row:
        parts.append(f"val top-1/top-5 error {_short(row['val_top1_error'])}/{_short(row['val_top5_error'])}%")
    if "ema_val_top1_error" in row:
        parts.append(f"EMA {_short(row['ema_val_top1_error'])}/{_short(row['ema_val_top5_error'])}%")
    return " | ".join(parts)
