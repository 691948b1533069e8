"""``study compare``: residual networks against their non-residual partners, several seeds, one report.

:func:`run_compare` trains every (pair, seed) run not yet done (see :mod:`.runs`) and writes to ``out_dir``::

    report.md              what was run, the figures and tables, what they show, the paper's numbers beside
    curves-<A>-vs-<B>.png  per pair: loss, top-1 and top-5 error against epochs and training time
    curves-baselines.png   the same curves for the baselines (``baselines``: extra models, no residual partner)
    models.csv             per model: parameters, GMACs, images/s, final and best errors (mean, sd, min, max)
    levels.csv             per pair and error level: epochs and seconds to reach it, the residual's speed-up
    epochs.csv / .json     every run's per-epoch rows (model, pair, seed + the training metrics)
    summary.json           all of the above as data; study.json: the exact configuration and environment
    runs/<model>-seed<k>/  the training runs (config.json, metrics, steps.jsonl, checkpoints)
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
from .report import PAPER, environment_lines, fmt, md_table, write_csv, write_json
from .runs import (
    RunRecord,
    RunSpec,
    TrainFn,
    collect_records,
    is_main_process,
    run_entry,
)
from .stats import (
    METRICS,
    Spread,
    best_value,
    derive_levels,
    direction,
    final_value,
    mean_throughput,
    ratio_of_means,
    ratios,
    spread,
    time_to_level,
)

# Table 2 of the paper: single crop, top-1 / top-5 error (%) on ILSVRC-2012 validation (non-blacklisted subset).
PAPER_TABLE2 = {
    "bn_inception": (25.2, 7.8),
    "inception_v3": (21.2, 5.6),
    "inception_resnet_v1": (21.3, 5.5),
    "inception_v4": (20.0, 5.0),
    "inception_resnet_v2": (19.9, 4.9),
    "inception_resnet_v2_paper": (19.9, 4.9),
}


BASELINE_GROUP = "baselines"
BASELINE_FIGURE = "curves-baselines.png"


def pair_label(pair: list[str]) -> str:
    return f"{pair[0]}-vs-{pair[1]}"


def plan_compare(config: CompareConfig, out_dir: str | os.PathLike) -> list[RunSpec]:
    """The runs, seed by seed (so that a study cut short holds whole pairs), each model once per seed.

    Within a seed the pairs' models come first, then the baselines (group ``baselines``), all with the same
    settings: a baseline differs from a pair's network only in its ``model``.
    """
    runs_dir = Path(out_dir) / "runs"
    specs: dict[str, RunSpec] = {}
    for seed in config.seeds:
        groups = [(model, pair_label(pair)) for pair in config.pairs for model in pair]
        groups += [(model, BASELINE_GROUP) for model in config.baselines]
        for model, group in groups:
            key = f"{model}-seed{seed}"
            if key not in specs:
                settings = {**config.train, **config.models.get(model, {}), "model": model, "seed": seed}
                specs[key] = RunSpec(key, model, seed, group, settings, runs_dir / key)
    return list(specs.values())


@dataclass
class ModelResult:
    """One model's results over its seeds."""

    name: str
    seeds: list[int]
    runs: list[list[dict[str, Any]]]
    statuses: list[str]
    final_top1: Spread | None
    final_top5: Spread | None
    best_top1: Spread | None
    final_loss: Spread | None
    images_per_second: Spread | None
    parameters: int | None
    gmacs: float | None
    input_size: int | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("name", "seeds", "statuses", "parameters", "gmacs", "input_size")}
        for key in ("final_top1", "final_top5", "best_top1", "final_loss", "images_per_second"):
            value = getattr(self, key)
            out[key] = value.to_dict() if value is not None else None
        return out


@dataclass
class LevelResult:
    """Epochs and seconds each model of a pair took to reach one top-1 error level, per seed."""

    level: float
    partner_epochs: list[float | None]
    residual_epochs: list[float | None]
    partner_seconds: list[float | None]
    residual_seconds: list[float | None]

    @property
    def epoch_speedups(self) -> list[float]:
        """Per seed: partner's epochs / residual's epochs (seeds where both reached the level)."""
        return ratios(self.partner_epochs, self.residual_epochs)

    @property
    def epoch_speedup(self) -> float | None:
        """The partner's mean epochs over the residual's, over the seeds where both reached the level."""
        return ratio_of_means(self.partner_epochs, self.residual_epochs)

    @property
    def time_speedup(self) -> float | None:
        return ratio_of_means(self.partner_seconds, self.residual_seconds)

    @property
    def time_speedups(self) -> list[float]:
        return ratios(self.partner_seconds, self.residual_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "partner_epochs": self.partner_epochs, "residual_epochs": self.residual_epochs,
                "partner_seconds": self.partner_seconds, "residual_seconds": self.residual_seconds,
                "epoch_speedups": self.epoch_speedups, "time_speedups": self.time_speedups,
                "epoch_speedup": self.epoch_speedup, "time_speedup": self.time_speedup}


@dataclass
class PairResult:
    """A pair's models, error levels, figure and findings."""

    partner: ModelResult
    residual: ModelResult
    levels: list[LevelResult]
    chance: float
    figure: str | None = None
    findings: list[str] = field(default_factory=list)
    verdicts: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.partner.name}-vs-{self.residual.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"partner": self.partner.to_dict(), "residual": self.residual.to_dict(),
                "levels": [lv.to_dict() for lv in self.levels], "chance_top1_error": self.chance,
                "figure": self.figure, "findings": self.findings, "verdicts": self.verdicts}


@dataclass
class CompareResult:
    """What :func:`run_compare` produced: the pairs' and baselines' results, the run records and the report."""

    out_dir: Path
    pairs: list[PairResult]
    records: list[RunRecord]
    report: Path | None
    baselines: list[ModelResult] = field(default_factory=list)
    baselines_figure: str | None = None


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
    config.validate()
    out = Path(out_dir)
    specs = plan_compare(config, out)
    env = environment(command or "")  # the command the caller gives, else none
    study = {"study": "compare", "preset": preset, "config": section_to_dict(config), "environment": env}
    records = collect_records(specs, out, study, report_only=report_only, train_fn=train_fn,
                              time_limit_s=config.time_limit_s, log=log)
    if not is_main_process():
        return CompareResult(out, [], records, None)
    pairs = [summarize_pair(config, pair, records) for pair in config.pairs]
    for result in pairs:
        result.figure = draw_pair(result, out, config.weights)
    baselines = [summarize_model(model, records, config.weights) for model in config.baselines]
    figure = draw_baselines(baselines, out, config.weights)
    report = write_compare_report(config, pairs, records, out, preset, baselines=baselines, baselines_figure=figure)
    return CompareResult(out, pairs, records, report, baselines, figure)


# -- summarising -----------------------------------------------------------------------------------------
def model_cost(model: str, settings: dict[str, Any], derived: dict[str, Any]) -> tuple[int, float, int]:
    """(parameters, GMACs per image, input size) of the model as trained, built on the meta device."""
    import torch

    from ..models.complexity import count_macs, count_parameters
    from ..weights.factory import create_model

    config = TrainConfig.from_dict({**settings, "model": model})
    classes = derived.get("num_classes") or config.num_classes or 10
    size = derived.get("input_size") or config.input_size or 299
    with torch.device("meta"):
        net = create_model(model, num_classes=classes, in_chans=config.in_chans, **config.model_kwargs())
    macs = count_macs(net, (config.in_chans, size, size))
    return count_parameters(net), macs / 1e9, size


def summarize_model(model: str, records: list[RunRecord], weights: str) -> ModelResult:
    keys = METRICS[weights]
    mine = [r for r in records if r.spec.model == model]
    done = [r for r in mine if r.finished and r.rows]
    runs = [r.rows for r in done]
    parameters = gmacs = size = None
    if mine:
        source = done[0] if done else mine[0]
        parameters, gmacs, size = model_cost(model, source.spec.settings, source.derived)
    return ModelResult(
        name=model,
        seeds=[r.spec.seed for r in done],
        runs=runs,
        statuses=[f"seed {r.spec.seed}: {r.status}" for r in mine],
        final_top1=spread(final_value(rows, keys["top1"]) for rows in runs),
        final_top5=spread(final_value(rows, keys["top5"]) for rows in runs),
        best_top1=spread(best_value(rows, keys["top1"]) for rows in runs),
        final_loss=spread(final_value(rows, "train_loss") for rows in runs),
        images_per_second=spread(mean_throughput(rows) for rows in runs),
        parameters=parameters,
        gmacs=gmacs,
        input_size=size,
    )


def chance_error(records: list[RunRecord]) -> float:
    """Top-1 error of guessing (1 - 1/classes), in %, from the runs' recorded class count (10 by default)."""
    classes = next((r.derived["num_classes"] for r in records if r.derived.get("num_classes")), 10)
    return 100.0 * (1.0 - 1.0 / classes)


def summarize_pair(config: CompareConfig, pair: list[str], records: list[RunRecord]) -> PairResult:
    """The pair's model results, time-to-level table over the seeds both models finished, and findings."""
    key = METRICS[config.weights]["top1"]
    partner = summarize_model(pair[0], records, config.weights)
    residual = summarize_model(pair[1], records, config.weights)
    chance = chance_error([r for r in records if r.spec.model in pair])
    seeds = [s for s in partner.seeds if s in residual.seeds]
    rows_p = [partner.runs[partner.seeds.index(s)] for s in seeds]
    rows_r = [residual.runs[residual.seeds.index(s)] for s in seeds]
    levels = list(config.levels) if config.levels else derive_levels(rows_p + rows_r, key, config.level_margins,
                                                                      chance)
    level_results = []
    for level in levels:
        p = [time_to_level(rows, key, level, chance) for rows in rows_p]
        r = [time_to_level(rows, key, level, chance) for rows in rows_r]
        level_results.append(LevelResult(level, [x[0] for x in p], [x[0] for x in r], [x[1] for x in p],
                                         [x[1] for x in r]))
    result = PairResult(partner, residual, level_results, chance)
    result.findings, result.verdicts = pair_findings(result)
    return result


def pair_findings(result: PairResult) -> tuple[list[str], dict[str, str]]:
    """Plain sentences on what the pair's numbers show, and verdicts against the paper's two claims."""
    p, r = result.partner, result.residual
    findings: list[str] = []
    verdicts: dict[str, str] = {}
    if p.final_top1 is None or r.final_top1 is None:
        findings.append("Not enough finished runs of this pair to compare them.")
        return findings, {"faster_training": "not measured", "similar_final_error": "not measured"}
    diff = r.final_top1.mean - p.final_top1.mean
    within = r.final_top1.overlaps(p.final_top1)
    lower = "lower" if diff < 0 else "higher"
    n = min(r.final_top1.n, p.final_top1.n)
    findings.append(
        f"Final validation top-1 error: {r.name} {r.final_top1.text()} % vs {p.name} {p.final_top1.text()} % "
        f"(mean ± sd over {n} seed(s)); the residual network is {abs(diff):.2f} points {lower}. "
        + ("With one seed the spread between seeds is unknown, so this is not evidence of a difference."
           if n < 2 else "This is within the seed spread (the ranges over seeds overlap): no difference is shown."
           if within else "This is beyond the seed spread (the ranges over seeds do not overlap).")
    )
    within = within or n < 2
    if p.final_loss is not None and r.final_loss is not None:
        loss_diff = r.final_loss.mean - p.final_loss.mean
        findings.append(
            f"Final training loss (label-smoothed): {r.name} {r.final_loss.text(3)} vs {p.name} "
            f"{p.final_loss.text(3)}: the residual network's is {abs(loss_diff):.3f} "
            f"{'lower' if loss_diff < 0 else 'higher'}, "
            + ("with one seed (spread unknown)." if n < 2 else "within the seed spread."
               if r.final_loss.overlaps(p.final_loss) else "beyond the seed spread.")
        )
    directions = []
    for level in result.levels:
        speedups = level.epoch_speedups
        kind = direction(speedups)
        directions.append(kind)
        reached_p = sum(x is not None for x in level.partner_epochs)
        reached_r = sum(x is not None for x in level.residual_epochs)
        sp = spread(level.partner_epochs)
        sr = spread(level.residual_epochs)
        if not speedups:
            findings.append(f"{level.level:.1f} % top-1 error: reached by {reached_r} {r.name} and {reached_p} "
                            f"{p.name} run(s); no seed where both reached it.")
            continue
        explain = {"faster": "faster in every seed", "slower": "slower in every seed",
                   "mixed": "faster in some seeds and not in others: within the seed spread"}[kind]
        if len(speedups) == 1:
            explain = "one seed only: the spread between seeds is unknown"
        time_text = f", {level.time_speedup:.2f}x in training time" if level.time_speedup else ""
        findings.append(
            f"To reach {level.level:.1f} % top-1 error, {r.name} needed {fmt(sr.mean if sr else None)} epochs and "
            f"{p.name} {fmt(sp.mean if sp else None)} (means over seeds): a speed-up of {fmt(level.epoch_speedup)}x "
            f"in epochs (per seed {min(speedups):.2f}-{max(speedups):.2f}x; {explain}){time_text}."
        )
    if p.images_per_second and r.images_per_second:
        rate_r, rate_p = r.images_per_second.mean, p.images_per_second.mean
        findings.append(f"Training throughput: {r.name} {rate_r:.1f} images/s, {p.name} {rate_p:.1f} images/s "
                        f"(ratio {rate_r / rate_p:.2f}; measured on this machine, slowed by whatever else ran on it).")
    paired = max((len(level.epoch_speedups) for level in result.levels), default=0)
    if paired == 1:
        verdicts["faster_training"] = "not judged: one seed only"
    elif directions and all(d == "faster" for d in directions):
        verdicts["faster_training"] = "agrees: the residual network reached every error level in fewer epochs, " \
                                      "in every seed"
    elif directions and all(d == "slower" for d in directions):
        verdicts["faster_training"] = "disagrees: the residual network reached every error level in more " \
                                      "epochs, in every seed"
    elif directions and "faster" in directions and "slower" not in directions:
        verdicts["faster_training"] = "partly: faster in every seed at some levels, within the seed spread at others"
    elif directions and "slower" in directions and "faster" not in directions:
        verdicts["faster_training"] = "partly disagrees: slower in every seed at some levels, within the seed " \
                                      "spread at others"
    elif directions:
        verdicts["faster_training"] = "not shown: the speed-ups are within the seed spread or point both ways"
    else:
        verdicts["faster_training"] = "not measured"
    verdicts["similar_final_error"] = (
        "not judged: one seed only" if n < 2 else
        "agrees: the final errors are within the seed spread of each other (the paper: 0.1 point apart)"
        if within else f"differs: {r.name if diff < 0 else p.name} ends {abs(diff):.2f} points lower, beyond the "
                       "seed spread (the paper: 0.1 point apart after full ImageNet training)"
    )
    return findings, verdicts


def draw_pair(result: PairResult, out: Path, weights: str) -> str | None:
    runs = {result.partner.name: result.partner.runs, result.residual.name: result.residual.runs}
    if not any(runs.values()):
        return None
    name = f"curves-{result.label}.png"
    plot_pair(runs, out / name, weights=weights, title=f"{result.partner.name} vs {result.residual.name}")
    return name


def draw_baselines(baselines: list[ModelResult], out: Path, weights: str) -> str | None:
    """The baselines' curves in one figure, drawn like a pair's; None when no baseline has a finished run."""
    runs = {model.name: model.runs for model in baselines}
    if not any(runs.values()):
        return None
    plot_pair(runs, out / BASELINE_FIGURE, weights=weights, title=f"baselines: {', '.join(runs)}")
    return BASELINE_FIGURE


# -- writing ---------------------------------------------------------------------------------------------
def epoch_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every finished run's per-epoch rows, prefixed with model, pair, seed and cumulative training time."""
    rows = []
    for record in records:
        elapsed = 0.0
        for row in record.rows:
            elapsed += row.get("epoch_seconds") or 0.0
            rows.append({"model": record.spec.model, "pair": record.spec.group, "seed": record.spec.seed,
                         "run_status": record.status, "train_seconds": elapsed, **row})
    return rows


def _roles(pairs: list[PairResult], baselines: list[ModelResult]) -> list[tuple[str, ModelResult]]:
    """(role, model) for every model of the study: the pairs' partners and residual networks, then baselines."""
    roles = [(role, m) for pair in pairs for role, m in (("partner", pair.partner), ("residual", pair.residual))]
    return roles + [("baseline", m) for m in baselines]


def model_table_rows(pairs: list[PairResult], baselines: list[ModelResult] | None = None) -> list[dict[str, Any]]:
    out, seen = [], set()
    for role, model in _roles(pairs, baselines or []):
        if model.name in seen:
            continue
        seen.add(model.name)
        row: dict[str, Any] = {"model": model.name, "role": role, "seeds": len(model.seeds),
                               "parameters": model.parameters, "gmacs": model.gmacs,
                               "input_size": model.input_size}
        for key in ("final_top1", "final_top5", "best_top1", "final_loss", "images_per_second"):
            value = getattr(model, key)
            for stat in ("mean", "std", "min", "max"):
                row[f"{key}_{stat}"] = getattr(value, stat) if value is not None else None
        out.append(row)
    return out


def level_table_rows(pairs: list[PairResult]) -> list[dict[str, Any]]:
    out = []
    for pair in pairs:
        for level in pair.levels:
            row: dict[str, Any] = {"pair": pair.label, "level_top1_error": level.level}
            for name, values in (("partner_epochs", level.partner_epochs), ("residual_epochs", level.residual_epochs),
                                 ("partner_seconds", level.partner_seconds),
                                 ("residual_seconds", level.residual_seconds),
                                 ("speedup_epochs_per_seed", level.epoch_speedups),
                                 ("speedup_seconds_per_seed", level.time_speedups)):
                s = spread(values)
                row[f"{name}_mean"] = s.mean if s else None
                row[f"{name}_std"] = s.std if s else None
                row[f"{name}_n"] = s.n if s else 0
            row["speedup_epochs"] = level.epoch_speedup
            row["speedup_seconds"] = level.time_speedup
            out.append(row)
    return out


def _model_md(models: list[tuple[str, ModelResult]]) -> str:
    def cell(s: Spread | None, digits: int = 2) -> str:
        return s.text(digits) if s is not None else "-"

    rows = []
    for role, m in models:
        rows.append([f"`{m.name}`", role, len(m.seeds), f"{m.parameters:,}" if m.parameters else "-",
                     fmt(m.gmacs, 3), cell(m.images_per_second, 1), cell(m.final_top1), cell(m.final_top5),
                     cell(m.best_top1), cell(m.final_loss, 3)])
    return md_table(["model", "role", "seeds", "params", "GMACs", "train img/s", "final top-1 %", "final top-5 %",
                     "best top-1 %", "final train loss"], rows)


def _level_md(pair: PairResult) -> str:
    rows = []
    for level in pair.levels:
        sp, sr = spread(level.partner_epochs), spread(level.residual_epochs)
        tp, tr = spread(level.partner_seconds), spread(level.residual_seconds)
        se = spread(level.epoch_speedups)
        n = len(level.partner_epochs)
        reached = f"{sum(x is not None for x in level.residual_epochs)}/{n}, " \
                  f"{sum(x is not None for x in level.partner_epochs)}/{n}"
        rows.append([f"{level.level:.1f}", reached, sp.text() if sp else "-", sr.text() if sr else "-",
                     fmt(level.epoch_speedup), f"{se.min:.2f}-{se.max:.2f}" if se else "-",
                     tp.text(1) if tp else "-", tr.text(1) if tr else "-", fmt(level.time_speedup),
                     direction(level.epoch_speedups)])
    return md_table(["top-1 error level %", "reached (res., partner)", f"epochs {pair.partner.name}",
                     f"epochs {pair.residual.name}", "speed-up (epochs)", "per seed", f"s {pair.partner.name}",
                     f"s {pair.residual.name}", "speed-up (time)", "residual"], rows)


def _paper_md(pairs: list[PairResult], baselines: list[ModelResult]) -> str:
    rows, seen = [], set()
    for _, m in _roles(pairs, baselines):
        if m.name in seen:
            continue
        seen.add(m.name)
        paper = PAPER_TABLE2.get(m.name)
        rows.append([f"`{m.name}`", fmt(paper[0], 1) if paper else "-", fmt(paper[1], 1) if paper else "-",
                     m.final_top1.text() if m.final_top1 else "-", m.final_top5.text() if m.final_top5 else "-"])
    return md_table(["model", "paper top-1 % (ImageNet, Table 2)", "paper top-5 %", "ours top-1 %", "ours top-5 %"],
                    rows)


def _setup_lines(config: CompareConfig, records: list[RunRecord]) -> list[str]:
    train = config.train
    resolved = TrainConfig.from_dict({**train, "model": config.pairs[0][0]}).resolved()
    derived = next((r.derived for r in records if r.derived), {})
    status: dict[str, int] = {}
    for record in records:
        status[record.status] = status.get(record.status, 0) + 1
    lines = [
        f"- Pairs (partner vs residual): {', '.join(f'`{a}` vs `{b}`' for a, b in config.pairs)}; seeds "
        f"{config.seeds} (a seed fixes the training subset, the data order and the augmentation, shared by "
        "both networks of a pair)"
        + (f"; baselines {', '.join(f'`{m}`' for m in config.baselines)}, trained alike (same settings, data order, "
           "budget and seeds)" if config.baselines else "") + ".",
        f"- Data: {resolved.data or 'fashion-mnist'}; {derived.get('train_images', '?')} training and "
        f"{derived.get('val_images', '?')} validation images; {derived.get('num_classes', '?')} classes; input "
        f"{derived.get('input_size', resolved.input_size)}x{derived.get('input_size', resolved.input_size)}, "
        f"{resolved.in_chans} channel(s).",
        f"- Networks: width multiplier {resolved.width_multiplier or 1.0} (1.0 is the paper's width)"
        + (f"; per-model settings {config.models}" if config.models else "") + ".",
        f"- Recipe `{resolved.recipe}`: {resolved.optimizer}, lr {resolved.lr} per {resolved.reference_batch_size} "
        f"images (peak {derived.get('peak_lr', '?')} at batch {resolved.batch_size}), schedule {resolved.schedule}, "
        f"warm-up {resolved.warmup_epochs} epochs, {resolved.epochs} epochs ({derived.get('total_steps', '?')} "
        f"steps), label smoothing {resolved.label_smoothing}, EMA decay {resolved.ema_decay}, precision "
        f"{resolved.precision}.",
        f"- Errors shown: validation errors of the {'raw' if config.weights == 'raw' else 'moving-average'} "
        "weights, single centre crop.",
        f"- Runs: {', '.join(f'{n} {s}' for s, n in status.items())}.",
    ]
    return lines


def _baseline_lines(baselines: list[ModelResult], figure: str | None) -> list[str]:
    """The report's baselines section: figure, model table and each baseline's final errors."""
    lines = ["## Baselines", "",
             "Extra models trained under the same recipe, data order, budget and seeds as the pairs. They have no "
             "residual partner, so there is no speed-up or verdict for them: they place the pairs among other "
             "networks of the family.", ""]
    if figure:
        lines += [f"![baselines]({figure})", ""]
    lines += [_model_md([("baseline", m) for m in baselines]), ""]
    for m in baselines:
        if m.final_top1 is None:
            lines.append(f"- `{m.name}`: no finished run ({'; '.join(m.statuses) or 'not planned'}).")
        else:
            lines.append(f"- `{m.name}`: final validation top-1 error {m.final_top1.text()} %, top-5 "
                         f"{m.final_top5.text() if m.final_top5 else '-'} % (mean ± sd over {m.final_top1.n} "
                         "seed(s)).")
    return lines + [""]


def write_compare_report(
    config: CompareConfig, pairs: list[PairResult], records: list[RunRecord], out: Path, preset: str, *,
    baselines: list[ModelResult] | None = None, baselines_figure: str | None = None,
) -> Path:
    """Write report.md, the CSV/JSON tables and the raw data (the figures are drawn already)."""
    import json

    baselines = baselines or []
    rows = epoch_rows(records)
    write_json(out / "epochs.json", rows)
    for name, table in (("epochs.csv", rows), ("models.csv", model_table_rows(pairs, baselines)),
                        ("levels.csv", level_table_rows(pairs))):
        if table:
            write_csv(out / name, table)
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").is_file() else {}
    env = study.get("environment") or environment("")
    write_json(out / "summary.json", {"preset": preset, "weights": config.weights,
                                      "pairs": [p.to_dict() for p in pairs],
                                      "baselines": [m.to_dict() for m in baselines],
                                      "baselines_figure": baselines_figure,
                                      "runs": [run_entry(r) for r in records]})
    lines = [f"# The residual study: `{preset}` preset", "",
             f"Do residual connections speed up the training of Inception networks? The question of {PAPER}, "
             "asked of networks trained here under one recipe, one data order and the same budget.", ""]
    lines += environment_lines(env) + ["", "## What was run", ""] + _setup_lines(config, records)
    lines += ["", "How to read the tables: mean ± standard deviation over seeds. A difference is *within the seed "
              "spread* when the two models' ranges over seeds overlap; only a difference beyond it is one this "
              "study shows. Time is training time (validation excluded). Epochs and seconds to an error level "
              "are interpolated linearly between validations, from chance error (an untrained network) at "
              "epoch 0. " + (f"The levels, {config.levels} %, are set by the configuration. " if config.levels else
                             "The levels are the worst run's best error and that plus the margins "
                             f"{config.level_margins} points (so that every run reaches the hardest one), keeping "
                             "those in the lower half of the range up to chance error. ")
              + "Speed-up: the partner's mean epochs (or seconds) over the residual network's, over the seeds where "
              "both reached the level; per seed: the range of the per-seed ratios.", ""]
    for pair in pairs:
        lines += [f"## {pair.partner.name} vs {pair.residual.name}", ""]
        if pair.figure:
            lines += [f"![{pair.label}]({pair.figure})", ""]
        lines += [_model_md(_roles([pair], [])), "",
                  _level_md(pair) if pair.levels else "No error level was reached by both.",
                  "", "What the numbers show:", ""]
        lines += [f"- {text}" for text in pair.findings] + [""]
    if baselines:
        lines += _baseline_lines(baselines, baselines_figure)
    lines += ["## Beside the paper", "", _paper_md(pairs, baselines), "",
              "The paper's numbers are for full-width networks trained on ImageNet for well over 100 epochs and "
              "evaluated at 299x299; ours are for the networks, data and budget above, so only the direction of "
              "the differences can be compared, not the values. After a short budget the final error measures "
              "how far training got rather than where it converges; the paper's Table 2 compares converged "
              "networks.", ""]
    claims = []
    for pair in pairs:
        claims.append([f"`{pair.residual.name}` vs `{pair.partner.name}`",
                       "residual networks train markedly faster (Figs 21-26)",
                       pair.verdicts.get("faster_training", "-")])
        claims.append([f"`{pair.residual.name}` vs `{pair.partner.name}`",
                       "similar final accuracy at similar cost (Table 2)",
                       pair.verdicts.get("similar_final_error", "-")])
    lines += [md_table(["pair", "paper's claim", "our runs"], claims), ""]
    if len(pairs) > 1:
        lines += _size_lines(pairs)
    lines += ["## Files", "",
              "- `epochs.csv` / `epochs.json`: every run's per-epoch rows (the data behind each figure).",
              "- `models.csv`, `levels.csv`, `summary.json`: the tables above as data.",
              "- `study.json`: the exact study configuration and the environment; `summary.json` also lists each "
              "run's settings and what training derived from them (steps, peak learning rate, image counts); "
              "`runs/<model>-seed<k>/` (where kept): each run's resolved `config.json`, `metrics.csv`, `steps.jsonl`.",
              "- Redraw a figure from the data: `inception-resnet study compare --out DIR --report-only`.", ""]
    not_run = [r.spec.key for r in records if r.status == "not run"]
    if not_run:
        lines += [f"**Incomplete**: {len(not_run)} run(s) not run ({', '.join(not_run)}); start the same command "
                  "again to train them (finished runs are skipped).", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def _size_lines(pairs: list[PairResult]) -> list[str]:
    """The paper's "final accuracy tracks model size", checked across pairs (mean of each pair's two models)."""
    rows = []
    for pair in pairs:
        params = [m.parameters for m in (pair.partner, pair.residual) if m.parameters]
        errors = [m.final_top1.mean for m in (pair.partner, pair.residual) if m.final_top1]
        rows.append((pair, sum(params) / len(params) if params else 0.0,
                     sum(errors) / len(errors) if errors else None))
    rows.sort(key=lambda x: x[1])
    text = ", ".join(f"{p.partner.name}/{p.residual.name} ({size / 1e6:.1f} M parameters on average): "
                     f"{fmt(err)} %" for p, size, err in rows)
    measured = [err for _, _, err in rows if err is not None]
    tracks = len(measured) == len(rows) and all(a > b for a, b in zip(measured, measured[1:], strict=False))
    return [f"Final accuracy and size (the paper: the larger pair is about 1.2 points better): {text}. "
            + ("Here too the larger pair ends with the lower mean error." if tracks else
               "Here the larger pair does not end with the lower mean error."), ""]
