"""Training: the paper's recipe (and an SGD baseline), resumable to the step, in one process or under torchrun.

``train(TrainConfig(...))`` (or ``inception-resnet train``) trains a registered model and returns a
:class:`TrainSummary`. Every setting is a field of :class:`TrainConfig`; the ones left at ``None`` take the
value of the recipe (:data:`RECIPES`), and the fully resolved configuration is written to the run directory.

Recipe ``paper``: :class:`~inception_resnet.optim.RMSpropTF` (decay 0.9, momentum 0.9, epsilon 1.0), learning
rate 0.045 per 32 images (TF-slim's and research/inception's per-replica batch: the paper's replicas each
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
    steps.jsonl          every ``log_every_steps`` steps: loss, gradient norm, lr, zero fraction
    checkpoints/         last-e<epoch>-s<step>.pt (the newest ``keep_last``), best.pt
    tensorboard/         the same scalars, when the tensorboard package is installed

Exact resumption: checkpoints (every epoch, and every ``checkpoint_every_steps`` steps) hold the model,
optimizer, averaged weights, grad scaler, epoch and step, every process's torch/CUDA/numpy/python random
state and the epoch's running sums. The data order is a pure function of (seed, epoch)
(:class:`~inception_resnet.distributed.GlobalBatchSampler`) and each image's random augmentation a pure
function of (seed, epoch, index), independent of workers; so on the CPU in deterministic mode a run
killed anywhere and resumed ends with bit-identical weights to an uninterrupted one.

Faults: SIGTERM/SIGINT finish the current step, save a checkpoint and return (the CLI exits with
128 + signal number); a NaN or infinite loss raises :class:`NonFiniteLossError` before the weights are
updated, naming the epoch, the step and the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import json
import math
import os
import random
import signal
import sys
import threading
import time
import typing
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .checkpoint import FORMAT, FORMAT_VERSION, CheckpointManager, load_checkpoint
from .distributed import (
    DistContext,
    GlobalBatchSampler,
    all_reduce,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
    restart_count,
    shutdown,
    unwrap_model,
    wrap_ddp,
)
from .ema import ModelEma
from .network import InceptionNet
from .optim import NO_DECAY_CHOICES, SCHEDULES, LRSchedule, build_optimizer, param_groups, scale_lr, set_lr

PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("rmsprop_tf", "sgd")
CRASH_ENV = "INCEPTION_RESNET_TEST_CRASH"  # "<rank>:<global step>:<marker file>": SIGKILL once (tests)

RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(
        optimizer="rmsprop_tf", lr=0.045, reference_batch_size=32, momentum=0.9, nesterov=False,
        rmsprop_decay=0.9, rmsprop_eps=1.0, weight_decay=4e-5, no_decay="norm", schedule="step",
        decay_rate=0.94, decay_epochs=2.0, warmup_epochs=0.0, min_lr=0.0, label_smoothing=0.1,
        clip_grad_norm=2.0, drop_rate=0.2, aux_loss_weight=None, ema_decay=0.9999, ema_warmup=True,
    ),
    "sgd": dict(
        optimizer="sgd", lr=0.1, reference_batch_size=256, momentum=0.9, nesterov=True,
        rmsprop_decay=0.9, rmsprop_eps=1.0, weight_decay=1e-4, no_decay="norm_and_bias", schedule="cosine",
        decay_rate=0.94, decay_epochs=2.0, warmup_epochs=5.0, min_lr=0.0, label_smoothing=0.1,
        clip_grad_norm=0.0, drop_rate=0.2, aux_loss_weight=None, ema_decay=0.9999, ema_warmup=True,
    ),
}


def _opt(default: Any, help: str) -> Any:
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every setting of a training run; ``None`` means the recipe's (or the model's / data's) value.

    Build it with keywords, from a dict (:meth:`from_dict`, unknown keys are an error) or from the command
    line (every field is a ``--flag``). :meth:`resolved` fills in the recipe.
    """

    # what to train
    model: str = _opt("inception_v4", "registered model name (see `inception-resnet models`)")
    num_classes: int | None = _opt(None, "classifier outputs (default: the number of classes in the data)")
    in_chans: int = _opt(3, "input channels of the model; images are converted (grey <-> RGB) to match")
    input_size: int | None = _opt(None, "training and validation image size (default: the model's, 299)")
    width_multiplier: float | None = _opt(None, "model option: scale every layer's channels")
    aux_logits: bool | None = _opt(None, "model option: build the auxiliary classifier")
    residual_scale: float | None = _opt(None, "model option: scale of the residual branches (Inception-ResNet)")
    model_options: dict = _opt({}, "further model options, passed to create_model")
    pretrained: str | None = _opt(None, "weights to start from (anything create_model(pretrained=) takes); "
                                        "a classifier of another size is replaced by a new one")
    freeze_body: bool = _opt(False, "train only the classifier(s); the body's BatchNorm statistics stay fixed")
    freeze_bn: bool = _opt(False, "use and keep the BatchNorm running statistics (BatchNorm in eval mode)")
    sync_bn: bool = _opt(False, "SyncBatchNorm across processes (CUDA only)")
    # data
    data: str | None = _opt(None, "image folder, 'fashion-mnist' (default), 'mnist', or 'synthetic:N[:CLASSES]'")
    max_train_images: int | None = _opt(None, "train on a class-balanced subset of this many images")
    max_val_images: int | None = _opt(None, "validate on a class-balanced subset of this many images")
    val_fraction: float = _opt(0.1, "without a val/ split in the data folder: the share of the training images "
                                    "held out for validation (class-balanced, chosen by the seed; 0: none)")
    num_workers: int | None = _opt(None, "data loader processes (default: 0 on a machine of <= 2 cores, else "
                                         "up to 8 per process)")
    color_distortion: bool = _opt(True, "random colour distortion in the training augmentation")
    # recipe
    recipe: str = _opt("paper", "hyper-parameter defaults: 'paper' (RMSProp, TF semantics) or 'sgd'")
    epochs: int = _opt(10, "number of epochs")
    batch_size: int = _opt(32, "GLOBAL batch per optimiser step (split over processes and accumulation)")
    accum_steps: int = _opt(1, "gradient accumulation: micro-batches per optimiser step")
    optimizer: str | None = _opt(None, "rmsprop_tf or sgd")
    lr: float | None = _opt(None, "learning rate for reference_batch_size images (paper: 0.045 per 32)")
    reference_batch_size: int | None = _opt(None, "the batch size `lr` is given for")
    scale_lr: bool = _opt(True, "scale lr linearly from reference_batch_size to batch_size")
    momentum: float | None = _opt(None, "momentum (RMSProp's and SGD's)")
    nesterov: bool | None = _opt(None, "Nesterov momentum (SGD)")
    rmsprop_decay: float | None = _opt(None, "RMSProp decay of the mean square (TF's `decay`)")
    rmsprop_eps: float | None = _opt(None, "RMSProp epsilon, inside the square root (paper: 1.0)")
    weight_decay: float | None = _opt(None, "L2 weight decay")
    no_decay: str | None = _opt(None, "parameters exempt from weight decay: norm, norm_and_bias or none")
    schedule: str | None = _opt(None, "learning-rate schedule: step (staircase exponential), cosine, constant")
    decay_rate: float | None = _opt(None, "step schedule: factor per decay interval (paper: 0.94)")
    decay_epochs: float | None = _opt(None, "step schedule: epochs per decay interval (paper: 2)")
    staircase: bool = _opt(True, "step schedule: decay in steps (else continuously)")
    warmup_epochs: float | None = _opt(None, "linear warm-up length in epochs")
    min_lr: float | None = _opt(None, "cosine schedule: final learning rate")
    label_smoothing: float | None = _opt(None, "label smoothing")
    clip_grad_norm: float | None = _opt(None, "clip gradients to this global norm (0: no clipping)")
    drop_rate: float | None = _opt(None, "dropout before the classifier (paper: keep 0.8, i.e. 0.2)")
    aux_loss_weight: float | None = _opt(None, "weight of each auxiliary classifier's loss (default: the model's, "
                                               "0.4 as TF-slim, 0.3 per head for GoogLeNet)")
    ema_decay: float | None = _opt(None, "decay of the weight EMA (0: no EMA)")
    ema_warmup: bool | None = _opt(None, "adjust the EMA decay for short runs: min(decay, (1+n)/(10+n))")
    # execution
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _opt("fp32", "fp32, bf16 (autocast) or fp16 (autocast with a gradient scaler)")
    channels_last: bool = _opt(False, "channels-last memory format")
    compile: bool = _opt(False, "torch.compile the training step's model")
    deterministic: bool = _opt(False, "deterministic algorithms (bit-exact resumption on the CPU)")
    threads: int | None = _opt(None, "torch CPU threads per process")
    seed: int = _opt(0, "seed of the initialisation, the data order and the augmentation")
    # outputs
    run_dir: str | None = _opt(None, "run directory (default: runs/<model>-<recipe>-<time>)")
    resume: str | None = _opt(None, "'auto' (newest intact checkpoint of run_dir, if any) or a checkpoint file")
    checkpoint_every_steps: int = _opt(0, "also checkpoint every N optimiser steps (0: only every epoch)")
    keep_last: int = _opt(3, "rolling checkpoints to keep (best.pt is kept besides)")
    log_every_steps: int = _opt(10, "write steps.jsonl every N steps (0: never)")
    validate_every_epochs: int = _opt(1, "validate every N epochs (and after the last)")
    val_batch_size: int | None = _opt(None, "validation batch per process (default: twice the training one)")
    progress: bool = _opt(True, "progress bar and per-epoch lines on stderr/stdout")
    tensorboard: bool = _opt(True, "write TensorBoard scalars when tensorboard is installed")

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from a mapping; an unknown key is a ValueError naming the closest known ones."""
        known = cls.field_names()
        unknown = [k for k in values if k not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, known, n=3)
                hints.append(f"{key!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            raise ValueError(f"unknown training setting(s): {', '.join(hints)}. Known settings: {', '.join(known)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def resolved(self) -> TrainConfig:
        """A copy with every recipe value filled in and everything checked (ValueError saying what to fix)."""
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        values = dict(RECIPES[self.recipe])
        if self.recipe == "sgd":
            values["warmup_epochs"] = min(values["warmup_epochs"], self.epochs / 10)
        changes = {k: v for k, v in values.items() if getattr(self, k) is None}
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise a ValueError for a value out of range (on a resolved config)."""
        choices = {
            "precision": PRECISIONS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "no_decay": NO_DECAY_CHOICES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        at_least_one = ["epochs", "batch_size", "accum_steps", "keep_last", "validate_every_epochs", "in_chans"]
        at_least_one += [n for n in ("max_train_images", "max_val_images", "val_batch_size", "num_classes",
                                     "input_size", "threads") if getattr(self, n) is not None]
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_every_steps", "log_every_steps", "weight_decay", "clip_grad_norm", "warmup_epochs",
                     "aux_loss_weight", "min_lr", "lr"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        for name in ("label_smoothing", "drop_rate", "ema_decay", "momentum", "rmsprop_decay"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value}")
        if self.resume is not None and self.resume != "auto" and not Path(self.resume).exists():
            raise FileNotFoundError(f"checkpoint to resume from not found: {self.resume} (or pass --resume auto)")

    def model_kwargs(self) -> dict[str, Any]:
        """The options ``create_model`` gets besides the name, classes, channels and dropout."""
        options = dict(self.model_options)
        for name in ("width_multiplier", "aux_logits", "residual_scale"):
            if getattr(self, name) is not None:
                options[name] = getattr(self, name)
        return options


def field_help() -> dict[str, str]:
    """Each setting's one-line description (the CLI's help texts)."""
    return {f.name: f.metadata.get("help", "") for f in fields(TrainConfig)}


def field_types() -> dict[str, Any]:
    """Each setting's type annotation, resolved."""
    return typing.get_type_hints(TrainConfig)


def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The configuration a run directory recorded (``config.json``'s ``config``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a training run directory?")
    return dict(json.loads(path.read_text())["config"])


def config_for_resume(overrides: Mapping[str, Any]) -> TrainConfig:
    """The recorded configuration of the run being resumed, updated with ``overrides`` (which hold ``resume``).

    ``resume`` is ``"auto"`` (then ``run_dir`` must be given) or a checkpoint file (its run directory is
    the one above ``checkpoints/``).
    """
    resume = overrides.get("resume")
    run_dir = overrides.get("run_dir")
    if resume is None:
        raise ValueError("config_for_resume needs a resume setting")
    if resume != "auto":
        checkpoint = Path(resume)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint to resume from not found: {checkpoint}")
        run_dir = run_dir or str(checkpoint.resolve().parent.parent)
    elif run_dir is None:
        raise ValueError("--resume auto needs --run-dir (the run directory to continue)")
    base = load_run_config(run_dir) if (Path(run_dir) / "config.json").is_file() else {}
    return TrainConfig.from_dict({**base, **overrides, "run_dir": run_dir})


# -- data ----------------------------------------------------------------------------------------------
class SyntheticDataset(Dataset):
    """``synthetic:N[:CLASSES]``: deterministic noise images with a class-dependent bright band (smoke tests).

    Images are generated at the training size, already normalised, so no transform applies.
    """

    def __init__(self, size: int, num_classes: int, in_chans: int, image_size: int, seed: int = 0) -> None:
        if size < 1 or num_classes < 2:
            raise ValueError("synthetic data needs at least 1 image and 2 classes (synthetic:N[:CLASSES])")
        self.size = size
        self.in_chans = in_chans
        self.image_size = image_size
        self.seed = seed
        self.classes = [f"class_{k}" for k in range(num_classes)]
        self.targets = [i % num_classes for i in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = self.targets[index]
        image = 0.5 * torch.randn(self.in_chans, self.image_size, self.image_size, generator=generator)
        band = max(1, self.image_size // len(self.classes))
        image[:, label * band : (label + 1) * band, :] += 1.0
        return image, label

    def __repr__(self) -> str:
        return f"SyntheticDataset({self.size} images, {len(self.classes)} classes, {self.image_size}px)"


def parse_synthetic(spec: str | None) -> tuple[int, int] | None:
    """``(images, classes)`` of a ``synthetic:N[:CLASSES]`` data spec, else None."""
    if spec is None or not str(spec).startswith("synthetic"):
        return None
    parts = str(spec).split(":")
    try:
        size = int(parts[1]) if len(parts) > 1 else 64
        classes = int(parts[2]) if len(parts) > 2 else 10
    except ValueError:
        raise ValueError(f"bad synthetic data spec {spec!r}; write synthetic:N or synthetic:N:CLASSES") from None
    return size, classes


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch's, numpy's and Python's global generators for a block, then put their states back."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class PerSampleSeeds(Dataset):
    """A training dataset whose random augmentation of item ``i`` depends only on ``(seed, epoch, i)``.

    That makes the augmentation independent of the worker count and of where a resumed run restarts,
    and leaves the global generators (dropout) untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0
        self.classes = list(dataset.classes)
        self.targets = getattr(dataset, "targets", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        with isolated_rng(((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) % 2**63):
            return self.dataset[index]


def default_workers(world_size: int) -> int:
    cores = os.cpu_count() or 1
    if cores <= 2:
        return 0
    return max(1, min(8, cores // max(1, world_size) - 1))


# -- the model as trained ------------------------------------------------------------------------------
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
    logits: torch.Tensor, aux: list[torch.Tensor], labels: torch.Tensor, label_smoothing: float,
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
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
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
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
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


# -- errors, signals, summary --------------------------------------------------------------------------
class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the weights were not updated with it."""


class StopRequest:
    """Turns SIGTERM / SIGINT into a flag checked after every step (a second SIGINT interrupts at once)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self.signal_number = 0
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_number = signum
        self.signal_name = signal.Signals(signum).name

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


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


# -- run files -----------------------------------------------------------------------------------------
class RunLog:
    """The run directory's metric files (rank 0 only): metrics.csv/jsonl, steps.jsonl, TensorBoard."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass
            else:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    @property
    def metrics_jsonl(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def steps_jsonl(self) -> Path:
        return self.run_dir / "steps.jsonl"

    def restart(self, history: list[dict[str, Any]], last_step: int) -> None:
        """Rewrite the files to what the checkpoint knows (drops rows a killed run wrote after it)."""
        if not self.enabled:
            return
        self._write_rows(history)
        kept = []
        if self.steps_jsonl.is_file():
            for line in self.steps_jsonl.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    row = json.loads(line)
                    if row.get("step", 0) <= last_step:
                        kept.append(line)
        self.steps_jsonl.write_text("".join(line + "\n" for line in kept))

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        self.metrics_jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        with open(self.run_dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def epoch(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        self._write_rows(history)
        if self.writer is not None:
            row = history[-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and value is not None:
                    self.writer.add_scalar(f"epoch/{key}", value, row["epoch"])
            self.writer.flush()

    def step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.steps_jsonl, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key in ("loss", "grad_norm", "lr", "zero_fraction"):
                if row.get(key) is not None:
                    self.writer.add_scalar(f"step/{key}", row[key], row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's torch (CPU and CUDA), numpy and Python random states, as checkpoint-safe values."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))


def _maybe_crash_for_test(ctx: DistContext, global_step: int) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    rank, step, marker = spec.split(":", 2)
    if int(rank) == ctx.rank and int(step) == global_step and not Path(marker).exists():
        Path(marker).write_text(f"killed rank {rank} at step {step}\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _short(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


# -- the trainer ---------------------------------------------------------------------------------------
class Trainer:
    """One training run (internal to :func:`train`): set-up, the epoch loop, validation, checkpoints."""

    def __init__(self, config: TrainConfig, ctx: DistContext, stop: StopRequest) -> None:
        self.config = config
        self.ctx = ctx
        self.stop = stop
        self.started = time.perf_counter()
        self.elapsed_before = 0.0  # training time of earlier sessions of this run (resumed)
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.epoch_sums: dict[str, float] = {}
        self.last_checkpoint: Path | None = None
        self.rng_to_restore: dict[str, Any] | None = None
        self.validation = "validation on the datasets given to train()"

    # -- set-up -----------------------------------------------------------------------------------------
    def configure_runtime(self) -> None:
        config = self.config
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)

    def prepare_run_dir(self) -> None:
        config = self.config
        run_dir = config.run_dir
        if run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = broadcast_object(f"runs/{config.model}-{config.recipe}-{stamp}", self.ctx)
        self.run_dir = Path(run_dir)
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", config.keep_last,
                                             clean_temporary=self.ctx.is_main)
        decision = self.resume_decision(config.resume) if self.ctx.is_main else None
        error, self.resume_path = broadcast_object(decision, self.ctx)  # one decision for every process
        if error:
            raise ValueError(error)
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        barrier(self.ctx)

    def resume_decision(self, resume: str | None) -> tuple[str | None, str | None]:
        """(an error to raise, the checkpoint to resume from), decided by rank 0."""
        if resume is None and restart_count() > 0:
            resume = "auto"  # torchrun restarted the workers after a failure: continue, never start over
        if resume is None and (self.checkpoints.checkpoints() or self.checkpoints.best_path.exists()):
            return (f"the run directory {self.run_dir} already holds checkpoints of an earlier run; pass "
                    "--resume auto to continue it, or choose a new --run-dir"), None
        if resume is None or resume != "auto":
            return None, resume
        path, bad = self.checkpoints.latest_valid()
        for bad_path, reason in bad:
            warnings.warn(f"skipping damaged checkpoint {bad_path}: {reason}", stacklevel=2)
            os.replace(bad_path, bad_path.with_name(bad_path.name + ".damaged"))
        return None, None if path is None else str(path)

    def build_model(self, num_classes: int) -> nn.Module:
        from .registry import create_model

        config = self.config
        net = create_model(config.model, num_classes=num_classes, in_chans=config.in_chans,
                           drop_rate=config.drop_rate, **config.model_kwargs())
        if config.pretrained and self.resume_path is None:
            for note in load_pretrained(net, config.pretrained):
                self.say(f"pretrained weights: {note}")
        if config.freeze_body:
            freeze_body(net)
        return net

    def input_size(self, net: nn.Module) -> int:
        metadata = getattr(net, "metadata", None)
        size = self.config.input_size or (metadata.input_size[-1] if metadata is not None else 299)
        minimum = getattr(net, "min_input_size", 1)
        if size < minimum:
            raise ValueError(
                f"{self.config.model} needs inputs of at least {minimum}x{minimum}; input_size {size} is too "
                f"small (use --input-size {minimum} or more)"
            )
        return size

    def load_data(
        self, train_dataset: Dataset | None, val_dataset: Dataset | None
    ) -> tuple[Dataset, Dataset | None, bool]:
        """The training and validation sets before any transform; the flag says whether transforms apply.

        Datasets given by the caller and synthetic data are used as they are; data from
        :func:`inception_resnet.data.build_dataset` gets the model's transforms once the model exists.
        """
        config = self.config
        synthetic = parse_synthetic(config.data)
        if train_dataset is not None:
            if val_dataset is None:
                self.validation = "no validation (train() was given no validation set)"
            return train_dataset, val_dataset, False
        if synthetic is not None:
            count, classes = synthetic
            size = config.input_size or 299
            train = SyntheticDataset(count, classes, config.in_chans, size, seed=config.seed)
            val = SyntheticDataset(max(classes, count // 4), classes, config.in_chans, size, seed=config.seed + 1)
            self.validation = f"validation on {len(val)} synthetic images of their own (seed {config.seed + 1})"
            return train, val, False
        from .data import train_val_datasets

        train, val, self.validation = train_val_datasets(config.data, config.val_fraction, config.seed)
        self.say(self.validation)
        return train, val, True

    def attach_transforms(
        self, net: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None
    ) -> tuple[Dataset, Dataset | None]:
        """The model's training augmentation and evaluation preprocessing, at the configured size."""
        from .transforms import eval_transform_for, train_transform

        config = self.config
        size = self.input_size(net)
        metadata = net.metadata
        train_tf = train_transform(size, config.in_chans, mean=metadata.mean, std=metadata.std,
                                   color_distortion=config.color_distortion)
        train_dataset = train_dataset.with_transform(train_tf)
        if val_dataset is not None:
            val_dataset = val_dataset.with_transform(eval_transform_for(net, input_size=size))
        return train_dataset, val_dataset

    def limit_data(self, train_dataset: Dataset, val_dataset: Dataset | None) -> tuple[Dataset, Dataset | None]:
        from .data import subset

        config = self.config
        for name, dataset in (("training", train_dataset), ("validation", val_dataset)):
            if dataset is not None and not hasattr(dataset, "classes"):
                raise ValueError(f"the {name} dataset needs a .classes list (one name per label)")
        if config.max_train_images:
            train_dataset = subset(train_dataset, config.max_train_images, config.seed)
        if val_dataset is not None and config.max_val_images:
            val_dataset = subset(val_dataset, config.max_val_images, config.seed)
        return train_dataset, val_dataset

    def check_fit(self, net: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None) -> None:
        """Model/data mismatches (classes, channels, size) as clear errors, before the first step."""
        classes = list(train_dataset.classes)
        if val_dataset is not None and list(val_dataset.classes) != classes:
            raise ValueError(
                f"the training and validation data have different classes ({len(classes)} vs "
                f"{len(val_dataset.classes)}); both splits need the same class folders"
            )
        outputs = getattr(net, "num_classes", len(classes))
        if outputs != len(classes):
            raise ValueError(
                f"{self.config.model} has {outputs} outputs but the data has {len(classes)} classes; drop "
                f"--num-classes (it defaults to the data's) or use data with {outputs} classes"
            )
        with isolated_rng(self.config.seed):
            image = first_image(train_dataset)
        if image.dim() != 3:
            raise ValueError(f"the data yields images of shape {list(image.shape)}; expected C x H x W tensors")
        if image.shape[0] != self.config.in_chans:
            raise ValueError(
                f"the data yields {image.shape[0]}-channel images but the model takes {self.config.in_chans}; "
                f"pass --in-chans {image.shape[0]} or convert the images"
            )
        minimum = getattr(net, "min_input_size", 1)
        if min(image.shape[-2:]) < minimum:
            raise ValueError(
                f"the data yields {image.shape[-2]}x{image.shape[-1]} images but {self.config.model} needs at "
                f"least {minimum}x{minimum}; resize them (e.g. --input-size {minimum})"
            )

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
        if state is not None:
            self.load_state(state)
        self.write_config()
        self.log = RunLog(self.run_dir, ctx.is_main, config.tensorboard)
        self.log.restart(self.history, self.global_step)  # a fresh start clears rows of a run that died early
        self.stop.install()
        try:
            status = self.loop()
        finally:
            self.stop.restore()
            self.log.close()
        return self.summary(status)

    def setup_training(self, net: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None) -> None:
        """Device, wrappers, sampler and loaders, optimizer, schedule, EMA."""
        from .data import build_loader

        config, ctx = self.config, self.ctx
        net.to(ctx.device)
        if config.channels_last:
            net.to(memory_format=torch.channels_last)
        self.train_set = PerSampleSeeds(train_dataset, config.seed)
        self.sampler = GlobalBatchSampler(
            len(train_dataset), config.batch_size, world_size=ctx.world_size, rank=ctx.rank,
            accum_steps=config.accum_steps, seed=config.seed,
        )
        workers = default_workers(ctx.world_size) if config.num_workers is None else config.num_workers
        pin = ctx.device.type == "cuda"
        self.train_loader = build_loader(self.train_set, self.sampler.micro_batch, sampler=self.sampler,
                                         num_workers=workers, pin_memory=pin, seed=config.seed)
        self.val_loader = None
        if val_dataset is not None and ctx.is_main:
            val_batch = config.val_batch_size or 2 * self.sampler.micro_batch
            self.val_loader = build_loader(val_dataset, val_batch, num_workers=workers, pin_memory=pin,
                                           seed=config.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.peak_lr = scale_lr(config.lr, config.batch_size, config.reference_batch_size) if config.scale_lr \
            else config.lr
        self.schedule = LRSchedule(
            self.peak_lr, self.steps_per_epoch, config.epochs, kind=config.schedule, decay_rate=config.decay_rate,
            decay_epochs=config.decay_epochs, staircase=config.staircase, warmup_epochs=config.warmup_epochs,
            min_lr=config.min_lr,
        )
        groups = param_groups(net, config.weight_decay, config.no_decay)
        self.optimizer = build_optimizer(
            config.optimizer, groups, lr=self.peak_lr, momentum=config.momentum, nesterov=config.nesterov,
            rmsprop_decay=config.rmsprop_decay, rmsprop_eps=config.rmsprop_eps,
        )
        self.ema = ModelEma(net, config.ema_decay, config.ema_warmup) if config.ema_decay and ctx.is_main else None
        module: nn.Module = TrainingModule(net)
        if config.compile:
            module = torch.compile(module)
        module = wrap_ddp(module, ctx, config.sync_bn)
        self.runner = StepRunner(
            module, self.optimizer, device=ctx.device, precision=config.precision,
            channels_last=config.channels_last, label_smoothing=config.label_smoothing,
            aux_loss_weight=(config.aux_loss_weight if config.aux_loss_weight is not None
                             else getattr(net, "aux_loss_weight", 0.4)),
            clip_grad_norm=config.clip_grad_norm,
            accum_steps=config.accum_steps,
        )
        self.train_images = len(train_dataset)
        self.val_images = len(val_dataset) if val_dataset is not None else 0

    # -- checkpoints ----------------------------------------------------------------------------------
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
            "best": dict(self.best),
            "elapsed": self.elapsed(),
            "world_size": self.ctx.world_size,
            "rng": rng_states,
            "torch_version": str(torch.__version__),
        }

    def save_checkpoint(self, is_best: bool = False) -> Path | None:
        """Write a checkpoint (rank 0); every rank takes part, as the random states are gathered."""
        rng_states = gather_objects(capture_rng(self.ctx.device), self.ctx)
        path = None
        if self.ctx.is_main:
            epoch_label = self.epoch + (1 if self.step_in_epoch else 0)  # the 1-based epoch the step belongs to
            path = self.checkpoints.save(self.checkpoint_state(rng_states), epoch=epoch_label,
                                         step=self.global_step, is_best=is_best)
        shared = broadcast_object(str(path) if path else None, self.ctx)
        self.last_checkpoint = Path(shared) if shared else None
        return self.last_checkpoint

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
        document = {"config": config.to_dict(), "derived": derived}
        path = self.run_dir / "config.json"
        tmp = path.with_name(".config.json.tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, path)

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
                               "grad_norm_max": 0.0, "steps": 0, "images": 0, "seconds": 0.0, "skipped": 0}
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
                _maybe_crash_for_test(ctx, self.global_step)
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
        last = self.last_checkpoint or (self.resume_path and Path(self.resume_path))
        where = (f"the last good checkpoint is {last} (intact); resume from it with --resume {last} after "
                 "lowering the learning rate (--lr) or adding warm-up (--warmup-epochs)") if last else \
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

    def log_step(self, stats: dict[str, Any], window_loss: float, rate: float) -> None:
        row = {
            "epoch": self.epoch + 1, "step": self.global_step, "step_in_epoch": self.step_in_epoch,
            "loss": stats["loss"], "loss_window": window_loss, "total_loss": stats["total_loss"],
            "grad_norm": stats["grad_norm"], "lr": stats["lr"], "zero_fraction": stats["zero_fraction"],
            "images_per_second": rate, "elapsed": self.elapsed(),
        }
        self.log.step(row)

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
            "train_skipped": sums["skipped"],
        }
        last_epoch = self.epoch + 1 == config.epochs
        validate = (self.epoch + 1) % config.validate_every_epochs == 0 or last_epoch
        results = self.validate() if validate else {}
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

    def validate(self) -> dict[str, Any]:
        """Top-1/top-5 error of the raw and the averaged weights (rank 0; shared with the other ranks)."""
        from .evaluate import evaluate_loader

        results: dict[str, Any] = {}
        if self.ctx.is_main and self.val_loader is not None:
            amp = self.config.precision  # fp16 runs validate under fp16 autocast (GPUs without bf16)
            with torch.random.fork_rng(devices=[self.ctx.device] if self.ctx.device.type == "cuda" else []):
                candidates = [("val", unwrap_model(self.net))]
                if self.ema is not None:
                    candidates.append(("ema_val", self.ema.module))
                for prefix, network in candidates:
                    result = evaluate_loader(network, self.val_loader, device=self.ctx.device, amp=amp,
                                             channels_last=self.config.channels_last)
                    results.update({
                        f"{prefix}_top1_error": result.top1_error, f"{prefix}_top5_error": result.top5_error,
                        f"{prefix}_loss": result.loss,
                    })
                results["val_skipped"] = result.num_skipped
            self.set_train_mode()
        return broadcast_object(results, self.ctx)

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
        )


# -- helpers -------------------------------------------------------------------------------------------
def first_image(dataset: Dataset, attempts: int = 8) -> torch.Tensor:
    """The first decodable training image (to check its shape before training)."""
    for index in range(min(attempts, len(dataset))):
        image = dataset[index][0]
        if isinstance(image, torch.Tensor):
            return image
    raise ValueError(f"none of the first {attempts} training images could be read; check the data")


def load_pretrained(net: nn.Module, source: str | os.PathLike | Mapping[str, torch.Tensor]) -> list[str]:
    """Load weights for fine-tuning: everything but a classifier whose size differs (that one stays new)."""
    from .weights import adapt_state_dict, check_compatible, read_state_dict, unwrap_state_dict

    state = unwrap_state_dict(source) if isinstance(source, Mapping) else read_state_dict(source)
    state, notes = adapt_state_dict(net, state)
    own = net.state_dict()
    heads = [getattr(net, "classifier_name", "fc"), "AuxLogits.fc"]
    replaced = []
    for prefix in heads:
        for suffix in ("weight", "bias"):
            key = f"{prefix}.{suffix}"
            if key in own and key in state and state[key].shape != own[key].shape:
                state[key] = own[key]
                replaced.append(key)
    check_compatible(net, state)
    net.load_state_dict(state)
    if replaced:
        notes.append(f"new classifier for {getattr(net, 'num_classes', '?')} classes ({', '.join(replaced)})")
    return notes


def freeze_body(net: nn.Module) -> list[str]:
    """Freeze every parameter but the classifier's (and the auxiliary classifier's); returns the trainable ones."""
    heads = (f"{getattr(net, 'classifier_name', 'fc')}.", "AuxLogits.fc.")
    trainable = []
    for name, param in net.named_parameters():
        keep = name.startswith(heads)
        param.requires_grad_(keep)
        if keep:
            trainable.append(name)
    if not trainable:
        raise ValueError("freeze_body left nothing to train: the model has no classifier (num_classes=0?)")
    return trainable


def train(
    config: TrainConfig | Mapping[str, Any],
    *,
    train_dataset: Dataset | None = None,
    val_dataset: Dataset | None = None,
) -> TrainSummary:
    """Train as ``config`` says (a :class:`TrainConfig` or a dict of its fields); see the module docstring.

    ``train_dataset`` / ``val_dataset`` replace ``config.data`` with ready datasets (tensors of the
    training size, with ``.classes``). Under torchrun every process calls this; only rank 0 writes files.
    """
    if not isinstance(config, TrainConfig):
        config = TrainConfig.from_dict(config)
    config = config.resolved()
    ctx = init_distributed(config.device)
    stop = StopRequest()
    settings = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.benchmark)
    try:
        return Trainer(config, ctx, stop).run(train_dataset, val_dataset)
    finally:
        torch.set_num_threads(settings[0])
        torch.use_deterministic_algorithms(settings[1])
        torch.backends.cudnn.benchmark = settings[2]
        shutdown(ctx)
