"""What a run does before its first step (the :class:`RunSetup` part of the trainer): runtime settings, the run
directory and the resume decision, the model, the data and its checks, loaders, optimiser, schedule, EMA.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.synthetic import SyntheticDataset, parse_synthetic
from ..files import check_output_dir
from ..models.base import check_min_size
from .checkpoint import CheckpointManager
from .distributed import (
    GlobalBatchSampler,
    barrier,
    broadcast_object,
    gather_objects,
    restart_count,
    wrap_ddp,
)
from .ema import ModelEma
from .finetune import freeze_body
from .optimizers import LRSchedule, build_optimizer, param_groups, scale_lr
from .rng import PerSampleSeeds, isolated_rng
from .rundir import RunDirectoryBusy, RunLock
from .step import StepRunner, TrainingModule

HOLDOUT_SEED = 0  # the held-out part of the training split is the same for every run and seed

def default_workers(world_size: int) -> int:
    cores = os.cpu_count() or 1
    if cores <= 2:
        return 0
    return max(1, min(8, cores // max(1, world_size) - 1))



def first_image(dataset: Dataset, attempts: int = 8) -> torch.Tensor:
    """The first decodable training image (to check its shape before training)."""
    for index in range(min(attempts, len(dataset))):
        image = dataset[index][0]
        if isinstance(image, torch.Tensor):
            return image
    raise ValueError(f"none of the first {attempts} training images could be read; check the data")



class RunSetup:
    """Set-up methods of :class:`~inception_resnet.training.trainer.Trainer` (it holds the state)."""

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
        """Create and lock the run directory, check it can be written, and decide what to resume (rank 0).

        Every process gets the same decision, or the same error: a directory owned by a live run
        (:class:`~.rundir.RunDirectoryBusy`), one that cannot be written, or a resume that would lose data.
        """
        config = self.config
        run_dir = config.run_dir
        if run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = broadcast_object(f"runs/{config.model}-{config.recipe}-{stamp}", self.ctx)
        self.run_dir = Path(run_dir)
        self.lock = None
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", config.keep_last, clean_temporary=False)
        # torchrun restarted the workers of some node after a failure (a fresh agent's workers count 0)
        restarted = max(gather_objects(restart_count(), self.ctx)) > 0
        decision: tuple[str | None, str | None, str | None] = (None, None, None)
        if self.ctx.is_main:
            decision = self.own_run_dir(config.resume, restarted)
        kind, message, self.resume_path = broadcast_object(decision, self.ctx)  # one decision for every process
        if kind is not None:
            self.release_run_dir()
            error = {"busy": RunDirectoryBusy, "write": OSError}.get(kind, ValueError)
            raise error(message)
        barrier(self.ctx)

    def own_run_dir(self, resume: str | None, restarted: bool) -> tuple[str | None, str | None, str | None]:
        """(error kind, error message, checkpoint to resume from): lock, probe and decide, on rank 0."""
        try:
            check_output_dir(self.run_dir, "the run directory", create=True)
            self.lock = RunLock(self.run_dir)
            note = self.lock.acquire()
            if note:
                self.say(f"run directory {self.run_dir}: {note}")
            # stray temporary files of a killed run go only once the directory is ours
            self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", self.config.keep_last,
                                                 clean_temporary=True)
            check_output_dir(self.checkpoints.directory, "checkpoints", create=True)
        except RunDirectoryBusy as error:
            return "busy", str(error), None
        except OSError as error:
            return "write", str(error), None
        error_text, path = self.resume_decision(resume, restarted)
        return ("resume" if error_text else None), error_text, path

    def release_run_dir(self) -> None:
        """Give up the run directory's lock (rank 0; nothing elsewhere)."""
        if getattr(self, "lock", None) is not None:
            self.lock.release()
            self.lock = None

    def resume_decision(self, resume: str | None, restarted: bool = False) -> tuple[str | None, str | None]:
        """(an error to raise, the checkpoint to resume from), decided by rank 0.

        Never a silent fresh start over an earlier run: a directory holding checkpoints is continued only with
        ``resume``, ``"auto"`` with none of them intact is an error, and a checkpoint of another run is not
        resumed into a directory that holds checkpoints of its own (its ``best.pt`` would be overwritten).
        """
        if resume is None and (restarted or restart_count() > 0):
            resume = "auto"  # torchrun restarted the workers after a failure: continue, never start over
        manager = self.checkpoints
        earlier = manager.checkpoints() or manager.best_path.exists()
        if resume is None and earlier:
            return (f"the run directory {self.run_dir} already holds checkpoints of an earlier run; pass "
                    "--resume auto to continue it, or choose a new --run-dir"), None
        if resume is None:
            return None, None
        if resume != "auto":
            source = Path(resume).resolve()
            if earlier and not source.is_relative_to(manager.directory.resolve()):
                return (f"cannot resume {resume} in {self.run_dir}: that directory holds checkpoints of another "
                        f"run, whose best.pt this run would overwrite; resume it in its own run directory "
                        f"({source.parent.parent}) or choose a new --run-dir"), None
            return None, resume
        path, bad = manager.latest_valid()
        if path is None and (bad or manager.best_path.exists()):
            return self.no_intact_checkpoint(bad), None
        for bad_path, reason in bad:
            warnings.warn(f"skipping damaged checkpoint {bad_path}: {reason}", stacklevel=2)
            os.replace(bad_path, bad_path.with_name(bad_path.name + ".damaged"))
        return None, None if path is None else str(path)

    def check_disk_space(self) -> None:
        """Before the first step (rank 0): room for a checkpoint, else an error; for ``keep_last`` + 1 of them,
        else a warning. The size is estimated from the weights, the averaged weights and the optimiser's slots."""
        if not self.ctx.is_main:
            return
        from ..files import check_free_space, human_bytes

        weights = sum(t.numel() * t.element_size() for t in self.net.state_dict().values())
        trainable = sum(p.numel() * p.element_size() for p in self.net.parameters() if p.requires_grad)
        estimate = weights * (2 if self.ema is not None else 1) + 2 * trainable + (1 << 20)
        directory = self.checkpoints.directory
        check_free_space(directory, estimate, "one checkpoint")
        try:
            check_free_space(directory, estimate * (self.config.keep_last + 1), f"{self.config.keep_last + 1} "
                             "checkpoints")
        except OSError as error:
            warnings.warn(f"{error} (each checkpoint is about {human_bytes(estimate)}); the run may stop when "
                          "the disk is full", stacklevel=2)

    def no_intact_checkpoint(self, bad: list[tuple[Path, str]]) -> str:
        """The error of ``--resume auto`` when every rolling checkpoint is damaged (nothing is changed)."""
        from .checkpoint import CheckpointError, verify_checkpoint

        lines = [f"--resume auto found no intact checkpoint in {self.checkpoints.directory}, so it stops rather "
                 "than start over:"]
        lines += [f"  {path.name}: {reason}" for path, reason in bad]
        best = self.checkpoints.best_path
        if best.exists():
            try:
                verify_checkpoint(best)
            except (CheckpointError, OSError) as error:
                lines.append(f"  best.pt: {error}")
            else:
                lines.append(f"best.pt is intact (the best epoch's, not the newest): resume from it with --resume "
                             f"{best}, or start afresh with a new --run-dir")
                return "\n".join(lines)
        lines.append("start afresh with a new --run-dir (this one is kept as it is)")
        return "\n".join(lines)

    def build_model(self, num_classes: int) -> nn.Module:
        from ..weights.factory import create_model

        config = self.config
        pretrained = config.pretrained if self.resume_path is None else None
        with warnings.catch_warnings():  # a new classifier is what fine-tuning to other classes wants; noted below
            warnings.filterwarnings("ignore", message=".*classifiers do not fit")
            net = create_model(config.model, num_classes=num_classes, in_chans=config.in_chans,
                               drop_rate=config.drop_rate, pretrained=pretrained, **config.model_kwargs())
        for note in net.load_notes:
            self.say(f"pretrained weights: {note}")
        # the classes are the data's from now on (the run records them), not those the weights were trained on
        net.set_metadata(extra={k: v for k, v in net.metadata.extra.items() if k != "classes"})
        if config.freeze_body:
            freeze_body(net)
        return net

    def input_size(self, net: nn.Module) -> int:
        metadata = getattr(net, "metadata", None)
        size = self.config.input_size or (metadata.input_size[-1] if metadata is not None else 299)
        minimum = getattr(net, "min_input_size", 1)
        check_min_size(self.config.model, size, size, minimum, f"use --input-size {minimum} or more")
        return size

    def load_data(
        self, train_dataset: Dataset | None, val_dataset: Dataset | None
    ) -> tuple[Dataset, Dataset | None, bool]:
        """The training and validation sets before any transform; the flag says whether transforms apply.

        Datasets given by the caller and synthetic data are used as they are; data from
        :func:`inception_resnet.data.build_dataset` gets the model's transforms once the model exists.
        """
        config = self.config
        if config.holdout_fraction:
            return self.held_out_data(train_dataset, val_dataset)
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
        from ..data.datasets import train_val_datasets

        train, val, self.validation = train_val_datasets(config.data, config.val_fraction, config.seed)
        self.say(self.validation)
        return train, val, True

    def held_out_data(
        self, train_dataset: Dataset | None, val_dataset: Dataset | None
    ) -> tuple[Dataset, Dataset, bool]:
        """``holdout_fraction``: the training split, less a held-out part that becomes the validation set."""
        from ..data.datasets import build_dataset
        from ..data.loading import holdout_split

        config = self.config
        if val_dataset is not None:
            raise ValueError("holdout_fraction validates on a part of the training data; pass no val_dataset "
                             "(or set holdout_fraction to 0)")
        synthetic = parse_synthetic(config.data)
        ready = train_dataset is not None or synthetic is not None
        if train_dataset is None and synthetic is not None:
            count, classes = synthetic
            train_dataset = SyntheticDataset(count, classes, config.in_chans, config.input_size or 299,
                                             seed=config.seed)
        elif train_dataset is None:
            train_dataset = build_dataset(config.data, "train")
        rest, held_out = holdout_split(train_dataset, config.holdout_fraction, seed=HOLDOUT_SEED)
        self.validation = (f"validation on a held-out, class-balanced {config.holdout_fraction:g} of the training "
                           f"split ({len(held_out)} images; the validation split is not read)")
        return rest, held_out, not ready

    def attach_transforms(
        self, net: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None
    ) -> tuple[Dataset, Dataset | None]:
        """The model's training augmentation and evaluation preprocessing, at the configured size."""
        from ..data.pad_crop import PadCropTransform, whole_image_transform
        from ..data.transforms import eval_transform_for, train_transform

        config = self.config
        size = self.input_size(net)
        metadata = net.metadata
        if config.augmentation == "pad-crop":
            train_tf = PadCropTransform(size, config.in_chans, mean=metadata.mean, std=metadata.std)
            eval_tf = whole_image_transform(size, config.in_chans, mean=metadata.mean, std=metadata.std)
        else:
            train_tf = train_transform(size, config.in_chans, mean=metadata.mean, std=metadata.std,
                                       color_distortion=config.color_distortion)
            eval_tf = eval_transform_for(net, input_size=size)
        self.clean_train = train_dataset.with_transform(eval_tf)  # BatchNorm recomputation's images
        train_dataset = train_dataset.with_transform(train_tf)
        if val_dataset is not None:
            val_dataset = val_dataset.with_transform(eval_tf)
        return train_dataset, val_dataset

    def limit_data(self, train_dataset: Dataset, val_dataset: Dataset | None) -> tuple[Dataset, Dataset | None]:
        from ..data.loading import subset

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
        check_min_size(self.config.model, image.shape[-2], image.shape[-1], minimum,
                       f"the data yields images this small; resize them, e.g. --input-size {minimum}")


    def setup_training(self, net: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None) -> None:
        """Device, wrappers, sampler and loaders, optimizer, schedule, EMA."""
        from ..data.loading import build_loader

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
        self.bn_loader = None
        if config.bn_recompute_images and self.val_loader is not None:
            from ..data.loading import subset

            clean = subset(self.clean_train, config.bn_recompute_images, config.seed)
            self.bn_loader = build_loader(clean, self.val_loader.batch_size, num_workers=workers, pin_memory=pin,
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

