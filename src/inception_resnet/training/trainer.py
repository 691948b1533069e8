"""Training: the paper's recipe (and an SGD baseline), resumable to the step, in one process or under torchrun.

``train(TrainConfig(...))`` (or ``inception-resnet train``) trains a registered model and returns a
:class:`TrainSummary`. Every setting is a field of :class:`TrainConfig`; the ones left at ``None`` take the
value of the recipe (:data:`RECIPES`), and the fully resolved configuration is written to the run directory.

Recipe ``paper``: :class:`~inception_resnet.training.optimizers.RMSpropTF` (decay 0.9, momentum 0.9, epsilon
1.0), learning rate 0.045 per 32 images (TF-slim's and research/inception's per-replica batch: the paper's replicas each
applied updates of their own batch) scaled linearly to the global batch, x0.94 every 2 epochs (staircase),
optional warm-up, gradient clipping at global norm 2.0, label smoothing 0.1, weight decay 4e-5 (not on
BatchNorm), dropout 0.2 before the classifier, auxiliary loss x0.4, weight EMA 0.9999 with TF's short-run
adjustment, evaluated alongside the raw weights. Recipe ``sgd``: Nesterov SGD, lr 0.1 per 256 images,
cosine decay after a warm-up of 5 epochs (at most a tenth of the run), weight decay 1e-4 (not on BatchNorm
or biases), otherwise the same.

Run directory::

    config.json          the resolved configuration and what was derived from it (lr, batch split...)
    metrics.csv/.jsonl   one row per epoch: train loss, lr, images/s, val top-1/top-5 error (raw, EMA),
                         mean fraction of exact zeros entering the final pooling, gradient norms, times
    steps.jsonl          every ``log_every_steps`` steps: loss, gradient norm, lr, zero fraction, clipped or not
                         (and what a step probe adds: :mod:`inception_resnet.training.probes`)
    validation.jsonl     with ``validate_every_steps``: step 0 and every N steps, the validation errors
                         and the training time so far (validation excluded); see :mod:`.validation`
    checkpoints/         last-e<epoch>-s<step>.pt (the newest ``keep_last``), best.pt: everything to resume
                         (weights, averaged weights, optimiser state...; :mod:`.state`) and the model
                         configuration; best.pt is a hard link to the best epoch's file, no second copy
    model/               when training ends: model.safetensors and config.json, the best weights alone
                         (:mod:`.final_weights`); ``--weights RUN`` and ``create_model(pretrained=RUN)`` read them
    tensorboard/         the same scalars, when the tensorboard package is installed

Exact resumption: checkpoints (every epoch, and every ``checkpoint_every_steps`` steps) hold the model,
optimizer, averaged weights, grad scaler, epoch and step, every process's torch/CUDA/numpy/python random
state and the epoch's running sums. The data order is a pure function of (seed, epoch)
(:class:`~inception_resnet.training.distributed.GlobalBatchSampler`) and each image's random augmentation a pure
function of (seed, epoch, index), independent of workers; so on the CPU in deterministic mode a run
killed anywhere and resumed ends with bit-identical weights to an uninterrupted one.

Faults: SIGTERM/SIGINT finish the current step, save a checkpoint and return (the CLI exits with
128 + signal number); a NaN or infinite loss raises :class:`NonFiniteLossError` before the weights are
updated, naming the epoch, the step and the newest checkpoint; weights that became NaN or infinite are never
saved (:class:`~.stopping.NonFiniteWeightsError`, naming the newest finite checkpoint). The run directory is
locked for the run's lifetime (:class:`~.rundir.RunLock`): a second run on it stops at once naming the first.
Before the first step the directory is checked for writability and for room for a checkpoint; a failed write
names the cause. ``--resume auto`` never silently starts over: with checkpoints present but none intact it
stops and says so.

For the residual study (:mod:`inception_resnet.study`): validation at step 0 and every N steps, BatchNorm
statistics recomputed in a copy before each validation (:mod:`.validation`), a held-out part of the training
split as validation set (``holdout_fraction``), the count of clipped steps per epoch (``clipped_steps``), and
``augmentation="pad-crop"`` for small grey images (:mod:`inception_resnet.data.pad_crop`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from .checkpoint import load_checkpoint
from .checkpoint_state import check_disk_space, check_resume_compatible, restore_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import DistContext, all_reduce, init_distributed, shutdown, unwrap_model
from .final_weights import write_final_weights
from .optimizers import set_lr
from .parts import RunParts, derived_settings, set_train_mode
from .probes import ProbeContext, StepProbe
from .progress import RunProgress, fresh_epoch_sums
from .resume import RunDirectory
from .rng import restore_rng
from .rundir import RunLog, write_run_config
from .setup import configure_runtime, set_up_run
from .stopping import NonFiniteLossError, StopRequest, maybe_crash_for_test
from .summary import TrainSummary, epoch_line, summarize
from .validation import epoch_results, validate_at_step, validation_due


class Trainer:
    """One training run (internal to :func:`train`): it sets up the run's parts, then runs the epoch loop over them.

    ``parts`` (:class:`~.parts.RunParts`) exists once :meth:`run` has set the run up; ``run_dir``
    (:class:`~.resume.RunDirectory`) once the run directory is claimed.
    """

    def __init__(
        self, config: TrainConfig, ctx: DistContext, stop: StopRequest, step_probe: StepProbe | None = None
    ) -> None:
        self.config = config
        self.ctx = ctx
        self.stop = stop
        self.step_probe = step_probe
        self.progress = RunProgress()  # its clock starts now: set-up counts as the run's time
        self.run_dir: RunDirectory | None = None
        self.parts: RunParts | None = None
        self.log: RunLog | None = None
        self.rng_to_restore: dict[str, Any] | None = None

    # -- the run --------------------------------------------------------------------------------------
    def run(self, train_dataset: Dataset | None, val_dataset: Dataset | None) -> TrainSummary:
        """Set up (resuming where a checkpoint says), train every epoch, and say how the run ended."""
        config, ctx = self.config, self.ctx
        configure_runtime(config, ctx)
        self.run_dir = run_dir = RunDirectory(config, ctx)
        run_dir.claim(config.resume, ctx, self.say)
        state = load_checkpoint(run_dir.resume_path) if run_dir.resume_path else None
        if state is not None:
            check_resume_compatible(config, state, run_dir.resume_path)
        self.parts = parts = set_up_run(
            config,
            ctx,
            self.progress,
            resume_path=run_dir.resume_path,
            train_dataset=train_dataset,
            val_dataset=val_dataset,
            say=self.say,
        )
        check_disk_space(parts, run_dir)
        if state is not None:
            self.rng_to_restore = restore_checkpoint(parts, state, run_dir, self.say)
        if ctx.is_main:
            write_run_config(run_dir.path, config.to_dict(), derived_settings(parts, run_dir.resume_path))
        self.log = RunLog(run_dir.path, ctx.is_main, config.tensorboard)
        # a fresh start clears the rows of a run that died early
        self.log.restart(self.progress.history, self.progress.global_step, self.progress.evaluations)
        self.stop.install()
        try:
            status = self.loop()
        finally:
            self.stop.restore()
            self.log.close()
        if status == "completed" and ctx.is_main:
            best = run_dir.checkpoints.best_path if self.progress.best else None
            folder = write_final_weights(run_dir.path, best, run_dir.last_checkpoint)
            if folder is not None:
                self.say(f"weights: {folder} (model.safetensors and config.json; --weights {run_dir.path})")
        exit_code = 128 + self.stop.signal_number if status.startswith("stopped") and self.stop.signal_number else 0
        return summarize(parts, run_dir, status, exit_code)

    def release(self) -> None:
        """Give up the run directory's lock, if this run holds it."""
        if self.run_dir is not None:
            self.run_dir.release()

    def say(self, message: str, always: bool = True) -> None:
        """A line on stderr from rank 0; ``always=False`` ones (per-epoch lines) only with ``progress``."""
        if self.ctx.is_main and (always or self.config.progress):
            print(message, file=sys.stderr, flush=True)

    # -- the loop -------------------------------------------------------------------------------------
    def loop(self) -> str:
        """Every remaining epoch; the status: ``completed`` or ``stopped by <signal>``."""
        config, parts, progress = self.config, self.parts, self.progress
        if self.rng_to_restore is not None:
            restore_rng(self.rng_to_restore, self.ctx.device)
        if config.validate_every_steps and progress.global_step == 0 and not progress.evaluations:
            validate_at_step(parts, self.log)  # the untrained network: the curves' first point is measured
        if progress.global_step == 0 and self.step_probe is not None and self.ctx.is_main:
            self.log.step(
                {"epoch": 0, "step": 0, "step_in_epoch": 0, "lr": parts.schedule(0), "elapsed": 0.0, **self.probe()}
            )
        while progress.epoch < config.epochs:
            finished = self.train_epoch()
            if not finished:
                return f"stopped by {self.stop.signal_name}"
            self.end_epoch()
            if progress.epoch < config.epochs and self.stop_requested_anywhere():
                self.say(
                    f"{self.stop.signal_name}: stopped after epoch {progress.epoch}; "
                    f"checkpoint {self.run_dir.last_checkpoint}"
                )
                return f"stopped by {self.stop.signal_name}"
        return "completed"

    def stop_requested_anywhere(self) -> bool:
        """Whether any process got SIGTERM/SIGINT (one small all-reduce)."""
        flag = torch.tensor([1.0 if self.stop.requested else 0.0], device=self.ctx.device)
        if all_reduce(flag, self.ctx).item() > 0:
            self.stop.signal_name = self.stop.signal_name or "a signal on another process"
            return True
        return False

    def train_epoch(self) -> bool:
        """Train the rest of the current epoch; False when a stop was requested (after checkpointing)."""
        config, ctx, parts, progress = self.config, self.ctx, self.parts, self.progress
        if progress.step_in_epoch == 0:
            progress.epoch_sums = fresh_epoch_sums()
        set_train_mode(parts)
        parts.sampler.set_epoch(progress.epoch, progress.step_in_epoch)
        parts.train_set.epoch = progress.epoch
        batches = iter(parts.train_loader)
        bar = tqdm(
            total=parts.steps_per_epoch,
            initial=progress.step_in_epoch,
            unit="step",
            dynamic_ncols=True,
            desc=f"epoch {progress.epoch + 1}/{config.epochs}",
            disable=not (ctx.is_main and config.progress),
            leave=False,
        )
        window: list[float] = []
        tick = time.perf_counter()
        try:
            while progress.step_in_epoch < parts.steps_per_epoch:
                stats, images = self.train_step(batches)
                now = time.perf_counter()
                progress.epoch_sums["seconds"] += now - tick
                tick = now
                window.append(stats["loss"])
                progress.account(stats, images)
                rate = progress.epoch_sums["images"] / max(progress.epoch_sums["seconds"], 1e-9)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{rate:.1f}", refresh=False)
                bar.update(1)
                if config.log_every_steps and progress.global_step % config.log_every_steps == 0:
                    self.log_step(stats, sum(window) / len(window), rate)
                    window = []
                    tick = time.perf_counter()  # the log (and a step probe) is not training time
                maybe_crash_for_test(ctx, progress.global_step)
                if validation_due(config, progress):
                    validate_at_step(parts, self.log)
                    tick = time.perf_counter()  # validation is not training time
                if stats["stop"]:
                    self.stop.signal_name = self.stop.signal_name or "a signal on another process"
                    path = save_checkpoint(parts, self.run_dir)
                    self.say(
                        f"{self.stop.signal_name}: stopped at epoch {progress.epoch + 1}, step "
                        f"{progress.global_step}; checkpoint {path}"
                    )
                    return False
                every = config.checkpoint_every_steps
                if every and progress.global_step % every == 0 and progress.step_in_epoch < parts.steps_per_epoch:
                    save_checkpoint(parts, self.run_dir)
        finally:
            bar.close()
            progress.epoch_sums["skipped"] += int(getattr(parts.train_loader, "skipped", 0))
        return True

    def train_step(self, batches: Iterator) -> tuple[dict[str, Any], int]:
        """One optimiser step over ``accum_steps`` micro-batches; returns the step's statistics."""
        config, parts, progress = self.config, self.parts, self.progress
        runner = parts.runner
        lr = parts.schedule(progress.global_step)
        set_lr(parts.optimizer, lr)
        sums = torch.zeros(3, device=self.ctx.device)
        images_seen = 0
        for micro in range(config.accum_steps):
            try:
                images, labels = next(batches)
            except StopIteration:
                raise RuntimeError(
                    f"the training data ran out in epoch {progress.epoch + 1} after {progress.step_in_epoch} "
                    "steps: too many unreadable images were skipped; remove or replace the files the warnings name"
                ) from None
            images, labels = runner.prepare(images, labels)
            main, total, zero = runner.forward_backward(images, labels, sync=micro == config.accum_steps - 1)
            sums += torch.stack([main, total, zero]) / config.accum_steps
            images_seen += labels.numel()
        grad_norm = runner.unscale_and_clip()
        stop_flag = 1.0 if self.stop.requested else 0.0
        packed = torch.cat(
            [
                sums,
                torch.stack(
                    [
                        grad_norm.float().to(sums.device),
                        torch.tensor(stop_flag, device=sums.device),
                        torch.tensor(float(images_seen), device=sums.device),
                    ]
                ),
            ]
        )
        all_reduce(packed, self.ctx)
        world = self.ctx.world_size
        main_loss, total_loss, zero_fraction, grad_sum, stop_sum, images_total = packed.tolist()
        stats = {
            "loss": main_loss / world,
            "total_loss": total_loss / world,
            "zero_fraction": zero_fraction / world,
            "grad_norm": grad_sum / world,
            "lr": lr,
            "stop": stop_sum > 0,
        }
        stats["clipped"] = bool(config.clip_grad_norm) and stats["grad_norm"] > config.clip_grad_norm
        fp16 = runner.scaler is not None
        if not math.isfinite(stats["total_loss"]) or (not fp16 and not math.isfinite(stats["grad_norm"])):
            parts.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(self.non_finite_message(stats))
        runner.apply()
        progress.advance()
        if parts.ema is not None:
            parts.ema.update(parts.net, progress.global_step)
        return stats, int(images_total)

    def non_finite_message(self, stats: dict[str, Any]) -> str:
        """Why the run stopped on a NaN or infinite loss (or gradient norm), and where to resume from."""
        progress = self.progress
        what = "loss" if not math.isfinite(stats["total_loss"]) else "gradient norm"
        value = stats["total_loss"] if what == "loss" else stats["grad_norm"]
        last = self.run_dir.newest_checkpoint()
        where = (
            (
                f"the newest checkpoint is {last} (intact, finite weights); resume from it with --resume {last} "
                "after lowering the learning rate (--lr) or adding warm-up (--warmup-epochs)"
            )
            if last
            else "no checkpoint was written yet; lower the learning rate (--lr) or add warm-up (--warmup-epochs)"
        )
        return (
            f"training stopped: the {what} became {value} at epoch {progress.epoch + 1}, step "
            f"{progress.global_step + 1} (step {progress.step_in_epoch + 1} of the epoch); the weights were not "
            f"updated with it. {where}"
        )

    def log_step(self, stats: dict[str, Any], window_loss: float, rate: float) -> None:
        """One row of steps.jsonl (with the step probe's values, on rank 0)."""
        progress = self.progress
        row = {
            "epoch": progress.epoch + 1,
            "step": progress.global_step,
            "step_in_epoch": progress.step_in_epoch,
            "loss": stats["loss"],
            "loss_window": window_loss,
            "total_loss": stats["total_loss"],
            "grad_norm": stats["grad_norm"],
            "clipped": stats["clipped"],
            "lr": stats["lr"],
            "zero_fraction": stats["zero_fraction"],
            "images_per_second": rate,
            "elapsed": progress.elapsed(),
        }
        if self.step_probe is not None and self.ctx.is_main:
            row.update(self.probe())
        self.log.step(row)

    def probe(self) -> dict[str, Any]:
        """The step probe's values for the current step (the network back in training mode afterwards)."""
        parts = self.parts
        context = ProbeContext(
            net=unwrap_model(parts.net),
            step=self.progress.global_step,
            epoch=self.progress.epoch,
            device=self.ctx.device,
            val_dataset=parts.val_loader.dataset if parts.val_loader is not None else None,
            val_loader=parts.val_loader,
            config=self.config,
        )
        try:
            return dict(self.step_probe(context))
        finally:
            set_train_mode(parts)

    def end_epoch(self) -> None:
        """The epoch's row (validated at every ``validate_every_epochs`` and the last epoch) and its checkpoint."""
        config, parts, progress = self.config, self.parts, self.progress
        row = progress.epoch_row(lr=parts.schedule(max(0, progress.global_step - 1)))
        last_epoch = progress.epoch + 1 == config.epochs
        validate = (progress.epoch + 1) % config.validate_every_epochs == 0 or last_epoch
        row.update(epoch_results(parts, self.log) if validate else {})
        row["elapsed"] = progress.elapsed()
        is_best = progress.close_epoch(row)
        if self.ctx.is_main:
            self.log.epoch(progress.history)
            self.say(epoch_line(row, config.epochs), always=False)
        save_checkpoint(parts, self.run_dir, is_best=is_best)


def train(
    config: TrainConfig | Mapping[str, Any],
    *,
    train_dataset: Dataset | None = None,
    val_dataset: Dataset | None = None,
    step_probe: StepProbe | None = None,
) -> TrainSummary:
    """Train as ``config`` says (a :class:`TrainConfig` or a dict of its fields); see the module docstring.

    ``train_dataset`` / ``val_dataset`` replace ``config.data`` with ready datasets (tensors of the
    training size, with ``.classes``). ``step_probe`` adds measurements to the logged steps
    (:mod:`inception_resnet.training.probes`). Under torchrun every process calls this; only rank 0 writes files.
    """
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    config = config.resolved()
    ctx = init_distributed(config.device)
    stop = StopRequest()
    settings = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    trainer = Trainer(config, ctx, stop, step_probe)
    try:
        return trainer.run(train_dataset, val_dataset)
    finally:
        trainer.release()
        torch.set_num_threads(settings[0])
        torch.use_deterministic_algorithms(settings[1])
        torch.backends.cudnn.benchmark = settings[2]
        shutdown(ctx)
