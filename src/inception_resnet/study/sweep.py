"""``study sweep``: each entry of the study at several learning rates, chosen on held-out training images.

A comparison of two networks at one learning rate partly measures which network suits that rate. The sweep
trains every entry of ``sweep.models`` with the settings ``study compare`` gives it, at each rate of
``sweep.lrs``, validating on a class-balanced part of the *training* split held out from training
(``holdout_fraction``; the validation split, on which the comparison is judged, is never read). The chosen
rate of an entry is the one with the lowest mean held-out error over training (``choose_by``; or the final
error), averaged over the sweep's seeds; a choice at the edge of the grid widens it (``widen``) and trains the
new rate, so that every chosen rate ends inside its grid. A run whose loss became non-finite counts as
failed. :func:`run_sweep` writes to ``out_dir`` (through :mod:`.sweep_report`)::

    report.md       the grid, each entry's errors per rate, the chosen rates and the preset lines to paste
    chosen.json     {"models": {entry: {"lr": rate}}, "source": ...}: what the preset's compare.models take
    sweep.png       the choice's measure against the learning rate, per entry
    sweep.csv       one row per run; summary.json, study.json, runs/<entry>-lr<rate>-seed<k>/ as in compare
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path

from ..environment import environment
from ..training import train
from .config import CompareConfig, SweepConfig, section_to_dict
from .results import SweepPoint, SweepResult
from .runs import RunRecord, RunSpec, TrainFn, collect_records, is_main_process
from .stats import clipped_share, curve_of, mean_error
from .sweep_report import write_sweep_report


def plan_sweep(
    sweep: SweepConfig, compare: CompareConfig, out_dir: str | os.PathLike, grids: dict[str, list[float]] | None = None
) -> list[RunSpec]:
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
    study = {
        "study": "sweep",
        "preset": preset,
        "config": section_to_dict(sweep),
        "compare_settings": {name: compare.settings(name) for name in sweep.models},
        "environment": env,
    }
    grids = {name: sorted(sweep.rates(name)) for name in sweep.models}
    for _ in range(sweep.widen + 1):  # each round trains what the grid lacks, then widens edge choices
        specs = plan_sweep(sweep, compare, out, grids)
        records = collect_records(
            specs,
            out,
            study,
            report_only=report_only,
            train_fn=train_fn,
            time_limit_s=sweep.time_limit_s,
            log=log,
            parallel=sweep.parallel,
        )
        if not is_main_process():
            return SweepResult(out, [], {}, records, None)
        points = summarize_sweep(sweep, records, grids)
        chosen, notes = choose_rates(sweep, points, grids)
        wider = {
            name: grid
            for name, lr in chosen.items()
            if (grid := widened(grids[name], lr)) is not None
            and _widening_allowed(grid, sweep.rates(name), sweep.widen)
        }
        if report_only or not wider:
            break
        for name, grid in wider.items():
            _say_widen(log, name, grids[name], grid)
        grids.update(wider)
    source = f"the `{preset}` sweep ({_relative(out / 'report.md')})"
    result = SweepResult(out, points, chosen, records, None, source, notes, grids)
    if report_only and (out / "study.json").is_file():  # the runs' date, machine and command, not this call's
        env = json.loads((out / "study.json").read_text()).get("environment") or env
        env = {**env, "note": f"report redrawn on {environment('').get('date', '?')} (--report-only)"}
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


def summarize_sweep(
    sweep: SweepConfig, records: list[RunRecord], grids: dict[str, list[float]] | None = None
) -> list[SweepPoint]:
    points = []
    for name in sweep.models:
        for lr in (grids or {}).get(name, sweep.rates(name)):
            mine = [r for r in records if r.spec.model == name and r.spec.settings.get("lr") == float(lr)]
            curves = [curve_of(r.evaluations, r.rows) if r.status == "completed" else None for r in mine]
            points.append(
                SweepPoint(
                    name,
                    float(lr),
                    final_errors=[c.top1[-1] if c is not None and c.top1 else None for c in curves],
                    mean_errors=[mean_error(c) if c is not None else None for c in curves],
                    start_errors=[c.top1[0] if c is not None and c.measured_start else None for c in curves],
                    clipped=[clipped_share(r.rows) for r in mine],
                    statuses=[f"seed {r.spec.seed}: {r.status}" for r in mine],
                )
            )
    return points


def choose_rates(
    sweep: SweepConfig, points: list[SweepPoint], grids: dict[str, list[float]] | None = None
) -> tuple[dict[str, float], list[str]]:
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
            notes.append(
                f"`{name}`: no rate tried took the held-out error clearly below its step-0 value "
                f"({statistics.fmean(starts):.1f} %): the entry did not learn in this budget, and the "
                "choice among the rates is noise."
            )
        rates = sorted((grids or {}).get(name, sweep.rates(name)))
        if best.lr in (rates[0], rates[-1]):
            notes.append(
                f"`{name}`: the chosen rate {best.lr:g} is at the edge of the grid "
                f"({', '.join(f'{r:g}' for r in rates)}) after widening it {sweep.widen} time(s) at most; "
                "a wider grid might find a better one."
            )
    return chosen, notes
