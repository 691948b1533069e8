"""What a run's checkpoint holds, as plain functions of the run's parts (:class:`~.parts.RunParts`).

:func:`checkpoint_state` makes the dictionary (weights, averaged weights, optimiser, grad scaler, progress,
every process's random state); :func:`save_checkpoint` writes it on every process's behalf, finite weights
only; :func:`restore_checkpoint` puts one back into the parts; :func:`check_resume_compatible` refuses a
checkpoint of another network. The file itself (atomic write, verification, rotation) is
:mod:`.checkpoint`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..files import check_free_space, human_bytes
from .checkpoint import FORMAT, FORMAT_VERSION
from .config import TrainConfig
from .distributed import broadcast_object, gather_objects, unwrap_model
from .ema import ModelEma
from .final_weights import run_model_config
from .parts import RunParts
from .resume import RunDirectory
from .rng import capture_rng
from .stopping import NonFiniteWeightsError


def non_finite_weights(state: dict[str, Any]) -> str | None:
    """None when the raw and averaged weights of a checkpoint state are finite, else what is not."""
    for part in ("model", "model_ema"):
        tensors = state.get(part) or {}
        bad = {k: v for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())}
        if bad:
            values = sum(int((~torch.isfinite(v)).sum()) for v in bad.values())
            total = sum(v.numel() for v in tensors.values() if v.is_floating_point())
            first = next(iter(bad))
            what = "averaged weights" if part == "model_ema" else "weights"
            return f"{values:,} of {total:,} values of the {what}, first in {first}"
    return None


def check_resume_compatible(config: TrainConfig, state: dict[str, Any], resume_path: str | None) -> None:
    """An error when the checkpoint's network differs from the configured one; a warning when its data order does."""
    saved = state["config"]
    for name in ("model", "in_chans", "model_options"):
        if saved.get(name) != getattr(config, name):
            raise ValueError(
                f"cannot resume from {resume_path}: it was trained with {name}={saved.get(name)!r} but "
                f"this run has {name}={getattr(config, name)!r}; use the same setting or a new --run-dir"
            )
    for name in ("batch_size", "seed", "data", "max_train_images", "val_fraction"):
        if saved.get(name) != getattr(config, name):
            warnings.warn(
                f"resuming with {name}={getattr(config, name)!r} (checkpoint: {saved.get(name)!r}): the "
                "data order differs from the interrupted run's",
                stacklevel=2,
            )


def checkpoint_state(parts: RunParts, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
    """The checkpoint of ``parts`` as they are now; ``rng_states`` are every process's random states."""
    progress, ema, scaler = parts.progress, parts.ema, parts.runner.scaler
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": parts.config.model,
        "classes": parts.classes,
        "model_config": run_model_config(
            unwrap_model(parts.net), parts.classes, parts.input_size, parts.config.augmentation
        ),
        "config": parts.config.to_dict(),
        "model": unwrap_model(parts.net).state_dict(),
        "model_ema": ema.module.state_dict() if ema is not None else None,
        "ema_updates": ema.num_updates if ema is not None else 0,
        "optimizer": parts.optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": progress.epoch,
        "step_in_epoch": progress.step_in_epoch,
        "global_step": progress.global_step,
        "epoch_sums": dict(progress.epoch_sums),
        "history": list(progress.history),
        "evaluations": list(progress.evaluations),
        "best": dict(progress.best),
        "elapsed": progress.elapsed(),
        "world_size": parts.ctx.world_size,
        "rng": rng_states,
        "torch_version": str(torch.__version__),
    }


def save_checkpoint(parts: RunParts, run_dir: RunDirectory, is_best: bool = False) -> Path | None:
    """Write a checkpoint (rank 0) and return its path; every rank takes part, as the random states are gathered.

    Only finite weights are saved: NaN or infinite values (raw or averaged) stop the run with a
    :class:`~.stopping.NonFiniteWeightsError` naming the newest checkpoint, which is finite.
    """
    ctx, progress = parts.ctx, parts.progress
    rng_states = gather_objects(capture_rng(ctx.device), ctx)
    path, failure = None, None
    if ctx.is_main:
        state = checkpoint_state(parts, rng_states)
        problem = non_finite_weights(state)
        if problem is not None:
            failure = ("non-finite", non_finite_weights_message(parts, run_dir, problem), None)
        else:
            epoch_label = progress.epoch + (1 if progress.step_in_epoch else 0)  # the 1-based epoch of the step
            try:
                path = run_dir.checkpoints.save(state, epoch=epoch_label, step=progress.global_step, is_best=is_best)
            except OSError as error:  # the message names the file and the cause (disk full, read-only...)
                failure = ("write", str(error), error.errno)
    shared, failure = broadcast_object((str(path) if path else None, failure), ctx)
    if failure is not None:
        kind, message, code = failure
        if kind == "write":
            error = OSError(message)
            error.errno = code
            raise error
        raise NonFiniteWeightsError(message)
    run_dir.last_checkpoint = Path(shared) if shared else None
    return run_dir.last_checkpoint


def non_finite_weights_message(parts: RunParts, run_dir: RunDirectory, problem: str) -> str:
    """Why the run stopped on NaN or infinite weights, and where to resume from."""
    last = run_dir.newest_checkpoint()
    where = (
        (
            f"The newest checkpoint, {last}, has finite weights: resume from it with --resume {last} after "
            "lowering the learning rate (--lr) or adding warm-up (--warmup-epochs)"
        )
        if last
        else "No checkpoint was written yet; lower the learning rate (--lr) or add warm-up (--warmup-epochs)"
    )
    progress = parts.progress
    return (
        f"training stopped: the weights became NaN or infinite ({problem}) at epoch {progress.epoch + 1}, step "
        f"{progress.global_step}; no checkpoint was written with them. {where}"
    )


def restore_checkpoint(
    parts: RunParts, state: dict[str, Any], run_dir: RunDirectory, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """Put the checkpoint ``state`` back into ``parts``; returns this process's random state to restore (or None).

    Checkpoints after the resumed step are set aside (rank 0), so the run continues from this one.
    """
    config, ctx, progress = parts.config, parts.ctx, parts.progress
    unwrap_model(parts.net).load_state_dict(state["model"])
    if parts.ema is not None:
        if state.get("model_ema") is not None:
            parts.ema.module.load_state_dict(state["model_ema"])
            parts.ema.num_updates = int(state["ema_updates"])
        else:
            parts.ema = ModelEma(parts.net, config.ema_decay, config.ema_warmup)
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.runner.scaler is not None and state.get("scaler"):
        parts.runner.scaler.load_state_dict(state["scaler"])
    progress.epoch = int(state["epoch"])
    progress.step_in_epoch = int(state["step_in_epoch"])
    progress.global_step = int(state["global_step"])
    progress.epoch_sums = dict(state["epoch_sums"])
    progress.history = list(state["history"])
    progress.evaluations = list(state.get("evaluations", []))
    progress.best = dict(state["best"])
    progress.elapsed_before = float(state["elapsed"])
    if progress.step_in_epoch > parts.steps_per_epoch:
        warnings.warn(
            f"the checkpoint is at step {progress.step_in_epoch} of an epoch that now has "
            f"{parts.steps_per_epoch} steps; continuing with the next epoch",
            stacklevel=2,
        )
        progress.step_in_epoch = parts.steps_per_epoch
    rngs = state["rng"]
    rng = None
    if state["world_size"] == ctx.world_size or ctx.rank < len(rngs):
        rng = rngs[ctx.rank] if ctx.rank < len(rngs) else None
    if ctx.is_main:
        run_dir.checkpoints.set_aside_after(progress.global_step)
    say(f"resumed from {run_dir.resume_path}: epoch {progress.epoch + 1}, step {progress.global_step}")
    return rng


def check_disk_space(parts: RunParts, run_dir: RunDirectory) -> None:
    """Before the first step (rank 0): room for a checkpoint, else an error; for ``keep_last`` + 1 of them,
    else a warning. The size is estimated from the weights, the averaged weights and the optimiser's slots."""
    if not parts.ctx.is_main:
        return
    net, keep_last = parts.net, parts.config.keep_last
    weights = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    trainable = sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
    estimate = weights * (2 if parts.ema is not None else 1) + 2 * trainable + (1 << 20)
    directory = run_dir.checkpoints.directory
    check_free_space(directory, estimate, "one checkpoint")
    try:
        check_free_space(directory, estimate * (keep_last + 1), f"{keep_last + 1} checkpoints")
    except OSError as error:
        warnings.warn(
            f"{error} (each checkpoint is about {human_bytes(estimate)}); the run may stop when the disk is full",
            stacklevel=2,
        )
