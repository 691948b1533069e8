"""What a run builds before its first step: :func:`set_up_run` turns a configuration into :class:`~.parts.RunParts`.

In order: the data (:mod:`.run_data`), the network (through :func:`inception_resnet.weights.create_model`,
with ``pretrained`` weights and ``freeze_body``), the check of the input size, the network's preprocessing
and the data checks, then the device, sampler and loaders, schedule, optimiser, averaged weights and the
step runner. :func:`configure_runtime` sets threads, determinism and seeds before any of it.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.loaders import build_loader
from ..data.subsets import subset
from ..models.inputs import check_min_size
from ..weights.factory import create_model
from .config import TrainConfig
from .distributed import DistContext, GlobalBatchSampler, wrap_ddp
from .ema import ModelEma
from .finetune import freeze_body, renew_classifiers
from .optimizers import LRSchedule, build_optimizer, param_groups, scale_lr
from .parts import RunParts
from .progress import RunProgress
from .rng import PerSampleSeeds
from .run_data import RunData, attach_transforms, check_fit, load_run_data
from .step import StepRunner, TrainingModule


def default_workers(world_size: int) -> int:
    """Loader workers per process: none on a machine of two cores or fewer, else up to 8 of its share."""
    cores = os.cpu_count() or 1
    if cores <= 2:
        return 0
    return max(1, min(8, cores // max(1, world_size) - 1))


def configure_runtime(config: TrainConfig, ctx: DistContext) -> None:
    """Threads, deterministic algorithms (or cuDNN's autotuner on a GPU) and every generator's seed."""
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)


def build_network(
    config: TrainConfig, classes: list[str], resume_path: str | None, say: Callable[[str], None]
) -> nn.Module:
    """The registered network for the data's ``classes``, built by ``create_model`` with ``pretrained`` weights
    (not when resuming; the loader's notes said) and ``freeze_body`` applied.

    Weights that record other classes than the data's get new classifiers: when the number is the same (five
    classes fine-tuned to five others) theirs would load, but their outputs mean the weights' classes.
    """
    pretrained = config.pretrained if resume_path is None else None
    with warnings.catch_warnings():  # a new classifier is what fine-tuning to other classes wants; noted below
        warnings.filterwarnings("ignore", message=".*classifiers do not fit")
        net = create_model(
            config.model,
            num_classes=config.num_classes or len(classes),
            in_chans=config.in_chans,
            drop_rate=config.drop_rate,
            pretrained=pretrained,
            **config.model_options,
        )
    for note in getattr(net, "load_notes", []):
        say(f"pretrained weights: {note}")
    recorded = net.metadata.extra.get("classes") if pretrained is not None else None
    if recorded is not None and list(recorded) != list(classes) and not net.new_classifiers:
        renewed = renew_classifiers(net)
        say(
            f"pretrained weights: new classifier(s) {', '.join(renewed)}: the weights were trained on other "
            f"classes ({some_names(recorded)}) than the data's ({some_names(classes)})"
        )
    # the classes are the data's from now on (the run records them), not those the weights were trained on
    net.set_metadata(extra={k: v for k, v in net.metadata.extra.items() if k != "classes"})
    if config.freeze_body:
        freeze_body(net)
    return net


def some_names(names: list, shown: int = 6) -> str:
    """The first ``shown`` names, and how many there are when there are more."""
    text = ", ".join(map(str, names[:shown]))
    return text if len(names) <= shown else f"{text}, ... ({len(names)} in all)"


def training_input_size(config: TrainConfig, net: nn.Module) -> int:
    """The side of the training images: ``input_size`` if set, else the network's default (299 without one)."""
    metadata = getattr(net, "metadata", None)
    return config.input_size or (metadata.input_size[-1] if metadata is not None else 299)


def check_input_size(config: TrainConfig, net: nn.Module) -> None:
    """A ``ValueError`` naming the minimum when the training size is below what the network accepts."""
    size = training_input_size(config, net)
    minimum = getattr(net, "min_input_size", 1)
    check_min_size(config.model, size, size, minimum, f"use --input-size {minimum} or more")


def set_up_run(
    config: TrainConfig,
    ctx: DistContext,
    progress: RunProgress,
    *,
    resume_path: str | None,
    train_dataset: Dataset | None,
    val_dataset: Dataset | None,
    say: Callable[[str], None],
) -> RunParts:
    """The run's parts, checked and on their device; ``progress`` is the run's (fresh; a checkpoint fills it
    later). ``train_dataset`` / ``val_dataset`` replace ``config.data`` when given."""
    data = load_run_data(config, train_dataset, val_dataset, say)
    net = build_network(config, list(data.train.classes), resume_path, say)
    check_input_size(config, net)
    size = training_input_size(config, net)
    if data.needs_transforms:
        attach_transforms(data, net, config, size)
    check_fit(config, net, data)
    if ctx.rank > 0:
        torch.manual_seed(config.seed + ctx.rank)  # distinct dropout masks per process
    return assemble_parts(config, ctx, net, data, size, progress)


def assemble_parts(
    config: TrainConfig, ctx: DistContext, net: nn.Module, data: RunData, size: int, progress: RunProgress
) -> RunParts:
    """Device, sampler and loaders, schedule, optimiser, averaged weights and the step runner around ``net``."""
    net.to(ctx.device)
    if config.channels_last:
        net.to(memory_format=torch.channels_last)
    train_set = PerSampleSeeds(data.train, config.seed)
    sampler = GlobalBatchSampler(
        len(data.train),
        config.batch_size,
        world_size=ctx.world_size,
        rank=ctx.rank,
        accum_steps=config.accum_steps,
        seed=config.seed,
    )
    workers = default_workers(ctx.world_size) if config.num_workers is None else config.num_workers
    pin = ctx.device.type == "cuda"
    train_loader = build_loader(
        train_set, sampler.micro_batch, sampler=sampler, num_workers=workers, pin_memory=pin, seed=config.seed
    )
    val_loader = None
    if data.val is not None and ctx.is_main:
        val_batch = config.val_batch_size or 2 * sampler.micro_batch
        val_loader = build_loader(data.val, val_batch, num_workers=workers, pin_memory=pin, seed=config.seed)
    bn_loader = None
    if config.bn_recompute_images and val_loader is not None:
        clean = subset(data.clean_train, config.bn_recompute_images, config.seed)
        bn_loader = build_loader(clean, val_loader.batch_size, num_workers=workers, pin_memory=pin, seed=config.seed)
    peak_lr = scale_lr(config.lr, config.batch_size, config.reference_batch_size) if config.scale_lr else config.lr
    schedule = LRSchedule(
        peak_lr,
        sampler.steps_per_epoch,
        config.epochs,
        kind=config.schedule,
        decay_rate=config.decay_rate,
        decay_epochs=config.decay_epochs,
        staircase=config.staircase,
        warmup_epochs=config.warmup_epochs,
        min_lr=config.min_lr,
    )
    groups = param_groups(net, config.weight_decay, config.no_decay)
    optimizer = build_optimizer(
        config.optimizer,
        groups,
        lr=peak_lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        rmsprop_decay=config.rmsprop_decay,
        rmsprop_eps=config.rmsprop_eps,
    )
    ema = ModelEma(net, config.ema_decay, config.ema_warmup) if config.ema_decay and ctx.is_main else None
    module: nn.Module = TrainingModule(net)
    if config.compile:
        module = torch.compile(module)
    module = wrap_ddp(module, ctx, config.sync_bn)
    runner = StepRunner(
        module,
        optimizer,
        device=ctx.device,
        precision=config.precision,
        channels_last=config.channels_last,
        label_smoothing=config.label_smoothing,
        aux_loss_weight=(
            config.aux_loss_weight if config.aux_loss_weight is not None else getattr(net, "aux_loss_weight", 0.4)
        ),
        clip_grad_norm=config.clip_grad_norm,
        accum_steps=config.accum_steps,
    )
    return RunParts(
        config=config,
        ctx=ctx,
        net=net,
        classes=list(data.train.classes),
        input_size=size,
        train_set=train_set,
        sampler=sampler,
        train_loader=train_loader,
        val_loader=val_loader,
        bn_loader=bn_loader,
        peak_lr=peak_lr,
        schedule=schedule,
        optimizer=optimizer,
        ema=ema,
        runner=runner,
        progress=progress,
        validation=data.validation,
        train_images=len(data.train),
        val_images=len(data.val) if data.val is not None else 0,
    )
