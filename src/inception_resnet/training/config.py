"""The settings of a training run: :class:`TrainConfig` and the recipes (:data:`RECIPES`) that fill it in.

Recipe ``paper`` and recipe ``sgd`` are described in :mod:`inception_resnet.training.trainer`; recipe ``finetune``
(Nesterov SGD at 0.005 per 32 images, cosine after a warm-up of at most a tenth of the run, no EMA) is the
default when the run starts from pretrained weights, and the model then defaults to the one they record.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..checks import bounded, check_fields
from ..data.transforms import MAX_INPUT_SIZE
from ..models.registry import COMMON_ARGUMENTS, MAX_CLASSES, check_model, list_models
from ..models.registry import model_options as builder_options
from .optimizers import NO_DECAY_CHOICES, SCHEDULES
from .rundir import load_run_config

AUTOCAST_PRECISIONS = ("fp32", "bf16", "fp16")  # autocast in training and evaluation (not int8)
OPTIMIZERS = ("rmsprop_tf", "sgd")
AUGMENTATIONS = ("inception", "pad-crop")
SEED_LIMIT = 2**32 - 1  # numpy's and the data order's seeds are 32-bit

# What every recipe shares; each recipe below adds or changes its own values.
_SHARED: dict[str, Any] = dict(
    aux_loss_weight=None,
    decay_epochs=2.0,
    decay_rate=0.94,
    drop_rate=0.2,
    ema_warmup=True,
    label_smoothing=0.1,
    min_lr=0.0,
    momentum=0.9,
    rmsprop_decay=0.9,
    rmsprop_eps=1.0,
)

RECIPES: dict[str, dict[str, Any]] = {
    "paper": dict(
        _SHARED,
        clip_grad_norm=2.0,
        ema_decay=0.9999,
        lr=0.045,
        nesterov=False,
        no_decay="norm",
        optimizer="rmsprop_tf",
        reference_batch_size=32,
        schedule="step",
        warmup_epochs=0.0,
        weight_decay=4e-05,
    ),
    "sgd": dict(
        _SHARED,
        clip_grad_norm=0.0,
        ema_decay=0.9999,
        lr=0.1,
        nesterov=True,
        no_decay="norm_and_bias",
        optimizer="sgd",
        reference_batch_size=256,
        schedule="cosine",
        warmup_epochs=5.0,
        weight_decay=0.0001,
    ),
    # from pretrained weights (the default with --weights): SGD as timm's and torchvision's fine-tuning, a peak
    # rate a ninth of the paper's, a short warm-up while the new classifier is random, cosine decay, no EMA
    # (a 0.9999 average would lag a run of a few hundred steps by most of it). The rate is for weights worth
    # keeping: measured on Fashion-MNIST, five classes to the other five (benchmarks/finetune_recipe.py), a short
    # run from a small network's weak features needs a rate above the from-scratch one to beat recipe paper from
    # the same weights, so such runs should pass lr; the default was kept (see the README's fine-tuning section)
    "finetune": dict(
        _SHARED,
        clip_grad_norm=0.0,
        ema_decay=0.0,
        lr=0.005,
        nesterov=True,
        no_decay="norm_and_bias",
        optimizer="sgd",
        reference_batch_size=32,
        schedule="cosine",
        warmup_epochs=1.0,
        weight_decay=0.0001,
    ),
}


def _opt(default: Any, help: str, **bounds: Any) -> Any:
    """A setting: its default, its help text (the CLI's) and what it accepts besides its type (:class:`Bounds`)."""
    if isinstance(default, dict):
        return bounded(help=help, factory=dict, **bounds)
    return bounded(default, help=help, **bounds)


@dataclass
class TrainConfig:
    """Every setting of a training run; ``None`` means the recipe's (or the model's / data's) value.

    Build it with keywords, from a dict (:meth:`from_dict`, unknown keys are an error) or from the command
    line (every field is a ``--flag``). :meth:`resolved` fills in the recipe.
    """

    # what to train
    model: str | None = _opt(
        None,
        "registered model name (see `inception-resnet models`; default: the one the "
        "pretrained weights record, as our runs' do, else inception_v4)",
    )
    num_classes: int | None = _opt(
        None, "classifier outputs (default: the number of classes in the data)", ge=1, le=MAX_CLASSES
    )
    in_chans: int = _opt(
        3,
        "input channels of the model; images are converted (grey <-> RGB) to match",
        bounds=COMMON_ARGUMENTS["in_chans"][1],
    )
    input_size: int | None = _opt(
        None, "training and validation image size (default: the model's, 299)", ge=1, le=MAX_INPUT_SIZE
    )
    model_options: dict = _opt(
        {},
        "options of the model's builder, passed to create_model (on the command line KEY=VALUE, e.g. "
        "width_multiplier=0.25); an option the model does not have is an error naming the ones it has",
    )
    pretrained: str | None = _opt(
        None,
        "weights to start from (anything create_model(pretrained=) takes); "
        "a classifier of another size is replaced by a new one",
    )
    freeze_body: bool = _opt(False, "train only the classifier(s); the body's BatchNorm statistics stay fixed")
    freeze_bn: bool = _opt(False, "use and keep the BatchNorm running statistics (BatchNorm in eval mode)")
    sync_bn: bool = _opt(False, "SyncBatchNorm across processes (CUDA only)")
    # data
    data: str | None = _opt(None, "image folder, 'fashion-mnist' (default), 'mnist', or 'synthetic:N[:CLASSES]'")
    classes: list[int | str] | None = _opt(
        None,
        "train and validate on these classes of the data only: names, or indices into its class list; "
        "relabelled 0, 1, ... in the order given (default: all)",
        ge=0,
        min_items=1,
    )
    max_train_images: int | None = _opt(None, "train on a class-balanced subset of this many images", ge=1)
    max_val_images: int | None = _opt(None, "validate on a class-balanced subset of this many images", ge=1)
    val_fraction: float = _opt(
        0.1,
        "without a val/ split in the data folder: the share of the training images "
        "held out for validation (class-balanced, chosen by the seed; 0: none)",
        ge=0,
        lt=1,
    )
    num_workers: int | None = _opt(
        None, "data loader processes (default: 0 on a machine of <= 2 cores, else up to 8 per process)", ge=0, le=1024
    )
    color_distortion: bool = _opt(True, "random colour distortion in the training augmentation")
    augmentation: str = _opt(
        "inception",
        "training augmentation: 'inception' (random crops of 5-100 percent of "
        "the area, flip, colour) or 'pad-crop' (small images: pad, random crop, flip; "
        "validation on the whole image)",
        choices=AUGMENTATIONS,
    )
    holdout_fraction: float = _opt(
        0.0,
        "validate on this class-balanced share of the training split, held out "
        "from training (the validation split is not read; for learning-rate sweeps)",
        ge=0,
        lt=1,
    )
    # recipe
    recipe: str | None = _opt(
        None,
        "hyper-parameter defaults: 'paper' (RMSProp, TF semantics), 'sgd', or "
        "'finetune' (SGD, lower rate, warm-up, no EMA; default: finetune with pretrained "
        "weights, else paper)",
        choices=tuple(RECIPES),
    )
    epochs: int = _opt(10, "number of epochs", ge=1, le=1_000_000)
    batch_size: int = _opt(
        32, "GLOBAL batch per optimiser step (split over processes and accumulation)", ge=1, le=1_000_000
    )
    accum_steps: int = _opt(1, "gradient accumulation: micro-batches per optimiser step", ge=1, le=1_000_000)
    optimizer: str | None = _opt(None, "rmsprop_tf or sgd", choices=OPTIMIZERS)
    lr: float | None = _opt(None, "learning rate for reference_batch_size images (paper: 0.045 per 32)", ge=0)
    reference_batch_size: int | None = _opt(None, "the batch size `lr` is given for", ge=1)
    scale_lr: bool = _opt(True, "scale lr linearly from reference_batch_size to batch_size")
    momentum: float | None = _opt(None, "momentum (RMSProp's and SGD's)", ge=0, lt=1)
    nesterov: bool | None = _opt(None, "Nesterov momentum (SGD)")
    rmsprop_decay: float | None = _opt(None, "RMSProp decay of the mean square (TF's `decay`)", ge=0, lt=1)
    rmsprop_eps: float | None = _opt(None, "RMSProp epsilon, inside the square root (paper: 1.0)", gt=0)
    weight_decay: float | None = _opt(None, "L2 weight decay", ge=0)
    no_decay: str | None = _opt(
        None, "parameters exempt from weight decay: norm, norm_and_bias or none", choices=NO_DECAY_CHOICES
    )
    schedule: str | None = _opt(
        None, "learning-rate schedule: step (staircase exponential), cosine, constant", choices=SCHEDULES
    )
    decay_rate: float | None = _opt(None, "step schedule: factor per decay interval (paper: 0.94)", gt=0)
    decay_epochs: float | None = _opt(None, "step schedule: epochs per decay interval (paper: 2)", gt=0)
    staircase: bool = _opt(True, "step schedule: decay in steps (else continuously)")
    warmup_epochs: float | None = _opt(None, "linear warm-up length in epochs", ge=0)
    min_lr: float | None = _opt(None, "cosine schedule: final learning rate", ge=0)
    label_smoothing: float | None = _opt(None, "label smoothing", ge=0, lt=1)
    clip_grad_norm: float | None = _opt(None, "clip gradients to this global norm (0: no clipping)", ge=0)
    drop_rate: float | None = _opt(
        None, "dropout before the classifier (paper: keep 0.8, i.e. 0.2)", bounds=COMMON_ARGUMENTS["drop_rate"][1]
    )
    aux_loss_weight: float | None = _opt(
        None,
        "weight of each auxiliary classifier's loss (default: the model's, 0.4 as TF-slim, 0.3 per head for GoogLeNet)",
        ge=0,
    )
    ema_decay: float | None = _opt(None, "decay of the weight EMA (0: no EMA)", ge=0, lt=1)
    ema_warmup: bool | None = _opt(None, "adjust the EMA decay for short runs: min(decay, (1+n)/(10+n))")
    # execution
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _opt(
        "fp32", "fp32, bf16 (autocast) or fp16 (autocast with a gradient scaler)", choices=AUTOCAST_PRECISIONS
    )
    channels_last: bool = _opt(False, "channels-last memory format")
    compile: bool = _opt(False, "torch.compile the training step's model")
    deterministic: bool = _opt(False, "deterministic algorithms (bit-exact resumption on the CPU)")
    threads: int | None = _opt(None, "torch CPU threads per process", ge=1, le=4096)
    seed: int = _opt(0, "seed of the initialisation, the data order and the augmentation", ge=0, le=SEED_LIMIT)
    # outputs
    run_dir: str | None = _opt(None, "run directory (default: runs/<model>-<recipe>-<time>)")
    resume: str | None = _opt(None, "'auto' (newest intact checkpoint of run_dir, if any) or a checkpoint file")
    checkpoint_every_steps: int = _opt(0, "also checkpoint every N optimiser steps (0: only every epoch)", ge=0)
    keep_last: int = _opt(3, "rolling checkpoints to keep (best.pt is kept besides)", ge=1, le=1_000_000)
    log_every_steps: int = _opt(10, "write steps.jsonl every N steps (0: never)", ge=0)
    validate_every_epochs: int = _opt(1, "validate every N epochs (and after the last)", ge=1)
    validate_every_steps: int = _opt(0, "also validate at step 0 and every N optimiser steps (validation.jsonl)", ge=0)
    validate_spacing: float = _opt(
        0.0,
        "with validate_every_steps: the gap between two validations grows to this "
        "fraction of the step (0.1: a crossing is bracketed within 10 percent of its step)",
        ge=0,
        le=1,
    )
    bn_recompute_images: int = _opt(
        0,
        "validate a copy of the network whose BatchNorm statistics are recomputed "
        "on this many clean training images (0: the running statistics)",
        ge=0,
    )
    val_batch_size: int | None = _opt(
        None, "validation batch per process (default: twice the training one)", ge=1, le=1_000_000
    )
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
            hints = ", ".join(setting_hint(key) for key in unknown)
            raise ValueError(f"unknown training setting(s): {hints}. Known settings: {', '.join(known)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def resolved(self) -> TrainConfig:
        """A copy with every recipe value filled in and everything checked (ValueError saying what to fix)."""
        check_fields(self)
        recipe = self.recipe or ("finetune" if self.pretrained else "paper")
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        values = dict(RECIPES[recipe], recipe=recipe, model=self.model or recorded_model(self.pretrained))
        if recipe in ("sgd", "finetune"):
            values["warmup_epochs"] = min(values["warmup_epochs"], self.epochs / 10)
        changes = {k: v for k, v in values.items() if getattr(self, k) is None}
        config = dataclasses.replace(self, **changes)
        config.validate()
        return config

    def validate(self) -> None:
        """Raise a ValueError for a value of the wrong type, not finite, or out of range (on a resolved config).

        Every field is checked against its annotation and bounds (:func:`~inception_resnet.checks.check_fields`);
        the model and its ``model_options`` against the model's builder.
        """
        check_fields(self)
        reserved = sorted(set(self.model_options) & {"num_classes", "in_chans", "drop_rate", "pretrained"})
        if reserved:
            raise ValueError(
                f"model_options {', '.join(reserved)}: these are settings of their own; give them as "
                + ", ".join(f"--{name.replace('_', '-')}" for name in reserved)
            )
        check_model(self.model, self.model_options)
        if self.resume is not None and self.resume != "auto" and not Path(self.resume).exists():
            raise FileNotFoundError(f"checkpoint to resume from not found: {self.resume} (or pass --resume auto)")


def every_model_option() -> set[str]:
    """The options of every registered model's builder (a setting of that name belongs in ``model_options``)."""
    return {option for name in list_models() for option in builder_options(name)}


def setting_hint(key: str) -> str:
    """An unknown setting ``key`` quoted, with what was meant: an option of the model (its place is
    ``model_options``) or the closest known settings."""
    if key in every_model_option():
        return f"{key!r} (an option of the model: put it in model_options)"
    close = difflib.get_close_matches(key, TrainConfig.field_names(), n=3)
    return f"{key!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")


def recorded_model(pretrained: str | None) -> str:
    """The model the pretrained weights record (our checkpoints and runs do), else the default inception_v4."""
    from ..weights.records import read_model_config

    config = read_model_config(pretrained) if pretrained else None
    return str(config["architecture"]) if config else "inception_v4"


def field_help() -> dict[str, str]:
    """Each setting's one-line description (the CLI's help texts)."""
    return {f.name: f.metadata.get("help", "") for f in fields(TrainConfig)}


def field_types() -> dict[str, Any]:
    """Each setting's type annotation, resolved."""
    return typing.get_type_hints(TrainConfig)


def config_for_resume(overrides: Mapping[str, Any]) -> TrainConfig:
    """The recorded configuration of the run being resumed, updated with ``overrides`` (which hold ``resume``;
    their ``model_options`` update the recorded ones key by key).

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
    path = Path(run_dir) / "config.json"
    base = checked_settings(load_run_config(run_dir), str(path)) if path.is_file() else {}
    values = {**base, **overrides, "run_dir": run_dir}
    if isinstance(overrides.get("model_options"), Mapping):
        values["model_options"] = {**base.get("model_options", {}), **overrides["model_options"]}
    return TrainConfig.from_dict(values)


def checked_settings(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Settings read from a file, each checked (:func:`~inception_resnet.checks.check_fields`); an error names the
    file (``source``), then the setting."""
    try:
        check_fields(TrainConfig.from_dict(values))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return dict(values)
