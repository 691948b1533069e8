"""What a study runs: :class:`CompareConfig`, :class:`SweepConfig`, :class:`ScalingConfig` (the sections of a
preset, :mod:`inception_resnet.study.presets`).

Each section has a ``train`` dict of :class:`~inception_resnet.training.TrainConfig` fields shared by all its
runs, plus its own keys (pairs, seeds, levels; learning rates; or model, scales and the death criteria). Every
key is checked by its field's annotation and bounds (:func:`~inception_resnet.checks.check_fields`), then by
the section's own rules (known models, settings the study sets per run), before any run starts.

The study's entries are named: a registered model (``inception_v3``) or a variant defined in
``compare.models`` by the model it builds and its settings, e.g. ``{"inception_resnet_v1_no_shortcut":
{"model": "inception_resnet_v1", "model_options": {"shortcut": false}}}``. ``compare.models`` also holds each
entry's own learning rate, the one its sweep chose (``compare.lr_source`` names the sweep).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..checks import bounded, check_fields
from ..models.registry import list_models
from ..training import TrainConfig
from ..training.config import SEED_LIMIT, setting_hint

WEIGHTS = ("raw", "ema")
SECTIONS = ("compare", "sweep", "scaling")
DEATH_MEASURES = ("dead_channels", "zero_fraction")
SWEEP_MEASURES = ("mean_error", "final_error")
PAPER_LR = 0.045  # the paper's learning rate, per 32 images (section 3.3 and the recipe)
PARALLEL_LIMIT = 256  # runs trained at once
SCALE_OPTION = "residual_scale"  # the model option the scaling study varies (``scaling.scales``)


@dataclass
class DeathCriteria:
    """When a run counts as dead (paper section 3.3): the input of the final pooling all zeros, for good.

    ``measure`` is the logged value the verdict reads: ``dead_channels`` (the share of channels entering
    the final pooling that are zero on every image of the study's fixed probe batch, eval mode) or
    ``zero_fraction`` (the share of exact zeros in that feature map for the training batch of the step).
    A run is dead from the first logged step from which every logged step to the end has a measure of at
    least its threshold (``dead_channels`` or ``zero_fraction``: 1.0 is the paper's "only zeros"), provided
    that there are at least ``min_points`` such steps and that the training loss after that step never
    falls more than ``loss_tolerance`` (relative) below its value there.
    """

    measure: str = bounded("dead_channels", choices=DEATH_MEASURES)
    dead_channels: float = bounded(1.0, gt=0, le=1)
    zero_fraction: float = bounded(1.0, gt=0, le=1)
    min_points: int = bounded(3, ge=1, le=1_000_000)
    loss_tolerance: float = bounded(0.02, ge=0)

    def validate(self) -> None:
        check_fields(self, "death")

    @property
    def threshold(self) -> float:
        """The threshold of the chosen measure."""
        return float(getattr(self, self.measure))


@dataclass
class CompareConfig:
    """``study compare``: each pair (non-residual partner, residual network) trained alike for every seed.

    ``train`` holds the training settings all runs share (a run's seed fixes its data subset, data order
    and augmentation, so both networks of a pair see the same images in the same order); ``models`` adds
    settings for one entry only: its learning rate, or, with a ``model`` key, a variant of a registered model
    (e.g. ``{"inception_resnet_v1_no_shortcut": {"model": "inception_resnet_v1", "model_options":
    {"shortcut": false}}}``, the residual network without its identity paths). ``lr_source`` says where the
    per-entry learning rates come from (the sweep's report). ``weights`` says whose validation errors the
    tables and curves use: the raw weights or their moving average (EMA; needs ``ema_decay`` > 0).
    ``levels`` are the top-1 error levels (%) of the time-to-level table, fixed in advance (never derived from
    the runs). ``parallel`` runs train at once, each in its own process (with ``train.threads`` threads).
    ``baselines`` names extra entries (e.g. ``googlenet``, ``bn_inception``) trained exactly like the pairs'
    networks (same settings, data order, budget and seeds); they have no partner, so the report lists their
    errors and curves without a verdict. ``sensitivity`` lists variants of the study that check whether a
    verdict depends on a choice: each ``{"label", "question", "pair": [partner, residual], "seeds"}`` (seeds
    default to ``seeds``) is trained and judged like a pair and reported in the sensitivity section (e.g. both
    networks at one network's rate, or without gradient clipping). ``time_steps`` optimiser steps of every
    distinct network are timed alone after the runs (:mod:`.timing`; 0: no timing, no seconds verdicts).
    """

    pairs: list[list[str]] = bounded(factory=lambda: [["inception_v3", "inception_resnet_v1"]], min_items=1)
    seeds: list[int] = bounded(factory=lambda: [0, 1, 2], ge=0, le=SEED_LIMIT, min_items=1)
    levels: list[float] = bounded(factory=lambda: [50.0, 30.0, 20.0], gt=0, lt=100, min_items=1)
    train: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    lr_source: str = ""
    weights: str = bounded("raw", choices=WEIGHTS)
    parallel: int = bounded(1, ge=1, le=PARALLEL_LIMIT)
    time_limit_s: float | None = bounded(None, gt=0)
    baselines: list[str] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    time_steps: int = bounded(40, ge=0, le=10_000)

    def validate(self) -> None:
        check_fields(self, "compare")
        known = self.known_entries()
        _check_sensitivity(self.sensitivity, known)
        for pair in self.pairs:
            if len(pair) != 2:
                raise ValueError(f"compare.pairs: each pair is [partner, residual], got {pair!r}")
            for name in pair:
                if name not in known:
                    raise ValueError(
                        f"compare.pairs: unknown model {name!r}; known: {', '.join(known)} (or define "
                        "a variant in compare.models with a 'model' key)"
                    )
        _check_baselines(self.baselines, known, {name for pair in self.pairs for name in pair})
        _check_distinct(self.seeds, "compare.seeds")
        _check_reserved(self.train, "compare.train")
        for name, extra in self.models.items():
            _check_reserved(extra, f"compare.models.{name}", variant=True)
        for name in dict.fromkeys([*self.model_names, *self.models]):
            _check_run(self.settings(name), f"compare.models.{name}" if name in self.models else "compare.train")
        if self.weights == "ema" and self.train.get("ema_decay") == 0:
            raise ValueError("compare.weights is 'ema' but train.ema_decay is 0 (no averaged weights)")

    def known_entries(self) -> list[str]:
        """The registered models and the variants ``models`` defines."""
        return [*list_models(), *(name for name, extra in self.models.items() if "model" in extra)]

    def settings(self, name: str) -> dict[str, Any]:
        """The training settings of an entry: ``train``, then the entry's own, with ``model`` resolved.

        ``model_options`` are merged (the entry's win), so a variant keeps the study's other model options.
        """
        extra = self.models.get(name, {})
        settings = {**self.train, **extra, "model": extra.get("model", name)}
        if "model_options" in self.train or "model_options" in extra:
            settings["model_options"] = {**self.train.get("model_options", {}), **extra.get("model_options", {})}
        return settings

    @property
    def model_names(self) -> list[str]:
        """Every entry of the pairs, once, in order of appearance, then the baselines and the variants' entries."""
        variants = [name for variant in self.sensitivity for name in variant["pair"]]
        return list(dict.fromkeys([*(name for pair in self.pairs for name in pair), *self.baselines, *variants]))

    def variant_seeds(self, variant: dict[str, Any]) -> list[int]:
        """The seeds of a sensitivity variant (the study's unless it gives its own)."""
        return list(variant.get("seeds") or self.seeds)


@dataclass
class SweepConfig:
    """``study sweep``: each entry trained at several learning rates, validated on held-out training images.

    The runs use ``compare``'s settings for the entry (``CompareConfig.settings``, its own learning rate
    replaced), then ``train`` (which must hold out part of the training split: ``holdout_fraction`` > 0, so
    that the choice never sees a validation image). ``lrs`` lists the learning rates (per the recipe's
    reference batch), for every entry or as ``{entry: [...]}``. The chosen rate of an entry is the one with
    the lowest held-out top-1 error averaged over ``seeds``, by ``choose_by``: ``mean_error`` (the mean error
    over training, the area under the curve: the study's own speed measure) or ``final_error``. When the
    chosen rate is the lowest or the highest of the grid, the sweep widens it by one rate beyond that edge
    (the edge's neighbour ratio further out) and trains those runs, up to ``widen`` times per side, so that
    every chosen rate ends inside its grid or the report says it could not.
    """

    models: list[str] = field(default_factory=list)
    lrs: list[float] | dict[str, list[float]] = bounded(factory=list, gt=0)
    seeds: list[int] = bounded(factory=lambda: [0], ge=0, le=SEED_LIMIT, min_items=1)
    train: dict[str, Any] = field(default_factory=lambda: {"holdout_fraction": 0.1})
    choose_by: str = bounded("mean_error", choices=SWEEP_MEASURES)
    widen: int = bounded(0, ge=0, le=10)
    parallel: int = bounded(1, ge=1, le=PARALLEL_LIMIT)
    time_limit_s: float | None = bounded(None, gt=0)

    def validate(self, compare: CompareConfig | None = None) -> None:
        check_fields(self, "sweep")
        if not self.models:
            return  # a preset without a sweep
        known = (compare or CompareConfig()).known_entries()
        for name in self.models:
            if name not in known:
                raise ValueError(f"sweep.models: unknown model {name!r}; known: {', '.join(known)}")
        for name in self.models:
            rates = self.rates(name)
            if len(rates) < 3:
                raise ValueError(f"sweep.lrs for {name}: give at least 3 positive learning rates, got {rates!r}")
        if isinstance(self.lrs, dict):
            extra = [name for name in self.lrs if name not in self.models]
            if extra:
                raise ValueError(f"sweep.lrs names {', '.join(extra)}, not in sweep.models")
        _check_distinct(self.seeds, "sweep.seeds")
        _check_reserved(self.train, "sweep.train")
        if "lr" in self.train:
            raise ValueError("sweep.train sets lr; the rates come from sweep.lrs")
        if not 0.0 < float(self.train.get("holdout_fraction") or 0.0) < 1.0:
            raise ValueError(
                "sweep.train.holdout_fraction must lie in (0, 1): the sweep chooses on held-out "
                "training images, never on the validation split"
            )
        for name in self.models:
            _check_run(
                {**(compare or CompareConfig()).settings(name), **self.train, "lr": self.rates(name)[0]}, "sweep.train"
            )

    def rates(self, name: str) -> list[float]:
        """The learning rates of ``name``'s grid as given (the sweep may widen it: :func:`widened`)."""
        return list(self.lrs.get(name, []) if isinstance(self.lrs, dict) else self.lrs)


@dataclass
class ScalingConfig:
    """``study scaling``: a wide Inception-ResNet for each learning rate, residual scale and seed.

    ``train`` holds the settings all runs share (``model_options`` such as width and blocks, input size, data,
    ``log_every_steps``: the death detector reads ``steps.jsonl``); each run adds its scale to the model
    options. ``lrs`` are the learning rates of the grid, each per ``reference_batch_size`` images as
    ``train.lr`` is (the paper's recipe: per 32 images, scaled linearly to the batch); without ``lrs`` every
    run uses ``train.lr``. Every (lr, scale, seed) is one run.

    At every logged step the study's probe measures the network on ``probe_images`` fixed validation images
    (dead channels, zero fraction, the residual stream after every block) and, every ``val_every_steps``
    steps, the validation error (:class:`~inception_resnet.study.probe.DeathProbe`).

    A death at a rate of at least ``rate_factor`` times ``paper_lr`` (per 32 images) is labelled
    rate-induced. A run that did not die and ends at a validation top-1 error of at most ``trained_top1``
    (%) trained normally: the living controls the report sets beside every death. ``min_filters`` and
    ``wide_stages``: at least that many residual stages must have more than ``min_filters`` filters
    (``wide_stages`` 2: the paper's B and C stages). ``parallel`` runs are trained at once, each in its own
    process (give each one thread: ``train.threads``). Without ``keep_checkpoints`` a run that completed
    loses its checkpoints (its logs, which the report reads, stay).
    """

    model: str = "inception_resnet_v2_paper"
    scales: list[float] = bounded(factory=lambda: [1.0, 0.3, 0.2, 0.1], gt=0, min_items=1)
    seeds: list[int] = bounded(factory=lambda: [0, 1], ge=0, le=SEED_LIMIT, min_items=1)
    lrs: list[float] | None = bounded(None, gt=0, min_items=1)
    train: dict[str, Any] = field(default_factory=dict)
    death: DeathCriteria = field(default_factory=DeathCriteria)
    min_filters: int = bounded(1000, ge=0)
    wide_stages: int = bounded(1, ge=1, le=3)
    probe_images: int = bounded(64, ge=1, le=100_000)
    val_every_steps: int = bounded(0, ge=0)
    paper_lr: float = bounded(PAPER_LR, gt=0)
    rate_factor: float = bounded(4.0, gt=0)
    trained_top1: float = bounded(50.0, gt=0, le=100)
    parallel: int = bounded(1, ge=1, le=PARALLEL_LIMIT)
    keep_checkpoints: bool = True
    time_limit_s: float | None = bounded(None, gt=0)

    def validate(self) -> None:
        check_fields(self, "scaling")
        if self.model not in list_models():
            raise ValueError(f"scaling.model: unknown model {self.model!r}")
        _check_distinct(self.scales, "scaling.scales")
        if self.lrs is not None:
            _check_distinct(self.lrs, "scaling.lrs")
            if "lr" in self.train:
                raise ValueError(
                    "scaling.train sets lr and scaling.lrs is set too; give the rates in lrs only (--set lrs=[0.045])"
                )
        _check_distinct(self.seeds, "scaling.seeds")
        _check_reserved(self.train, "scaling.train")
        if SCALE_OPTION in self.train.get("model_options", {}):
            raise ValueError(f"scaling.train.model_options sets {SCALE_OPTION}; the scales come from scaling.scales")
        _check_run(
            {
                **self.run_settings(self.scales[0]),
                **({"lr": self.lrs[0]} if self.lrs else {}),
            },
            "scaling.train",
        )
        if not self.train.get("log_every_steps", 10):
            raise ValueError("scaling.train.log_every_steps is 0: the death detector needs steps.jsonl")

    def run_settings(self, scale: float) -> dict[str, Any]:
        """The training settings of a run at residual scale ``scale``: ``train``, the model, and the scale
        among the model options."""
        options = {**self.train.get("model_options", {}), SCALE_OPTION: float(scale)}
        return {**self.train, "model": self.model, "model_options": options}

    @property
    def rates(self) -> list[float | None]:
        """The learning rates of the grid (``[None]``: the one of ``train``, or the recipe's)."""
        return list(self.lrs) if self.lrs is not None else [None]


def _check_distinct(values: list[Any], where: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{where} has repeated values: {values!r}")


def _check_baselines(baselines: Any, known: list[str], paired: set[str]) -> None:
    """The baselines must be distinct registered models, none of them already in a pair."""
    for name in baselines:
        if name not in known:
            raise ValueError(f"compare.baselines: unknown model {name!r}; known: {', '.join(known)}")
        if name in paired:
            raise ValueError(f"compare.baselines: {name!r} is already in a pair; a model is trained once per seed")
    if len(set(baselines)) != len(baselines):
        raise ValueError(f"compare.baselines has repeated models: {baselines!r}")


def _check_sensitivity(variants: Any, known: list[str]) -> None:
    """Each variant: a label, a question, a [partner, residual] pair of known entries, optional seeds."""
    if not isinstance(variants, list):
        raise ValueError(f"compare.sensitivity must be a list of variants, got {variants!r}")
    labels = []
    for variant in variants:
        if (
            not isinstance(variant, dict)
            or set(variant) - {"label", "question", "pair", "seeds"}
            or not isinstance(variant.get("label"), str)
            or not isinstance(variant.get("question", ""), str)
        ):
            raise ValueError(
                'compare.sensitivity: each variant is {"label": ..., "question": ..., "pair": '
                f'[partner, residual], "seeds": [...] (optional)}}, got {variant!r}'
            )
        pair = variant.get("pair")
        if not isinstance(pair, list) or len(pair) != 2 or any(name not in known for name in pair):
            raise ValueError(f"compare.sensitivity {variant['label']!r}: pair must be two known entries, got {pair!r}")
        seeds = variant.get("seeds", [0])
        if (
            not isinstance(seeds, list)
            or not seeds
            or any(not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= SEED_LIMIT for v in seeds)
        ):
            raise ValueError(
                f"compare.sensitivity {variant['label']!r}: seeds must be a non-empty list of integers "
                f"from 0 to {SEED_LIMIT}, got {seeds!r}"
            )
        _check_distinct(seeds, f"compare.sensitivity {variant['label']!r} seeds")
        labels.append(variant["label"])
    if len(set(labels)) != len(labels):
        raise ValueError(f"compare.sensitivity has repeated labels: {labels!r}")


def _check_reserved(values: dict[str, Any], where: str, *, variant: bool = False) -> None:
    """Known training settings only, none that the study sets per run (``model`` only for a variant)."""
    known = set(TrainConfig.field_names())
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ValueError(
            f"{where}: unknown training setting(s) {', '.join(map(setting_hint, unknown))}; see "
            "`inception-resnet train --help` for the known ones"
        )
    for reserved in ("model", "seed", "run_dir", "resume"):
        if reserved in values and not (variant and reserved == "model"):
            raise ValueError(f"{where} sets {reserved!r}, which the study sets for each run")
    try:  # the values given, even those that an entry's own settings replace
        check_fields(TrainConfig.from_dict(values))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _check_run(settings: dict[str, Any], where: str) -> None:
    """The settings of one of the study's runs, checked as the run would check them (before any run starts)."""
    try:
        TrainConfig.from_dict(settings).resolved()
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(f"{where}: {error}") from None


SECTION_OF = {CompareConfig: "compare", SweepConfig: "sweep", ScalingConfig: "scaling"}


def section_to_dict(section: CompareConfig | SweepConfig | ScalingConfig) -> dict[str, Any]:
    """The section as plain JSON-ready data."""
    return dataclasses.asdict(section)
