"""``study compare``: residual networks against their partners, several seeds, verdicts with intervals.

A pair is [partner, residual]: the paper's non-residual baseline (Inception-v3 for Inception-ResNet-v1,
Inception-v4 for -v2) or the same residual network without its identity paths (``shortcut=False``), so
that the report answers both "residual vs the paper's baseline" and "the same network with and without its
shortcuts". :func:`run_compare` trains every (entry, seed) run not yet done (see :mod:`.runs`) and writes to
``out_dir`` (see :mod:`.compare_report` for the files)::

    report.md, verdicts.txt          the report; the verdict lines alone
    curves-<A>-vs-<B>.png            per pair: top-1 error against steps (levels marked) and seconds, ...
    models.csv, levels.csv           per entry; per pair and level (steps, seconds, ratios, intervals)
    validation.csv, epochs.csv/json  every run's validations and per-epoch rows
    summary.json, study.json         everything as data; the exact configuration and environment
    runs/<entry>-seed<k>/            the training runs

Each level's verdict compares the steps both networks needed to reach it, seed by seed: "faster" when the
95 % interval of the speed-up (partner's steps / residual's) lies above 1, "slower" when below, "not shown"
otherwise (:mod:`.stats`). The area under the error curve and the final error are judged the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig, train
from .config import CompareConfig, section_to_dict
from .figures import plot_pair
from .runs import RunRecord, RunSpec, TrainFn, collect_records, is_main_process
from .stats import (
    METRICS,
    Curve,
    Interval,
    Spread,
    best_value,
    clipped_share,
    curve_of,
    difference_interval,
    final_value,
    mean_error,
    mean_throughput,
    ratio_interval,
    spread,
    time_to_level,
)

BASELINE_GROUP = "baselines"
MIN_SEEDS = 3  # fewer paired seeds give no verdict: a bootstrap over two values is their range
BASELINE_FIGURE = "curves-baselines.png"


def pair_label(pair: list[str]) -> str:
    return f"{pair[0]}-vs-{pair[1]}"


def plan_compare(config: CompareConfig, out_dir: str | os.PathLike) -> list[RunSpec]:
    """The runs, seed by seed (so that a study cut short holds whole pairs), each entry once per seed.

    Within a seed the pairs' entries come first, then the baselines (group ``baselines``); every run has
    :meth:`CompareConfig.settings` of its entry and the seed.
    """
    runs_dir = Path(out_dir) / "runs"
    specs: dict[str, RunSpec] = {}
    for seed in config.seeds:
        groups = [(model, pair_label(pair)) for pair in config.pairs for model in pair]
        groups += [(model, BASELINE_GROUP) for model in config.baselines]
        for model, group in groups:
            key = f"{model}-seed{seed}"
            if key not in specs:
                settings = {**config.settings(model), "seed": seed}
                specs[key] = RunSpec(key, model, seed, group, settings, runs_dir / key)
    return list(specs.values())


# -- results -----------------------------------------------------------------------------------------------
@dataclass
class ModelResult:
    """One entry's results over its seeds (``seeds[i]`` is the seed of ``runs[i]`` and ``curves[i]``)."""

    name: str
    seeds: list[int]
    runs: list[list[dict[str, Any]]]
    curves: list[Curve]
    statuses: list[str]
    final_top1: Spread | None
    final_top5: Spread | None
    best_top1: Spread | None
    final_loss: Spread | None
    images_per_second: Spread | None
    clipped_percent: Spread | None
    parameters: int | None
    gmacs: float | None
    input_size: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    peak_lr: float | None = None
    total_steps: int | None = None

    @property
    def lr(self) -> float | None:
        """The learning rate per reference batch (the entry's own, else the recipe's)."""
        if not self.settings:
            return None
        return TrainConfig.from_dict(self.settings).resolved().lr

    def curve(self, seed: int) -> Curve | None:
        return self.curves[self.seeds.index(seed)] if seed in self.seeds else None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("name", "seeds", "statuses", "parameters", "gmacs", "input_size",
                                             "peak_lr", "total_steps")}
        out["model"] = self.settings.get("model", self.name)
        out["lr"] = self.lr
        for key in ("final_top1", "final_top5", "best_top1", "final_loss", "images_per_second", "clipped_percent"):
            value = getattr(self, key)
            out[key] = value.to_dict() if value is not None else None
        out["curves"] = [c.to_dict() for c in self.curves]
        return out


@dataclass
class Judged:
    """A paired comparison: per-seed values of both entries, the estimate with its interval, the verdict."""

    partner: list[float | None]
    residual: list[float | None]
    interval: Interval | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"partner": self.partner, "residual": self.residual, "verdict": self.verdict,
                "interval": self.interval.to_dict() if self.interval else None}


@dataclass
class LevelResult:
    """Steps and seconds each entry of a pair took to reach one top-1 error level, per seed, judged."""

    level: float
    steps: Judged
    seconds: Judged

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "steps": self.steps.to_dict(), "seconds": self.seconds.to_dict()}


@dataclass
class PairResult:
    """A pair's entries, levels, area under the curve, final error difference, figure and verdict lines."""

    partner: ModelResult
    residual: ModelResult
    seeds: list[int]
    levels: list[LevelResult]
    mean_error: Judged
    final_error: Judged
    figure: str | None = None

    @property
    def label(self) -> str:
        return f"{self.partner.name}-vs-{self.residual.name}"

    def verdict_lines(self) -> list[str]:
        """The pair's verdicts, one line each (the report's and ``make demo``'s summary)."""
        p, r = self.partner.name, self.residual.name
        head = f"{r} vs {p} ({len(self.seeds)} paired seeds, 95 % bootstrap intervals):"
        lines = [head]
        for level in self.levels:
            lines.append(f"  steps to {level.level:g} % top-1 error, speed-up {p}/{r}: "
                         f"{_interval_text(level.steps.interval, 'x')} -> {level.steps.verdict}")
        lines.append(f"  mean top-1 error over training, ratio {p}/{r}: "
                     f"{_interval_text(self.mean_error.interval, 'x')} -> {self.mean_error.verdict}")
        lines.append(f"  final top-1 error, {r} minus {p}: "
                     f"{_interval_text(self.final_error.interval, ' points')} -> {self.final_error.verdict}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"partner": self.partner.to_dict(), "residual": self.residual.to_dict(), "seeds": self.seeds,
                "levels": [lv.to_dict() for lv in self.levels], "mean_error": self.mean_error.to_dict(),
                "final_error": self.final_error.to_dict(), "figure": self.figure,
                "verdict_lines": self.verdict_lines()}


def _interval_text(interval: Interval | None, suffix: str) -> str:
    if interval is None:
        return "-"
    return f"{interval.estimate:.2f}{suffix} [{interval.low:.2f}, {interval.high:.2f}]"


@dataclass
class CompareResult:
    """What :func:`run_compare` produced: the pairs' and baselines' results, the run records and the report."""

    out_dir: Path
    pairs: list[PairResult]
    records: list[RunRecord]
    report: Path | None
    baselines: list[ModelResult] = field(default_factory=list)
    baselines_figure: str | None = None

    def verdict_lines(self) -> list[str]:
        return [line for pair in self.pairs for line in pair.verdict_lines()]


# -- running ---------------------------------------------------------------------------------------------
def run_compare(
    config: CompareConfig,
    out_dir: str | os.PathLike,
    *,
    preset: str = "custom",
    command: str | None = None,
    train_fn: TrainFn = train,
    log: Callable[[str], None] | None = print,
    report_only: bool = False,
) -> CompareResult:
    """Train the runs not done yet (all of them unless ``report_only``) and write the report to ``out_dir``."""
    from .compare_report import draw_baselines, write_compare_report

    config.validate()
    out = Path(out_dir)
    specs = plan_compare(config, out)
    env = environment(command or "")  # the command the caller gives, else none
    study = {"study": "compare", "preset": preset, "config": section_to_dict(config), "environment": env}
    records = collect_records(specs, out, study, report_only=report_only, train_fn=train_fn,
                              time_limit_s=config.time_limit_s, log=log, parallel=config.parallel)
    if not is_main_process():
        return CompareResult(out, [], records, None)
    pairs = [summarize_pair(config, pair, records) for pair in config.pairs]
    for result in pairs:
        result.figure = draw_pair(result, out, config)
    baselines = [summarize_model(model, records, config.weights) for model in config.baselines]
    figure = draw_baselines(baselines, out, config)
    report = write_compare_report(config, pairs, records, out, preset, baselines=baselines, baselines_figure=figure,
                                  redrawn=report_only)
    return CompareResult(out, pairs, records, report, baselines, figure)


# -- summarising -----------------------------------------------------------------------------------------
def model_cost(settings: dict[str, Any], derived: dict[str, Any]) -> tuple[int, float, int]:
    """(parameters, GMACs per image, input size) of the run's network as trained, built on the meta device."""
    import torch

    from ..models.complexity import count_macs, count_parameters
    from ..weights.factory import create_model

    config = TrainConfig.from_dict(settings)
    classes = derived.get("num_classes") or config.num_classes or 10
    size = derived.get("input_size") or config.input_size or 299
    with torch.device("meta"):
        net = create_model(config.model, num_classes=classes, in_chans=config.in_chans, **config.model_kwargs())
    macs = count_macs(net, (config.in_chans, size, size))
    return count_parameters(net), macs / 1e9, size


def summarize_model(model: str, records: list[RunRecord], weights: str) -> ModelResult:
    keys = METRICS[weights]
    mine = [r for r in records if r.spec.model == model]
    done = [r for r in mine if r.finished and (r.rows or r.evaluations)]
    runs = [r.rows for r in done]
    curves = [curve_of(r.evaluations, r.rows, weights) for r in done]
    parameters = gmacs = size = None
    settings: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    if mine:
        source = done[0] if done else mine[0]
        settings, derived = source.spec.settings, source.derived
        parameters, gmacs, size = model_cost({**settings, "model": settings.get("model", model)}, derived)
    return ModelResult(
        name=model,
        seeds=[r.spec.seed for r in done],
        runs=runs,
        curves=curves,
        statuses=[f"seed {r.spec.seed}: {r.status}" for r in mine],
        final_top1=spread(c.top1[-1] if c.top1 else None for c in curves),
        final_top5=spread(c.top5[-1] if c.top5 else None for c in curves),
        best_top1=spread(best_value(rows, keys["top1"]) for rows in runs),
        final_loss=spread(final_value(rows, "train_loss") for rows in runs),
        images_per_second=spread(mean_throughput(rows) for rows in runs),
        clipped_percent=spread(clipped_share(rows) for rows in runs),
        parameters=parameters,
        gmacs=gmacs,
        input_size=size,
        settings=settings,
        peak_lr=derived.get("peak_lr"),
        total_steps=derived.get("total_steps"),
    )


def judge_steps(partner: list[float | None], residual: list[float | None], budget: float | None) -> Judged:
    """Steps (or seconds) to a level, paired by seed: the speed-up partner / residual and its verdict.

    A run that never reached the level has no time. When every residual run reached it and no partner run
    did (or the reverse), the verdict says so without a ratio. When every residual run reached it but some
    partner runs did not, and ``budget`` (the run's length) is known, those partner runs count as the whole
    budget: the ratio is then a lower bound of the speed-up, and "faster (at least ...)" is said only when
    that bound's interval lies above 1 (the reverse case likewise gives "slower (at least ...)"). Otherwise
    the interval covers the seeds where both reached it, and needs at least ``MIN_SEEDS`` of them.
    """
    n = len(partner)
    reached_p = sum(v is not None for v in partner)
    reached_r = sum(v is not None for v in residual)
    within = f" within {budget:g} steps" if budget else ""
    if n and reached_r == n and reached_p == 0:
        return Judged(partner, residual, None, f"faster (only the residual network reached it{within})")
    if n and reached_p == n and reached_r == 0:
        return Judged(partner, residual, None, f"slower (only the partner reached it{within})")
    if budget and n >= MIN_SEEDS and reached_r == n and reached_p < n:
        bound = ratio_interval([budget if v is None else v for v in partner], residual)
        if bound is not None and bound.low > 1.0:
            return Judged(partner, residual, bound, f"faster (at least: {n - reached_p} partner run(s) never "
                                                    f"reached it{within}, counted as {budget:g})")
    if budget and n >= MIN_SEEDS and reached_p == n and reached_r < n:
        bound = ratio_interval(partner, [budget if v is None else v for v in residual])
        if bound is not None and bound.high < 1.0:
            return Judged(partner, residual, bound, f"slower (at least: {n - reached_r} residual run(s) never "
                                                    f"reached it{within}, counted as {budget:g})")
    interval = ratio_interval(partner, residual)
    if interval is None or interval.n < MIN_SEEDS:
        return Judged(partner, residual, interval, f"not shown ({interval.n if interval else 0} seed(s) with a "
                                                   f"ratio; reached in {reached_r}/{n} residual and {reached_p}/{n} "
                                                   "partner runs)")
    note = "" if interval.n == n else f" over the {interval.n} seeds where both reached it"
    if interval.low > 1.0:
        return Judged(partner, residual, interval, "faster" + note)
    if interval.high < 1.0:
        return Judged(partner, residual, interval, "slower" + note)
    return Judged(partner, residual, interval, "not shown" + note)


def judge_lower(partner: list[float | None], residual: list[float | None], *, ratio: bool) -> Judged:
    """An error, paired by seed: ``ratio`` partner / residual (above 1: the residual's is lower) or the
    difference residual - partner (below 0: lower), with "lower", "higher" or "not shown"."""
    if ratio:
        interval = ratio_interval(partner, residual)
        lower = interval is not None and interval.low > 1.0
        higher = interval is not None and interval.high < 1.0
    else:
        interval = difference_interval(partner, residual)
        lower = interval is not None and interval.high < 0.0
        higher = interval is not None and interval.low > 0.0
    if interval is None or interval.n < MIN_SEEDS:
        return Judged(partner, residual, interval, f"not shown (fewer than {MIN_SEEDS} paired seeds)")
    return Judged(partner, residual, interval, "lower" if lower else "higher" if higher else "not shown")


def summarize_pair(config: CompareConfig, pair: list[str], records: list[RunRecord]) -> PairResult:
    """The pair's entries, and its levels, mean error and final error judged over the seeds both finished."""
    partner = summarize_model(pair[0], records, config.weights)
    residual = summarize_model(pair[1], records, config.weights)
    seeds = [s for s in partner.seeds if s in residual.seeds]
    curves_p = [partner.curve(s) for s in seeds]
    curves_r = [residual.curve(s) for s in seeds]
    budget = partner.total_steps or residual.total_steps
    levels = []
    for level in config.levels:
        p = [time_to_level(c, level) for c in curves_p]
        r = [time_to_level(c, level) for c in curves_r]
        levels.append(LevelResult(float(level), judge_steps([x[0] for x in p], [x[0] for x in r], budget),
                                  judge_steps([x[1] for x in p], [x[1] for x in r], None)))
    mean = judge_lower([mean_error(c) for c in curves_p], [mean_error(c) for c in curves_r], ratio=True)
    final = judge_lower([c.top1[-1] if c.top1 else None for c in curves_p],
                        [c.top1[-1] if c.top1 else None for c in curves_r], ratio=False)
    return PairResult(partner, residual, seeds, levels, mean, final)


def draw_pair(result: PairResult, out: Path, config: CompareConfig) -> str | None:
    models = {m.name: (m.curves, m.runs) for m in (result.partner, result.residual)}
    if not any(curves for curves, _ in models.values()):
        return None
    name = f"curves-{result.label}.png"
    plot_pair(models, out / name, levels=config.levels, weights=config.weights,
              title=f"{result.partner.name} vs {result.residual.name}")
    return name
