"""What a study runs: :class:`CompareConfig`, :class:`SweepConfig`, :class:`ScalingConfig` and their presets.

A preset is a plain JSON file (``inception_resnet/presets/<name>.json``, or any path) with a ``compare``, a
``sweep`` and a ``scaling`` section. Each section has a ``train`` dict of
:class:`~inception_resnet.training.TrainConfig` fields shared by all its runs, plus its own keys (pairs, seeds,
levels; learning rates; or model, scales and the death criteria). Copy one
(``inception-resnet study presets cpu > mine.json``), edit it, pass ``--preset mine.json``.

The study's entries are named: a registered model (``inception_v3``) or a variant defined in
``compare.models`` by the model it builds and its settings, e.g. ``{"inception_resnet_v1_no_shortcut":
{"model": "inception_resnet_v1", "model_options": {"shortcut": false}}}``. ``compare.models`` also holds each
entry's own learning rate, the one its sweep chose (``compare.lr_source`` names the sweep).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
WEIGHTS = ("raw", "ema")
SECTIONS = ("compare", "sweep", "scaling")
DEATH_MEASURES = ("dead_channels", "zero_fraction")
SWEEP_MEASURES = ("mean_error", "final_error")
PAPER_LR = 0.045  # the paper's learning rate, per 32 images (section 3.3 and the recipe)


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

    measure: str = "dead_channels"
    dead_channels: float = 1.0
    zero_fraction: float = 1.0
    min_points: int = 3
    loss_tolerance: float = 0.02

    def validate(self) -> None:
        if self.measure not in DEATH_MEASURES:
            raise ValueError(f"death.measure must be one of {', '.join(DEATH_MEASURES)}, got {self.measure!r}")
        for name in DEATH_MEASURES:
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"death.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.min_points < 1:
            raise ValueError(f"death.min_points must be at least 1, got {self.min_points}")
        if self.loss_tolerance < 0:
            raise ValueError(f"death.loss_tolerance must be >= 0, got {self.loss_tolerance}")

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

    pairs: list[list[str]] = field(default_factory=lambda: [["inception_v3", "inception_resnet_v1"]])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    levels: list[float] = field(default_factory=lambda: [50.0, 30.0, 20.0])
    train: dict[str, Any] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    lr_source: str = ""
    weights: str = "raw"
    parallel: int = 1
    time_limit_s: float | None = None
    baselines: list[str] = field(default_factory=list)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    time_steps: int = 40

    def validate(self) -> None:
        known = self.known_entries()
        _check_sensitivity(self.sensitivity, known)
        steps = self.time_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps <= 10_000:
            raise ValueError(f"compare.time_steps must be an integer from 0 to 10000, got {self.time_steps!r}")
        if not self.pairs:
            raise ValueError("compare.pairs is empty; give at least one [partner, residual] pair")
        for pair in self.pairs:
            if len(pair) != 2:
                raise ValueError(f"compare.pairs: each pair is [partner, residual], got {pair!r}")
            for name in pair:
                if name not in known:
                    raise ValueError(f"compare.pairs: unknown model {name!r}; known: {', '.join(known)} (or define "
                                     "a variant in compare.models with a 'model' key)")
        _check_baselines(self.baselines, known, {name for pair in self.pairs for name in pair})
        _check_seeds(self.seeds, "compare")
        _check_train(self.train, "compare.train")
        for name, extra in self.models.items():
            _check_train(extra, f"compare.models.{name}", variant=True)
        if not isinstance(self.levels, list) or not self.levels or any(
                not isinstance(v, (int, float)) or not 0.0 < v < 100.0 for v in self.levels):
            raise ValueError(f"compare.levels must be top-1 error levels in (0, 100) %, fixed in advance (e.g. "
                             f"[50, 30, 20]), got {self.levels!r}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"compare.weights must be one of {', '.join(WEIGHTS)}, got {self.weights!r}")
        if self.weights == "ema" and self.train.get("ema_decay") == 0:
            raise ValueError("compare.weights is 'ema' but train.ema_decay is 0 (no averaged weights)")
        _check_parallel(self.parallel, "compare")
        _check_time_limit(self.time_limit_s, "compare")

    def known_entries(self) -> list[str]:
        """The registered models and the variants ``models`` defines."""
        from ..models.registry import list_models

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
    lrs: list[float] | dict[str, list[float]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    train: dict[str, Any] = field(default_factory=lambda: {"holdout_fraction": 0.1})
    choose_by: str = "mean_error"
    widen: int = 0
    parallel: int = 1
    time_limit_s: float | None = None

    def validate(self, compare: CompareConfig | None = None) -> None:
        if not self.models:
            return  # a preset without a sweep
        known = compare.known_entries() if compare is not None else CompareConfig().known_entries()
        for name in self.models:
            if name not in known:
                raise ValueError(f"sweep.models: unknown model {name!r}; known: {', '.join(known)}")
        for name in self.models:
            rates = self.rates(name)
            if len(rates) < 3 or any(not isinstance(r, (int, float)) or r <= 0 for r in rates):
                raise ValueError(f"sweep.lrs for {name}: give at least 3 positive learning rates, got {rates!r}")
        if isinstance(self.lrs, dict):
            extra = [name for name in self.lrs if name not in self.models]
            if extra:
                raise ValueError(f"sweep.lrs names {', '.join(extra)}, not in sweep.models")
        _check_seeds(self.seeds, "sweep")
        if self.choose_by not in SWEEP_MEASURES:
            raise ValueError(f"sweep.choose_by must be one of {', '.join(SWEEP_MEASURES)}, got {self.choose_by!r}")
        if not isinstance(self.widen, int) or isinstance(self.widen, bool) or not 0 <= self.widen <= 10:
            raise ValueError(f"sweep.widen must be an integer from 0 to 10 (extra rates per edge), got {self.widen!r}")
        _check_train(self.train, "sweep.train")
        if not 0.0 < float(self.train.get("holdout_fraction") or 0.0) < 1.0:
            raise ValueError("sweep.train.holdout_fraction must lie in (0, 1): the sweep chooses on held-out "
                             "training images, never on the validation split")
        if "lr" in self.train:
            raise ValueError("sweep.train sets lr; the rates come from sweep.lrs")
        _check_parallel(self.parallel, "sweep")
        _check_time_limit(self.time_limit_s, "sweep")

    def rates(self, name: str) -> list[float]:
        """The learning rates of ``name``'s grid as given (the sweep may widen it: :func:`widened`)."""
        return list(self.lrs.get(name, []) if isinstance(self.lrs, dict) else self.lrs)


@dataclass
class ScalingConfig:
    """``study scaling``: a wide Inception-ResNet for each learning rate, residual scale and seed.

    ``train`` holds the settings all runs share (width, blocks, input size, data, ``log_every_steps``: the
    death detector reads ``steps.jsonl``). ``lrs`` are the learning rates of the grid, each per
    ``reference_batch_size`` images as ``train.lr`` is (the paper's recipe: per 32 images, scaled linearly
    to the batch); without ``lrs`` every run uses ``train.lr``. Every (lr, scale, seed) is one run.

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
    scales: list[float] = field(default_factory=lambda: [1.0, 0.3, 0.2, 0.1])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    lrs: list[float] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    death: DeathCriteria = field(default_factory=DeathCriteria)
    min_filters: int = 1000
    wide_stages: int = 1
    probe_images: int = 64
    val_every_steps: int = 0
    paper_lr: float = PAPER_LR
    rate_factor: float = 4.0
    trained_top1: float = 50.0
    parallel: int = 1
    keep_checkpoints: bool = True
    time_limit_s: float | None = None

    def validate(self) -> None:
        from ..models.registry import list_models

        if self.model not in list_models():
            raise ValueError(f"scaling.model: unknown model {self.model!r}")
        if not isinstance(self.keep_checkpoints, bool):
            raise ValueError(f"scaling.keep_checkpoints must be true or false, got {self.keep_checkpoints!r}")
        if not self.scales or any(not _positive(s) for s in self.scales):
            raise ValueError(f"scaling.scales must be positive numbers, got {self.scales!r}")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scaling.scales has repeated values: {self.scales!r}")
        if self.lrs is not None:
            if not isinstance(self.lrs, list) or not self.lrs or any(not _positive(r) for r in self.lrs):
                raise ValueError(f"scaling.lrs must be a non-empty list of positive learning rates (or null), "
                                 f"got {self.lrs!r}")
            if len(set(self.lrs)) != len(self.lrs):
                raise ValueError(f"scaling.lrs has repeated values: {self.lrs!r}")
            if "lr" in self.train:
                raise ValueError("scaling.train sets lr and scaling.lrs is set too; give the rates in lrs only "
                                 "(--set lrs=[0.045])")
        _check_seeds(self.seeds, "scaling")
        _check_train(self.train, "scaling.train")
        if "residual_scale" in self.train:
            raise ValueError("scaling.train sets residual_scale; the scales come from scaling.scales")
        if not self.train.get("log_every_steps", 10):
            raise ValueError("scaling.train.log_every_steps is 0: the death detector needs steps.jsonl")
        self.death.validate()
        _check_parallel(self.parallel, "scaling")
        for name in ("probe_images", "wide_stages"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"scaling.{name} must be an integer of at least 1, got {value!r}")
        if not isinstance(self.val_every_steps, int) or self.val_every_steps < 0:
            raise ValueError(f"scaling.val_every_steps must be an integer >= 0 (0: after each epoch only), got "
                             f"{self.val_every_steps!r}")
        for name in ("paper_lr", "rate_factor", "trained_top1"):
            if not _positive(getattr(self, name)):
                raise ValueError(f"scaling.{name} must be a positive number, got {getattr(self, name)!r}")
        _check_time_limit(self.time_limit_s, "scaling")

    @property
    def rates(self) -> list[float | None]:
        """The learning rates of the grid (``[None]``: the one of ``train``, or the recipe's)."""
        return list(self.lrs) if self.lrs is not None else [None]


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass
class Preset:
    """A named set of study configurations (compare, sweep, scaling), read from a JSON file.

    ``sections`` names the sections the file holds (a file may hold only one, e.g. ``scaling-cpu``); the
    others keep their defaults and :meth:`section` refuses them.
    """

    name: str
    description: str
    compare: CompareConfig
    scaling: ScalingConfig
    sweep: SweepConfig = field(default_factory=SweepConfig)
    source: str = ""
    sections: tuple[str, ...] = SECTIONS

    def section(self, name: str) -> CompareConfig | SweepConfig | ScalingConfig:
        if name not in SECTIONS:
            raise ValueError(f"unknown study section {name!r}; choose one of {', '.join(SECTIONS)}")
        if name not in self.sections:
            raise ValueError(f"preset {self.name} has no {name} section (it holds: {', '.join(self.sections)}); "
                             f"choose another preset for `study {name}`")
        return getattr(self, name)


def _check_seeds(seeds: list[int], where: str) -> None:
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in seeds):
        raise ValueError(f"{where}.seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}.seeds has repeated values: {seeds!r}")


def _check_baselines(baselines: Any, known: list[str], paired: set[str]) -> None:
    """The baselines must be a list of distinct registered models, none of them already in a pair."""
    if not isinstance(baselines, list) or any(not isinstance(name, str) for name in baselines):
        raise ValueError(f"compare.baselines must be a list of model names, got {baselines!r}")
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
        if not isinstance(variant, dict) or set(variant) - {"label", "question", "pair", "seeds"} or not isinstance(
                variant.get("label"), str) or not isinstance(variant.get("question", ""), str):
            raise ValueError("compare.sensitivity: each variant is {\"label\": ..., \"question\": ..., \"pair\": "
                             f"[partner, residual], \"seeds\": [...] (optional)}}, got {variant!r}")
        pair = variant.get("pair")
        if not isinstance(pair, list) or len(pair) != 2 or any(name not in known for name in pair):
            raise ValueError(f"compare.sensitivity {variant['label']!r}: pair must be two known entries, got {pair!r}")
        if "seeds" in variant:
            _check_seeds(variant["seeds"], f"compare.sensitivity {variant['label']!r}")
        labels.append(variant["label"])
    if len(set(labels)) != len(labels):
        raise ValueError(f"compare.sensitivity has repeated labels: {labels!r}")


def _check_train(values: dict[str, Any], where: str, *, variant: bool = False) -> None:
    """Known training settings only, none that the study sets per run (``model`` only for a variant)."""
    from ..models.registry import list_models
    from ..training import TrainConfig

    known = set(TrainConfig.field_names())
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ValueError(f"{where}: unknown training setting(s) {', '.join(map(repr, unknown))}; see "
                         "`inception-resnet train --help` for the known ones")
    for reserved in ("model", "seed", "run_dir", "resume"):
        if reserved in values and not (variant and reserved == "model"):
            raise ValueError(f"{where} sets {reserved!r}, which the study sets for each run")
    try:  # types, finiteness and ranges, as a run would check them (before any run starts)
        TrainConfig.from_dict(values).resolved()
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(f"{where}: {error}") from None
    if variant and "model" in values and values["model"] not in list_models():
        raise ValueError(f"{where}.model: unknown model {values['model']!r}; a variant builds a registered model")


def _check_parallel(value: Any, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}.parallel must be a whole number of runs at once (1 or more), got {value!r}")


def _check_time_limit(value: float | None, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}.time_limit_s must be positive (or null), got {value}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if cls is CompareConfig and "level_margins" in values:
        raise ValueError(f"{where}.level_margins: the error levels are no longer derived from the runs; fix them in "
                         "advance with compare.levels (e.g. [50, 30, 20])")
    names = {f.name for f in fields(cls)}
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}")
    values = dict(values)
    if cls is ScalingConfig and isinstance(values.get("death"), dict):
        values["death"] = _build(DeathCriteria, values["death"], f"{where}.death")
    return cls(**values)


def preset_from_dict(data: dict[str, Any], *, name: str = "custom", source: str = "") -> Preset:
    """A :class:`Preset` from the JSON structure (unknown keys are errors); every section is validated."""
    unknown = [k for k in data if k not in ("name", "description", *SECTIONS)]
    if unknown:
        raise ValueError(f"preset {name}: unknown key(s) {', '.join(map(repr, unknown))}")
    preset = Preset(
        name=str(data.get("name", name)),
        description=str(data.get("description", "")),
        compare=_build(CompareConfig, data.get("compare", {}), "compare"),
        scaling=_build(ScalingConfig, data.get("scaling", {}), "scaling"),
        sweep=_build(SweepConfig, data.get("sweep", {}), "sweep"),
        source=source,
        sections=tuple(s for s in SECTIONS if s in data) or SECTIONS,
    )
    preset.compare.validate()
    preset.sweep.validate(preset.compare)
    preset.scaling.validate()
    return preset


def preset_names() -> list[str]:
    """The presets shipped with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped preset (by name) or of a user's preset (a path)."""
    path = Path(name_or_path).expanduser()
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"preset file not found: {path}")
        return path
    shipped = PRESET_DIR / f"{name_or_path}.json"
    if not shipped.is_file():
        raise ValueError(f"unknown preset {str(name_or_path)!r}; choose one of {', '.join(preset_names())} "
                         "or give the path of a JSON file")
    return shipped


def load_preset(name_or_path: str | os.PathLike) -> Preset:
    """Read and validate a preset: a shipped name (``cpu``, ``gpu``, ``imagenet``) or a JSON file's path."""
    path = preset_path(name_or_path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"preset {path} is not valid JSON: {err}") from None
    return preset_from_dict(data, name=path.stem, source=str(path))


def default_preset_name() -> str:
    """``gpu`` when CUDA is available, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, lists, true/false/null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def with_overrides(section: Any, overrides: list[str], *, compare: CompareConfig | None = None) -> Any:
    """A copy of ``section`` with ``KEY=VALUE`` settings applied and validated.

    ``KEY`` is a key of the section (``seeds``, ``pairs``, ``scales``...), ``death.KEY``, ``train.KEY``, or
    a bare training setting (``epochs=2`` means ``train.epochs=2``). ``VALUE`` is read as JSON when it parses.
    A sweep is checked against ``compare`` (whose entries it tunes).
    """
    from ..training import TrainConfig

    section = dataclasses.replace(section, train=dict(section.train))
    own = {f.name for f in fields(section)} - {"train"}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. epochs=2 or seeds=[0,1]")
        value = parse_value(raw)
        if key == "level_margins":
            raise ValueError("--set level_margins: the error levels are no longer derived from the runs; fix them "
                             "with --set levels=[50,30,20]")
        if key.startswith("death.") and isinstance(section, ScalingConfig):
            section.death = _build(DeathCriteria, {**dataclasses.asdict(section.death), key[6:]: value}, "death")
        elif key.startswith("train."):
            section.train[key[6:]] = value
        elif key in own:
            setattr(section, key, value)
        elif key in TrainConfig.field_names():
            section.train[key] = value
        else:
            raise ValueError(f"--set {key}: neither a study setting ({', '.join(sorted(own))}) nor a training "
                             "setting (see `inception-resnet train --help`)")
    if isinstance(section, SweepConfig):
        section.validate(compare)
    else:
        section.validate()
    return section


def section_to_dict(section: CompareConfig | SweepConfig | ScalingConfig) -> dict[str, Any]:
    """The section as plain JSON-ready data."""
    return dataclasses.asdict(section)
