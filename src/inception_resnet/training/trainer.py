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
saved (:class:`~.control.NonFiniteWeightsError`, naming the newest finite checkpoint). The run directory is
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

import dataclasses
import math
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .control import NonFiniteLossError, StopRequest, maybe_crash_for_test
from .distributed import (
    DistContext,
    all_reduce,
    init_distributed,
    shutdown,
    unwrap_model,
)
from .final_weights import write_final_weights
from .optimizers import set_lr
from .probes import ProbeContext, StepProbe
from .rng import restore_rng
from .rundir import RunLog
from .setup import RunSetup
from .state import RunState
from .validation import RunValidation


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



def _short(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"



class Trainer(RunSetup, RunState, RunValidation):
    """One training run (internal to :func:`train`): set-up, the epoch loop, validation, checkpoints."""

    def __init__(self, config: TrainConfig, ctx: DistContext, stop: StopRequest,
                 step_probe: StepProbe | None = None) -> None:
        self.config = config
        self.ctx = ctx
        self.stop = stop
        self.step_probe = step_probe
        self.started = time.perf_counter()
        self.elapsed_before = 0.0  # training time of earlier sessions of this run (resumed)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []  # validate_every_steps: the rows of validation.jsonl
        self.best: dict[str, Any] = {}
        self.epoch_sums: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.rng_to_restore: dict[str, Any] | None = None
        self.validation = "validation on the datasets given to train()"


    # -- the run --------------------------------------------------------------------------------------
    def run(self, train_dataset: Dataset | None, val_dataset: Dataset | None) -> TrainSummary:
        config = self.config
        ctx = self.ctx
        self.configure_runtime()
        self.prepare_run_dir()
        state = load_checkpoint(self.resume_path) if self.resume_path else None
        if state is not None:
            self.check_resume_compatible(state)
        train_dataset, val_dataset, needs_transforms = self.load_data(train_dataset, val_dataset)
        train_dataset, val_dataset = self.limit_data(train_dataset, val_dataset)
        self.clean_train = train_dataset  # data passed in ready: its own transform (attach_transforms replaces it)
        net = self.build_model(config.num_classes or len(train_dataset.classes))
        self.input_size(net)
        if needs_transforms:
            train_dataset, val_dataset = self.attach_transforms(net, train_dataset, val_dataset)
        self.check_fit(net, train_dataset, val_dataset)
        self.net = net
        self.classes = list(train_dataset.classes)
        if ctx.rank > 0:
            torch.manual_seed(config.seed + ctx.rank)  # distinct dropout masks per process
        self.setup_training(net, train_dataset, val_dataset)
        self.check_disk_space()
        if state is not None:
            self.load_state(state)
        self.write_config()
        self.log = RunLog(self.run_dir, ctx.is_main, config.tensorboard)
        # a fresh start clears the rows of a run that died early
        self.log.restart(self.history, self.global_step, self.evaluations)
        self.stop.install()
        try:
            status = self.loop()
        finally:
            self.stop.restore()
            self.log.close()
        if status == "completed" and self.ctx.is_main:
            best = self.checkpoints.best_path if self.best else None
            folder = write_final_weights(self.run_dir, best, self.last_checkpoint)
            if folder is not None:
                self.say(f"weights: {folder} (model.safetensors and config.json; --weights {self.run_dir})")
        return self.summary(status)

    # -- loop -----------------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def say(self, message: str, always: bool = True) -> None:
        """A line on stderr from rank 0; ``always=False`` ones (per-epoch lines) only with ``progress``."""
        if self.ctx.is_main and (always or self.config.progress):
            print(message, file=sys.stderr, flush=True)

    def set_train_mode(self) -> None:
        net = unwrap_model(self.net)
        net.train()
        if self.config.freeze_bn or self.config.freeze_body:
            for module in net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def loop(self) -> str:
        config = self.config
        if self.rng_to_restore is not None:
            restore_rng(self.rng_to_restore, self.ctx.device)
        if config.validate_every_steps and self.global_step == 0 and not self.evaluations:
            self.validate_at_step()  # the untrained network: the curves' first point is measured
        if self.global_step == 0 and self.step_probe is not None and self.ctx.is_main:
            self.log.step({"epoch": 0, "step": 0, "step_in_epoch": 0, "lr": self.schedule(0), "elapsed": 0.0,
                           **self.probe()})
        while self.epoch < config.epochs:
            finished = self.train_epoch()
            if not finished:
                return f"stopped by {self.stop.signal_name}"
            self.end_epoch()
            if self.epoch < config.epochs and self.stop_requested_anywhere():
                self.say(f"{self.stop.signal_name}: stopped after epoch {self.epoch}; "
                         f"checkpoint {self.last_checkpoint}")
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
        from tqdm import tqdm

        config, ctx = self.config, self.ctx
        if self.step_in_epoch == 0:
            self.epoch_sums = {"loss": 0.0, "total_loss": 0.0, "zero_fraction": 0.0, "grad_norm": 0.0,
                               "grad_norm_max": 0.0, "steps": 0, "images": 0, "seconds": 0.0, "skipped": 0,
                               "clipped_steps": 0}
        self.set_train_mode()
        self.sampler.set_epoch(self.epoch, self.step_in_epoch)
        self.train_set.epoch = self.epoch
        batches = iter(self.train_loader)
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, unit="step", dynamic_ncols=True,
                   desc=f"epoch {self.epoch + 1}/{config.epochs}", disable=not (ctx.is_main and config.progress),
                   leave=False)
        window: list[float] = []
        tick = time.perf_counter()
        try:
            while self.step_in_epoch < self.steps_per_epoch:
                stats, images = self.train_step(batches)
                now = time.perf_counter()
                self.epoch_sums["seconds"] += now - tick
                tick = now
                window.append(stats["loss"])
                self.account(stats, images)
                rate = self.epoch_sums["images"] / max(self.epoch_sums["seconds"], 1e-9)
                bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{rate:.1f}", refresh=False)
                bar.update(1)
                if config.log_every_steps and self.global_step % config.log_every_steps == 0:
                    self.log_step(stats, sum(window) / len(window), rate)
                    window = []
                    tick = time.perf_counter()  # the log (and a step probe) is not training time
                maybe_crash_for_test(ctx, self.global_step)
                if self.validation_due():
                    self.validate_at_step()
                    tick = time.perf_counter()  # validation is not training time
                if stats["stop"]:
                    self.stop.signal_name = self.stop.signal_name or "a signal on another process"
                    path = self.save_checkpoint()
                    self.say(f"{self.stop.signal_name}: stopped at epoch {self.epoch + 1}, step {self.global_step}; "
                             f"checkpoint {path}")
                    return False
                every = config.checkpoint_every_steps
                if every and self.global_step % every == 0 and self.step_in_epoch < self.steps_per_epoch:
                    self.save_checkpoint()
        finally:
            bar.close()
            self.epoch_sums["skipped"] += int(getattr(self.train_loader, "skipped", 0))
        return True

    def train_step(self, batches: Iterator) -> tuple[dict[str, Any], int]:
        """One optimiser step over ``accum_steps`` micro-batches; returns the step's statistics."""
        config, runner = self.config, self.runner
        lr = self.schedule(self.global_step)
        set_lr(self.optimizer, lr)
        sums = torch.zeros(3, device=self.ctx.device)
        images_seen = 0
        for micro in range(config.accum_steps):
            try:
                images, labels = next(batches)
            except StopIteration:
                raise RuntimeError(
                    f"the training data ran out in epoch {self.epoch + 1} after {self.step_in_epoch} steps: "
                    "too many unreadable images were skipped; remove or replace the files the warnings name"
                ) from None
            images, labels = runner.prepare(images, labels)
            main, total, zero = runner.forward_backward(images, labels, sync=micro == config.accum_steps - 1)
            sums += torch.stack([main, total, zero]) / config.accum_steps
            images_seen += labels.numel()
        grad_norm = runner.unscale_and_clip()
        stop_flag = 1.0 if self.stop.requested else 0.0
        packed = torch.cat([sums, torch.stack([grad_norm.float().to(sums.device),
                                               torch.tensor(stop_flag, device=sums.device),
                                               torch.tensor(float(images_seen), device=sums.device)])])
        all_reduce(packed, self.ctx)
        world = self.ctx.world_size
        main_loss, total_loss, zero_fraction, grad_sum, stop_sum, images_total = packed.tolist()
        stats = {"loss": main_loss / world, "total_loss": total_loss / world, "zero_fraction": zero_fraction / world,
                 "grad_norm": grad_sum / world, "lr": lr, "stop": stop_sum > 0}
        stats["clipped"] = bool(config.clip_grad_norm) and stats["grad_norm"] > config.clip_grad_norm
        fp16 = runner.scaler is not None
        if not math.isfinite(stats["total_loss"]) or (not fp16 and not math.isfinite(stats["grad_norm"])):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(self.non_finite_message(stats))
        runner.apply()
        self.global_step += 1
        self.step_in_epoch += 1
        if self.ema is not None:
            self.ema.update(self.net, self.global_step)
        return stats, int(images_total)

    def non_finite_message(self, stats: dict[str, Any]) -> str:
        what = "loss" if not math.isfinite(stats["total_loss"]) else "gradient norm"
        value = stats["total_loss"] if what == "loss" else stats["grad_norm"]
        last = self.newest_checkpoint()
        where = (f"the newest checkpoint is {last} (intact, finite weights); resume from it with --resume {last} "
                 "after lowering the learning rate (--lr) or adding warm-up (--warmup-epochs)") if last else \
            "no checkpoint was written yet; lower the learning rate (--lr) or add warm-up (--warmup-epochs)"
        return (f"training stopped: the {what} became {value} at epoch {self.epoch + 1}, step "
                f"{self.global_step + 1} (step {self.step_in_epoch + 1} of the epoch); the weights were not "
                f"updated with it. {where}")

    def account(self, stats: dict[str, Any], images: int) -> None:
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

    def log_step(self, stats: dict[str, Any], window_loss: float, rate: float) -> None:
        row = {
            "epoch": self.epoch + 1, "step": self.global_step, "step_in_epoch": self.step_in_epoch,
            "loss": stats["loss"], "loss_window": window_loss, "total_loss": stats["total_loss"],
            "grad_norm": stats["grad_norm"], "clipped": stats["clipped"], "lr": stats["lr"],
            "zero_fraction": stats["zero_fraction"], "images_per_second": rate, "elapsed": self.elapsed(),
        }
        if self.step_probe is not None and self.ctx.is_main:
            row.update(self.probe())
        self.log.step(row)

    def probe(self) -> dict[str, Any]:
        """The step probe's values for the current step (the network back in training mode afterwards)."""
        net = unwrap_model(self.net)
        context = ProbeContext(net=net, step=self.global_step, epoch=self.epoch, device=self.ctx.device,
                               val_dataset=self.val_loader.dataset if self.val_loader is not None else None,
                               val_loader=self.val_loader, config=self.config)
        try:
            return dict(self.step_probe(context))
        finally:
            self.set_train_mode()

    def end_epoch(self) -> None:
        config = self.config
        sums = self.epoch_sums
        steps = max(1, sums["steps"])
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.global_step,
            "train_loss": sums["loss"] / steps,
            "train_total_loss": sums["total_loss"] / steps,
            "lr": self.schedule(max(0, self.global_step - 1)),
            "images_per_second": sums["images"] / max(sums["seconds"], 1e-9),
            "epoch_seconds": sums["seconds"],
            "zero_fraction": sums["zero_fraction"] / steps,
            "grad_norm": sums["grad_norm"] / max(1, steps - sums.get("overflow_steps", 0)),
            "overflow_steps": sums.get("overflow_steps", 0),
            "grad_norm_max": sums["grad_norm_max"],
            "clipped_steps": sums.get("clipped_steps", 0),
            "train_skipped": sums["skipped"],
        }
        last_epoch = self.epoch + 1 == config.epochs
        validate = (self.epoch + 1) % config.validate_every_epochs == 0 or last_epoch
        results = self.epoch_results() if validate else {}
        row.update(results)
        row["elapsed"] = self.elapsed()
        self.history.append(row)
        metric = row.get("ema_val_top1_error", row.get("val_top1_error"))
        is_best = metric is not None and (not self.best or metric < self.best["top1_error"])
        if is_best:
            top5 = row.get("ema_val_top5_error", row.get("val_top5_error"))
            self.best = {"epoch": self.epoch + 1, "top1_error": metric, "top5_error": top5}
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_sums = {}
        if self.ctx.is_main:
            self.log.epoch(self.history)
            self.say(self.epoch_line(row), always=False)
        self.save_checkpoint(is_best=is_best)

    def epoch_line(self, row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']}/{self.config.epochs}", f"loss {row['train_loss']:.4f}",
                 f"lr {row['lr']:.4g}", f"{row['images_per_second']:.1f} img/s",
                 f"zeros {100 * row['zero_fraction']:.1f}%"]
        if "val_top1_error" in row:
            parts.append(f"val top-1/top-5 error {_short(row['val_top1_error'])}/{_short(row['val_top5_error'])}%")
        if "ema_val_top1_error" in row:
            parts.append(f"EMA {_short(row['ema_val_top1_error'])}/{_short(row['ema_val_top5_error'])}%")
        return " | ".join(parts)

    def summary(self, status: str) -> TrainSummary:
        epochs = len(self.history)
        images = sum(row.get("images_per_second", 0.0) * row.get("epoch_seconds", 0.0) for row in self.history)
        seconds = sum(row.get("epoch_seconds", 0.0) for row in self.history)
        exit_code = 128 + self.stop.signal_number if status.startswith("stopped") and self.stop.signal_number else 0
        return TrainSummary(
            run_dir=str(self.run_dir),
            status=status,
            epochs_completed=epochs,
            global_step=self.global_step,
            history=list(self.history),
            best_epoch=self.best.get("epoch"),
            best_top1_error=self.best.get("top1_error"),
            best_top5_error=self.best.get("top5_error"),
            seconds=self.elapsed(),
            images_per_second=images / seconds if seconds > 0 else 0.0,
            last_checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
            best_checkpoint=str(self.checkpoints.best_path) if self.best else None,
            config=self.config.to_dict(),
            chance_loss=math.log(len(self.classes)),
            exit_code=exit_code,
            evaluations=list(self.evaluations),
        )




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
    settings = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.benchmark)
    trainer = Trainer(config, ctx, stop, step_probe)
    try:
        return trainer.run(train_dataset, val_dataset)
    finally:
        trainer.release_run_dir()
        torch.set_num_threads(settings[0])
        torch.use_deterministic_algorithms(settings[1])
        torch.backends.cudnn.benchmark = settings[2]
        shutdown(ctx)

