"""``study compare``: residual networks against their partners, many paired seeds, verdicts with t-intervals.

A pair is [partner, residual]: the paper's non-residual baseline (Inception-v3 for Inception-ResNet-v1,
Inception-v4 for -v2) or the same residual network without its identity paths (``shortcut=False``, with the
released block scales or, the fair control, with scale 1.0), so that the report answers both "residual vs
the paper's baseline" and "the same network with and without its shortcuts". :func:`run_compare` trains
every (entry, seed) run not yet done (see :mod:`.runs`), times every distinct network alone
(:mod:`.timing`), judges each pair (:mod:`.verdicts`) and writes the report (:mod:`.compare_report`)::

    report.md, verdicts.txt          the report; the verdict lines alone
    curves-<A>-vs-<B>.png            per pair: top-1 error against steps (levels marked) and seconds, ...
    models.csv, levels.csv           per entry; per pair and level (steps, seconds, brackets, intervals)
    validation.csv, epochs.csv/json  every run's validations and per-epoch rows
    timing.csv                       every network's step time, measured alone
    summary.json, study.json         everything as data; the exact configuration and environment
    runs/<entry>-seed<k>/            the training runs; timing/<network>/: the timing runs
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig, train
from .compare_report import write_compare_report
from .config import CompareConfig, section_to_dict
from .results import CompareResult, Crossing, Judged, LevelResult, ModelResult, PairResult, VariantResult
from .runs import RunRecord, RunSpec, TrainFn, collect_records, is_main_process
from .stats import (
    Curve,
    clipped_share,
    crossing_bracket,
    curve_of,
    final_value,
    mean_error,
    spread,
    time_to_level,
    with_step_seconds,
)
from .timing import measure_step_times, scale
from .verdicts import judge_error, judge_time

BASELINE_GROUP = "baselines"
EARLY_STEPS = 10  # the gradient norms reported per entry: optimiser steps 1..EARLY_STEPS


def pair_label(pair: list[str]) -> str:
    return f"{pair[0]}-vs-{pair[1]}"


def plan_compare(config: CompareConfig, out_dir: str | os.PathLike) -> list[RunSpec]:
    """The runs, seed by seed (so that a study cut short holds whole pairs), each entry once per seed.

    Within a seed the pairs' entries come first, then the baselines (group ``baselines``); the sensitivity
    variants' entries follow for their own seeds. Every run has :meth:`CompareConfig.settings` of its entry
    and the seed.
    """
    runs_dir = Path(out_dir) / "runs"
    wanted: list[tuple[int, str, str]] = []
    for seed in config.seeds:
        wanted += [(seed, model, pair_label(pair)) for pair in config.pairs for model in pair]
        wanted += [(seed, model, BASELINE_GROUP) for model in config.baselines]
    for variant in config.sensitivity:
        wanted += [
            (seed, model, variant["label"]) for seed in config.variant_seeds(variant) for model in variant["pair"]
        ]
    specs: dict[str, RunSpec] = {}
    for seed, model, group in wanted:
        key = f"{model}-seed{seed}"
        if key not in specs:
            settings = {**config.settings(model), "seed": seed}
            specs[key] = RunSpec(key, model, seed, group, settings, runs_dir / key)
    return list(specs.values())


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
    """Train the runs not done yet (all of them unless ``report_only``), time every network alone, and write
    the report to ``out_dir``."""
    config.validate()
    out = Path(out_dir)
    specs = plan_compare(config, out)
    env = environment(command or "")  # the command the caller gives, else none
    study = {"study": "compare", "preset": preset, "config": section_to_dict(config), "environment": env}
    records = collect_records(
        specs,
        out,
        study,
        report_only=report_only,
        train_fn=train_fn,
        time_limit_s=config.time_limit_s,
        log=log,
        parallel=config.parallel,
    )
    if not is_main_process():
        return CompareResult(out, [], records, None)
    timings: dict[str, dict[str, Any]] = {}
    if config.time_steps:
        entries = {name: config.settings(name) for name in config.model_names}
        if log is not None and not report_only:
            log("timing every network alone (one run at a time, after the study's runs)")
        timings = measure_step_times(
            entries, out, train_fn=train_fn, log=log, report_only=report_only, steps=config.time_steps
        )
    seconds = {name: t.get("seconds_per_step") for name, t in timings.items()}
    pairs = [summarize_pair(config, pair, records, seconds) for pair in config.pairs]
    variants = [
        VariantResult(
            v["label"],
            v.get("question", ""),
            summarize_pair(config, v["pair"], records, seconds, config.variant_seeds(v)),
        )
        for v in config.sensitivity
    ]
    baselines = [summarize_model(model, records, config.weights, seconds.get(model)) for model in config.baselines]
    result = CompareResult(out, pairs, records, None, baselines, None, variants)
    result.report = write_compare_report(config, result, preset, timings=timings, redrawn=report_only)
    return result


# -- summarising -----------------------------------------------------------------------------------------
def model_cost(settings: dict[str, Any], derived: dict[str, Any]) -> tuple[int, int, int]:
    """(parameters, multiply-accumulates per image, input size) of the run's network as trained (meta device)."""
    import torch

    from ..models.complexity import count_macs, count_parameters
    from ..weights.factory import create_model

    config = TrainConfig.from_dict(settings)
    classes = derived.get("num_classes") or config.num_classes or 10
    size = derived.get("input_size") or config.input_size or 299
    with torch.device("meta"):
        net = create_model(config.model, num_classes=classes, in_chans=config.in_chans, **config.model_options)
    return count_parameters(net), int(count_macs(net, (config.in_chans, size, size))), size


def early_grad_norms(steps: list[dict[str, Any]], count: int = EARLY_STEPS) -> list[float]:
    """The gradient norms (before clipping) of optimiser steps 1..``count`` as logged (``steps.jsonl``)."""
    return [float(r["grad_norm"]) for r in steps if 1 <= r.get("step", 0) <= count and r.get("grad_norm") is not None]


def summarize_model(
    model: str,
    records: list[RunRecord],
    weights: str,
    step_seconds: float | None = None,
    seeds: list[int] | None = None,
) -> ModelResult:
    """An entry's results over its finished runs (only ``seeds`` when given); curves in isolated seconds."""
    mine = [r for r in records if r.spec.model == model and (seeds is None or r.spec.seed in seeds)]
    done = [r for r in mine if r.finished and (r.rows or r.evaluations)]
    runs = [r.rows for r in done]
    curves = [with_step_seconds(curve_of(r.evaluations, r.rows, weights), step_seconds) for r in done]
    parameters = macs = size = None
    settings: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    if mine:
        source = done[0] if done else mine[0]
        settings, derived = source.spec.settings, source.derived
        parameters, macs, size = model_cost({**settings, "model": settings.get("model", model)}, derived)
    return ModelResult(
        name=model,
        seeds=[r.spec.seed for r in done],
        runs=runs,
        curves=curves,
        statuses=[f"seed {r.spec.seed}: {r.status}" for r in mine],
        final_top1=spread(c.top1[-1] if c.top1 else None for c in curves),
        final_top5=spread(c.top5[-1] if c.top5 else None for c in curves),
        final_loss=spread(final_value(rows, "train_loss") for rows in runs),
        clipped_percent=spread(clipped_share(rows) for rows in runs),
        parameters=parameters,
        macs=macs,
        input_size=size,
        settings=settings,
        peak_lr=derived.get("peak_lr"),
        total_steps=derived.get("total_steps"),
        step_seconds=step_seconds,
        early_grad_norms=[early_grad_norms(r.steps) for r in done],
        clipped_flags=[[bool(row.get("clipped")) for row in r.steps if row.get("step", 0) >= 1] for r in done],
    )


def crossing(curve: Curve | None, level: float, clipped: list[bool] | None) -> Crossing | None:
    """Where ``curve`` first reached ``level``, with the share of clipped steps up to that validation."""
    if curve is None:
        return None
    bracket = crossing_bracket(curve, level)
    if bracket is None:
        return None
    before, after = bracket
    share = None
    if clipped and len(clipped) >= after >= 1:
        share = 100.0 * sum(clipped[: int(after)]) / int(after)
    return Crossing(before, after, share)


def summarize_pair(
    config: CompareConfig,
    pair: list[str],
    records: list[RunRecord],
    step_seconds: dict[str, float | None] | None = None,
    seeds: list[int] | None = None,
) -> PairResult:
    """The pair's entries, and its levels, mean error and final error judged over the seeds both finished."""
    step_seconds = step_seconds or {}
    partner = summarize_model(pair[0], records, config.weights, step_seconds.get(pair[0]), seeds)
    residual = summarize_model(pair[1], records, config.weights, step_seconds.get(pair[1]), seeds)
    common = [s for s in partner.seeds if s in residual.seeds]
    curves_p = [partner.curve(s) for s in common]
    curves_r = [residual.curve(s) for s in common]
    clipped_p = [partner.clipped_flags[partner.seeds.index(s)] for s in common]
    clipped_r = [residual.clipped_flags[residual.seeds.index(s)] for s in common]
    budget_p = partner.total_steps or residual.total_steps
    budget_r = residual.total_steps or partner.total_steps
    levels = []
    for level in config.levels:
        steps_p = [time_to_level(c, level)[0] if c else None for c in curves_p]
        steps_r = [time_to_level(c, level)[0] if c else None for c in curves_r]
        by_steps = judge_time(steps_p, steps_r, budget_partner=budget_p, budget_residual=budget_r)
        if partner.step_seconds and residual.step_seconds:
            by_seconds = judge_time(
                scale(steps_p, partner.step_seconds),
                scale(steps_r, residual.step_seconds),
                budget_partner=budget_p * partner.step_seconds if budget_p else None,
                budget_residual=budget_r * residual.step_seconds if budget_r else None,
            )
        else:
            by_seconds = Judged(steps_p, steps_r, None, "not shown (no isolated step times measured)")
        crossings_p = [crossing(c, level, f) for c, f in zip(curves_p, clipped_p, strict=True)]
        crossings_r = [crossing(c, level, f) for c, f in zip(curves_r, clipped_r, strict=True)]
        conservative = judge_time(
            [c.before if c and c.before > 0 else None for c in crossings_p],
            [c.after if c else None for c in crossings_r],
            budget_partner=budget_p,
            budget_residual=budget_r,
        )
        levels.append(LevelResult(float(level), by_steps, by_seconds, crossings_p, crossings_r, conservative))
    mean = judge_error(
        [mean_error(c) if c else None for c in curves_p], [mean_error(c) if c else None for c in curves_r], ratio=True
    )
    final = judge_error(
        [c.top1[-1] if c and c.top1 else None for c in curves_p],
        [c.top1[-1] if c and c.top1 else None for c in curves_r],
        ratio=False,
    )
    return PairResult(partner, residual, common, levels, mean, final)
