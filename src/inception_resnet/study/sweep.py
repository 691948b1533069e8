"""``study sweep``: each entry of the study at several learning rates, chosen on held-out training images.

A comparison of two networks at one learning rate partly measures which network suits that rate. The sweep
trains every entry of ``sweep.models`` with the settings ``study compare`` gives it, at each rate of
``sweep.lrs``, validating on a class-balanced part of the *training* split held out from training
(``holdout_fraction``; the validation split, on which the comparison is judged, is never read). The chosen
rate of an entry is the one with the lowest final held-out top-1 error (mean over the sweep's seeds); a
run whose loss became non-finite counts as failed. :func:`run_sweep` writes to ``out_dir``::

    report.md       the grid, each entry's errors per rate, the chosen rates and the preset lines to paste
    chosen.json     {"models": {entry: {"lr": rate}}, "source": ...}: what the preset's compare.models take
    sweep.png       final held-out error against the learning rate, per entry
    sweep.csv       one row per run; summary.json, study.json, runs/<entry>-lr<rate>-seed<k>/ as in compare
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig, train
from .config import CompareConfig, SweepConfig, section_to_dict
from .figures import plot_sweep
from .report import environment_lines, fmt, md_table, write_csv, write_json
from .runs import RunRecord, RunSpec, TrainFn, collect_records, is_main_process, run_entry
from .stats import clipped_share, curve_of, mean_error

MEASURE_TEXT = {"mean_error": "mean held-out top-1 error over training (%)",
                "final_error": "final held-out top-1 error (%)"}


def plan_sweep(sweep: SweepConfig, compare: CompareConfig, out_dir: str | os.PathLike,
               grids: dict[str, list[float]] | None = None) -> list[RunSpec]:
    """One run per (seed, entry, rate): the entry's compare settings, then ``sweep.train``, then the rate.

    ``grids`` gives each entry's rates (default: the configured ones, :meth:`SweepConfig.rates`).
    """
    runs_dir = Path(out_dir) / "runs"
    specs = []
    for seed in sweep.seeds:
        for name in sweep.models:
            for lr in (grids or {}).get(name, sweep.rates(name)):
                key = f"{name}-lr{lr:g}-seed{seed}"
                settings = {**compare.settings(name), **sweep.train, "lr": float(lr), "seed": seed}
                specs.append(RunSpec(key, name, seed, f"lr {lr:g}", settings, runs_dir / key))
    return specs


def widened(rates: list[float], chosen: float) -> list[float] | None:
    """The grid with one more rate beyond the edge ``chosen`` sits on (the neighbour's ratio further out),
    or None when ``chosen`` is inside the grid."""
    grid = sorted(rates)
    if chosen == grid[0]:
        return [grid[0] * grid[0] / grid[1], *grid]
    if chosen == grid[-1]:
        return [*grid, grid[-1] * grid[-1] / grid[-2]]
    return None


@dataclass
class SweepPoint:
    """One entry at one learning rate, over the sweep's seeds."""

    model: str
    lr: float
    final_errors: list[float | None]
    mean_errors: list[float | None]
    start_errors: list[float | None]
    clipped: list[float | None]
    statuses: list[str]

    @property
    def final_error(self) -> float | None:
        """Mean final held-out top-1 error over the seeds; None when any run failed or has no validation."""
        return _mean_of_all(self.final_errors)

    @property
    def mean_error(self) -> float | None:
        """Mean over the seeds of the mean held-out top-1 error over training; None when any run failed."""
        return _mean_of_all(self.mean_errors)

    def measure(self, name: str) -> float | None:
        """The choice's measure: ``mean_error`` or ``final_error``."""
        return self.mean_error if name == "mean_error" else self.final_error

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "lr": self.lr, "final_errors": self.final_errors,
                "start_errors": self.start_errors,
                "mean_errors": self.mean_errors, "clipped_percent": self.clipped, "statuses": self.statuses,
                "final_error": self.final_error, "mean_error": self.mean_error}


def _mean_of_all(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(v for v in values if v is not None)


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced: the points, the chosen rate per entry, the records and the report."""

    out_dir: Path
    points: list[SweepPoint]
    chosen: dict[str, float]
    records: list[RunRecord]
    report: Path | None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    grids: dict[str, list[float]] = field(default_factory=dict)

    def preset_models(self) -> dict[str, dict[str, float]]:
        """The ``compare.models`` entries that carry the chosen rates (merge them into the preset)."""
        return {name: {"lr": lr} for name, lr in self.chosen.items()}


def run_sweep(
    sweep: SweepConfig,
    compare: CompareConfig,
    out_dir: str | os.PathLike,
    *,
    preset: str = "custom",
    command: str | None = None,
    train_fn: TrainFn = train,
    log: Callable[[str], None] | None = print,
    report_only: bool = False,
) -> SweepResult:
    """Train the sweep's runs not done yet, choose a rate per entry and write the report to ``out_dir``."""
    if not sweep.models:
        raise ValueError(f"preset {preset} has no sweep (sweep.models is empty); add a sweep section")
    sweep.validate(compare)
    out = Path(out_dir)
    env = environment(command or "")
    study = {"study": "sweep", "preset": preset, "config": section_to_dict(sweep),
             "compare_settings": {name: compare.settings(name) for name in sweep.models}, "environment": env}
    grids = {name: sorted(sweep.rates(name)) for name in sweep.models}
    for _ in range(sweep.widen + 1):  # each round trains what the grid lacks, then widens edge choices
        specs = plan_sweep(sweep, compare, out, grids)
        records = collect_records(specs, out, study, report_only=report_only, train_fn=train_fn,
                                  time_limit_s=sweep.time_limit_s, log=log, parallel=sweep.parallel)
        if not is_main_process():
            return SweepResult(out, [], {}, records, None)
        points = summarize_sweep(sweep, records, grids)
        chosen, notes = choose_rates(sweep, points, grids)
        wider = {name: grid for name, lr in chosen.items()
                 if (grid := widened(grids[name], lr)) is not None
                 and _widening_allowed(grid, sweep.rates(name), sweep.widen)}
        if report_only or not wider:
            break
        for name, grid in wider.items():
            _say_widen(log, name, grids[name], grid)
        grids.update(wider)
    source = f"the `{preset}` sweep ({_relative(out / 'report.md')})"
    result = SweepResult(out, points, chosen, records, None, source, notes, grids)
    result.report = write_sweep_report(sweep, compare, result, preset, env)
    return result


def _widening_allowed(grid: list[float], given: list[float], widen: int) -> bool:
    """Whether ``grid`` adds at most ``widen`` rates on each side of the configured ones."""
    low, high = min(given), max(given)
    return sum(r < low for r in grid) <= widen and sum(r > high for r in grid) <= widen


def _say_widen(log: Callable[[str], None] | None, name: str, old: list[float], new: list[float]) -> None:
    if log is not None:
        added = ", ".join(f"{r:g}" for r in new if r not in old)
        log(f"sweep: {name}'s best rate is at the edge of {[float(f'{r:g}') for r in old]}; adding {added}")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def summarize_sweep(sweep: SweepConfig, records: list[RunRecord],
                    grids: dict[str, list[float]] | None = None) -> list[SweepPoint]:
    points = []
    for name in sweep.models:
        for lr in (grids or {}).get(name, sweep.rates(name)):
            mine = [r for r in records if r.spec.model == name and r.spec.settings.get("lr") == float(lr)]
            curves = [curve_of(r.evaluations, r.rows) if r.status == "completed" else None for r in mine]
            points.append(SweepPoint(
                name, float(lr),
                final_errors=[c.top1[-1] if c is not None and c.top1 else None for c in curves],
                mean_errors=[mean_error(c) if c is not None else None for c in curves],
                start_errors=[c.top1[0] if c is not None and c.measured_start else None for c in curves],
                clipped=[clipped_share(r.rows) for r in mine],
                statuses=[f"seed {r.spec.seed}: {r.status}" for r in mine],
            ))
    return points


def choose_rates(sweep: SweepConfig, points: list[SweepPoint],
                 grids: dict[str, list[float]] | None = None) -> tuple[dict[str, float], list[str]]:
    """The rate of lowest ``sweep.choose_by`` per entry (mean over seeds), and notes (a choice at an edge)."""
    chosen: dict[str, float] = {}
    notes: list[str] = []
    measure = sweep.choose_by
    for name in sweep.models:
        mine = [p for p in points if p.model == name and p.measure(measure) is not None]
        if not mine:
            notes.append(f"`{name}`: no rate gave a finished run; nothing chosen.")
            continue
        best = min(mine, key=lambda p: (p.measure(measure), p.lr))
        chosen[name] = best.lr
        starts = [e for p in mine for e in p.start_errors if e is not None]
        if starts and best.final_error is not None and best.final_error >= 0.95 * statistics.fmean(starts):
            notes.append(f"`{name}`: no rate tried took the held-out error clearly below its step-0 value "
                         f"({statistics.fmean(starts):.1f} %): the entry did not learn in this budget, and the "
                         "choice among the rates is noise.")
        rates = sorted((grids or {}).get(name, sweep.rates(name)))
        if best.lr in (rates[0], rates[-1]):
            notes.append(f"`{name}`: the chosen rate {best.lr:g} is at the edge of the grid "
                         f"({', '.join(f'{r:g}' for r in rates)}) after widening it {sweep.widen} time(s) at most; "
                         "a wider grid might find a better one.")
    return chosen, notes


def write_sweep_report(sweep: SweepConfig, compare: CompareConfig, result: SweepResult, preset: str,
                       env: dict[str, Any]) -> Path:
    out = result.out_dir
    rows = []
    for record in result.records:
        curve = curve_of(record.evaluations, record.rows)
        rows.append({"model": record.spec.model, "lr": record.spec.settings.get("lr"), "seed": record.spec.seed,
                     "status": record.status, "final_heldout_top1_error": curve.top1[-1] if curve.top1 else None,
                     "mean_heldout_top1_error": mean_error(curve), "clipped_percent": clipped_share(record.rows)})
    if rows:
        write_csv(out / "sweep.csv", rows)
    write_json(out / "chosen.json", {"models": result.preset_models(), "source": result.source})
    write_json(out / "summary.json", {"preset": preset, "points": [p.to_dict() for p in result.points],
                                      "chosen": result.chosen, "notes": result.notes,
                                      "runs": [run_entry(r) for r in result.records]})
    figure = None
    errors = {name: {p.lr: p.measure(sweep.choose_by) for p in result.points if p.model == name}
              for name in sweep.models}
    if any(v is not None for by_lr in errors.values() for v in by_lr.values()):
        plot_sweep(errors, out / "sweep.png", chosen=result.chosen, title=f"learning-rate sweep, `{preset}` preset",
                   ylabel=MEASURE_TEXT[sweep.choose_by])
        figure = "sweep.png"
    first = sweep.models[0]
    resolved = TrainConfig.from_dict({**compare.settings(first), **sweep.train, "lr": sweep.rates(first)[0]})
    resolved = resolved.resolved()
    derived = next((r.derived for r in result.records if r.derived), {})
    lines = [f"# Learning-rate sweep: `{preset}` preset", "",
             "Each entry of the residual study trained at several learning rates under the settings `study compare` "
             "gives it, validated on held-out *training* images; the validation split, on which the comparison is "
             "judged, is not read.", ""]
    lines += environment_lines(env) + ["", "## What was run", ""]
    lines += [
        f"- Entries: {', '.join(f'`{m}`' for m in sweep.models)}; seeds {sweep.seeds}.",
        f"- Data: {derived.get('train_images', '?')} training images; {derived.get('val_images', '?')} held-out "
        f"images for validation, a class-balanced {resolved.holdout_fraction:g} of the training split set aside "
        "before the training subset is drawn (the same images for every run).",
        f"- Budget: {resolved.epochs} epochs ({derived.get('total_steps', '?')} steps of {resolved.batch_size} "
        f"images; the comparison trains {compare.train.get('epochs', resolved.epochs)} epochs"
        + (", so the schedule is compressed here: a proxy that saves time" if "epochs" in sweep.train else "")
        + f"), recipe `{resolved.recipe}`, schedule {resolved.schedule}, clipping at norm {resolved.clip_grad_norm}; "
        f"learning rates per {resolved.reference_batch_size} images.",
        f"- Choice: the rate with the lowest {MEASURE_TEXT[sweep.choose_by]} (mean over seeds); a run whose loss "
        "became non-finite fails its rate. A choice at the edge of the grid widens it by one rate beyond that edge "
        f"(up to {sweep.widen} time(s) per side).", ""]
    if figure:
        lines += [f"![sweep]({figure})", ""]
    table = []
    for point in result.points:
        mark = " (chosen)" if result.chosen.get(point.model) == point.lr else ""
        table.append([f"`{point.model}`", f"{point.lr:g}{mark}",
                      ", ".join(fmt(e) for e in point.final_errors) or "-",
                      ", ".join(fmt(e) for e in point.mean_errors) or "-",
                      ", ".join(fmt(c, 1) for c in point.clipped) or "-", "; ".join(point.statuses)])
    lines += [md_table(["entry", "learning rate", "final held-out top-1 error % (per seed)",
                        "mean held-out top-1 error over training % (per seed)", "clipped steps %", "runs"], table), ""]
    lines += ["## Chosen rates", ""]
    lines += [f"- `{name}`: {lr:g}" for name, lr in result.chosen.items()] + [f"- {note}" for note in result.notes]
    lines += ["", "In the preset, `compare.models` takes them (and `compare.lr_source` names this report):", "",
              "```json", json.dumps(result.preset_models(), indent=2), "```", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
