"""The settings of a training run: :class:`TrainConfig` and the recipes (:data:`RECIPES`) that fill it in.

Recipe ``paper`` and recipe ``sgd`` are described in :mod:`inception_resnet.training.trainer`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .optimizers import NO_DECAY_CHOICES, SCHEDULES
from .rundir import load_run_config

AUTOCAST_PRECISIONS = ("fp32", "bf16", "fp16")  # autocast in training and evaluation (not int8)
OPTIMIZERS = ("rmsprop_tf", "sgd")
AUGMENTATIONS = ("inception", "pad-crop")

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
    augmentation: str = _opt("inception", "training augmentation: 'inception' (random crops of 5-100 percent of "
                             "the area, flip, colour) or 'pad-crop' (small images: pad, random crop, flip; "
                             "validation on the whole image)")
    holdout_fraction: float = _opt(0.0, "validate on this class-balanced share of the training split, held out "
                                   "from training (the validation split is not read; for learning-rate sweeps)")
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
    validate_every_steps: int = _opt(0, "also validate at step 0 and every N optimiser steps (validation.jsonl)")
    validate_spacing: float = _opt(0.0, "with validate_every_steps: the gap between two validations grows to this "
                                   "fraction of the step (0.1: a crossing is bracketed within 10 percent of its step)")
    bn_recompute_images: int = _opt(0, "validate a copy of the network whose BatchNorm statistics are recomputed "
                                    "on this many clean training images (0: the running statistics)")
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
        """Raise a ValueError for a value of the wrong type, not finite, or out of range (on a resolved config)."""
        self.check_types()
        choices = {
            "precision": AUTOCAST_PRECISIONS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
            "no_decay": NO_DECAY_CHOICES,
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
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {self.augmentation!r}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in [0, 1), got {self.holdout_fraction}")
        for name in ("validate_every_steps", "bn_recompute_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.validate_spacing <= 1.0:
            raise ValueError(f"validate_spacing must lie in [0, 1], got {self.validate_spacing}")
        for name in ("label_smoothing", "drop_rate", "ema_decay", "momentum", "rmsprop_decay"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value}")
        for name in ("decay_rate", "decay_epochs", "rmsprop_eps", "width_multiplier"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.reference_batch_size is not None and self.reference_batch_size < 1:
            raise ValueError(f"reference_batch_size must be at least 1, got {self.reference_batch_size}")
        reserved = sorted(set(self.model_options) & {"num_classes", "in_chans", "drop_rate", "pretrained"})
        if reserved:
            raise ValueError(f"model_options {', '.join(reserved)}: these are settings of their own; give them as "
                             + ", ".join(f"--{name.replace('_', '-')}" for name in reserved))
        if self.resume is not None and self.resume != "auto" and not Path(self.resume).exists():
            raise FileNotFoundError(f"checkpoint to resume from not found: {self.resume} (or pass --resume auto)")

    def check_types(self) -> None:
        """A ValueError naming the first setting whose value has the wrong type or is NaN/infinite."""
        for name, annotation in typing.get_type_hints(type(self)).items():
            value = getattr(self, name)
            kinds = [k for k in (typing.get_args(annotation) or (annotation,)) if k is not type(None)]
            if value is None and len(kinds) < len(typing.get_args(annotation) or (annotation,)):
                continue
            kind = kinds[0]
            if name == "residual_scale" and isinstance(value, (list, tuple)):
                # the model's (A, B, C) triple, as --print-config writes it and README documents
                if len(value) != 3:
                    raise ValueError(f"residual_scale must be a number or an (A, B, C) triple, got {value!r}")
                for item in value:
                    if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                        raise ValueError(f"residual_scale must hold finite numbers, got {value!r}")
            elif kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{name} must be a number, got {value!r}")
                if not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, got {value}")
            elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            elif kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            elif kind is str and not isinstance(value, str):
                raise ValueError(f"{name} must be a text, got {value!r}")
            elif kind is dict and not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a mapping of KEY: VALUE, got {value!r}")

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


