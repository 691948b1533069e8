"""Checkpoints of a run (the :class:`RunState` part of the trainer): what a checkpoint holds, saving it on
every process's behalf, restoring it, and checking that a resumed run matches the one that wrote it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from .checkpoint import FORMAT, FORMAT_VERSION
from .control import NonFiniteWeightsError
from .distributed import (
    broadcast_object,
    gather_objects,
    unwrap_model,
)
from .ema import ModelEma
from .final_weights import run_model_config
from .rng import capture_rng
from .rundir import write_run_config


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


class RunState:
    """Checkpoint methods of :class:`~inception_resnet.training.trainer.Trainer` (it holds the state)."""

    def check_resume_compatible(self, state: dict[str, Any]) -> None:
        saved = state["config"]
        for name in ("model", "in_chans", "width_multiplier", "aux_logits", "residual_scale", "model_options"):
            if saved.get(name) != getattr(self.config, name):
                raise ValueError(
                    f"cannot resume from {self.resume_path}: it was trained with {name}={saved.get(name)!r} but "
                    f"this run has {name}={getattr(self.config, name)!r}; use the same setting or a new --run-dir"
                )
        for name in ("batch_size", "seed", "data", "max_train_images", "val_fraction"):
            if saved.get(name) != getattr(self.config, name):
                warnings.warn(
                    f"resuming with {name}={getattr(self.config, name)!r} (checkpoint: {saved.get(name)!r}): the "
                    "data order differs from the interrupted run's", stacklevel=2,
                )

    def checkpoint_state(self, rng_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_name": self.config.model,
            "classes": self.classes,
            "model_config": run_model_config(unwrap_model(self.net), self.classes, self.input_size(self.net),
                                             self.config.augmentation),
            "config": self.config.to_dict(),
            "model": unwrap_model(self.net).state_dict(),
            "model_ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.num_updates if self.ema is not None else 0,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.runner.scaler.state_dict() if self.runner.scaler is not None else None,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "epoch_sums": dict(self.epoch_sums),
            "history": list(self.history),
            "evaluations": list(self.evaluations),
            "best": dict(self.best),
            "elapsed": self.elapsed(),
            "world_size": self.ctx.world_size,
            "rng": rng_states,
            "torch_version": str(torch.__version__),
        }

    def save_checkpoint(self, is_best: bool = False) -> Path | None:
        """Write a checkpoint (rank 0); every rank takes part, as the random states are gathered.

        Only finite weights are saved: NaN or infinite values (raw or averaged) stop the run with a
        :class:`~.control.NonFiniteWeightsError` naming the newest checkpoint, which is finite.
        """
        rng_states = gather_objects(capture_rng(self.ctx.device), self.ctx)
        path, failure = None, None
        if self.ctx.is_main:
            state = self.checkpoint_state(rng_states)
            problem = non_finite_weights(state)
            if problem is not None:
                failure = ("non-finite", self.non_finite_weights_message(problem), None)
            else:
                epoch_label = self.epoch + (1 if self.step_in_epoch else 0)  # the 1-based epoch of the step
                try:
                    path = self.checkpoints.save(state, epoch=epoch_label, step=self.global_step, is_best=is_best)
                except OSError as error:  # the message names the file and the cause (disk full, read-only...)
                    failure = ("write", str(error), error.errno)
        shared, failure = broadcast_object((str(path) if path else None, failure), self.ctx)
        if failure is not None:
            kind, message, code = failure
            if kind == "write":
                error = OSError(message)
                error.errno = code
                raise error
            raise NonFiniteWeightsError(message)
        self.last_checkpoint = Path(shared) if shared else None
        return self.last_checkpoint

    def newest_checkpoint(self) -> Path | None:
        """The newest checkpoint of this run (written or resumed from); every one is finite."""
        return self.last_checkpoint or (Path(self.resume_path) if self.resume_path else None)

    def non_finite_weights_message(self, problem: str) -> str:
        last = self.newest_checkpoint()
        where = (f"The newest checkpoint, {last}, has finite weights: resume from it with --resume {last} after "
                 "lowering the learning rate (--lr) or adding warm-up (--warmup-epochs)") if last else \
            "No checkpoint was written yet; lower the learning rate (--lr) or add warm-up (--warmup-epochs)"
        return (f"training stopped: the weights became NaN or infinite ({problem}) at epoch {self.epoch + 1}, step "
                f"{self.global_step}; no checkpoint was written with them. {where}")

    def load_state(self, state: dict[str, Any]) -> None:
        ctx = self.ctx
        unwrap_model(self.net).load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("model_ema") is not None:
                self.ema.module.load_state_dict(state["model_ema"])
                self.ema.num_updates = int(state["ema_updates"])
            else:
                self.ema = ModelEma(self.net, self.config.ema_decay, self.config.ema_warmup)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.runner.scaler is not None and state.get("scaler"):
            self.runner.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.epoch_sums = dict(state["epoch_sums"])
        self.history = list(state["history"])
        self.evaluations = list(state.get("evaluations", []))
        self.best = dict(state["best"])
        self.elapsed_before = float(state["elapsed"])
        if self.step_in_epoch > self.steps_per_epoch:
            warnings.warn(f"the checkpoint is at step {self.step_in_epoch} of an epoch that now has "
                          f"{self.steps_per_epoch} steps; continuing with the next epoch", stacklevel=2)
            self.step_in_epoch = self.steps_per_epoch
        rngs = state["rng"]
        if state["world_size"] == ctx.world_size or ctx.rank < len(rngs):
            self.rng_to_restore = rngs[ctx.rank] if ctx.rank < len(rngs) else None
        if ctx.is_main:
            self.checkpoints.set_aside_after(self.global_step)
        self.say(f"resumed from {self.resume_path}: epoch {self.epoch + 1}, step {self.global_step}")

    def write_config(self) -> None:
        if not self.ctx.is_main:
            return
        config = self.config
        derived = {
            "peak_lr": self.peak_lr,
            "aux_loss_weight": self.runner.aux_loss_weight,
            "world_size": self.ctx.world_size,
            "micro_batch_per_process": self.sampler.micro_batch,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.steps_per_epoch * config.epochs,
            "validation": self.validation,
            "train_images": self.train_images,
            "val_images": self.val_images,
            "num_classes": len(self.classes),
            "classes": self.classes,
            "input_size": self.input_size(self.net),
            "device": str(self.ctx.device),
            "parameters": sum(p.numel() for p in self.net.parameters()),
            "trainable_parameters": sum(p.numel() for p in self.net.parameters() if p.requires_grad),
            "torch_version": str(torch.__version__),
            "resumed_from": self.resume_path,
        }
        write_run_config(self.run_dir, config.to_dict(), derived)
