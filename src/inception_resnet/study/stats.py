"""Statistics of the studies: spread over seeds, learning curves, time to an error level (the paired tests
are in :mod:`.significance`).

Conventions (the reports repeat them):

* A run's learning curve is its validations (``validation.jsonl``: step 0, then every N steps), each with
  the optimiser step, the training time so far (validation excluded) and the errors. Runs without that
  file fall back to their per-epoch rows (no step-0 point then).
* Steps (or seconds) to an error level: the first point where the curve, drawn as straight lines between
  the measured validations, gets down to the level; ``None`` when the run never gets there.
* Area under the error curve: the mean error over training (trapezoids over the steps, divided by the
  steps), a summary of the whole curve that no choice of level can tilt.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

METRICS = {
    "raw": {"top1": "val_top1_error", "top5": "val_top5_error", "loss": "val_loss"},
    "ema": {"top1": "ema_val_top1_error", "top5": "ema_val_top5_error", "loss": "ema_val_loss"},
}
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation (over seeds, ddof=1; 0 for one seed), minimum, maximum and count."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def overlaps(self, other: Spread) -> bool:
        """Whether the two ranges over seeds overlap."""
        return self.min <= other.max and other.min <= self.max

    def text(self, digits: int = 2) -> str:
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max, "n": self.n}


def spread(values: Iterable[float | None]) -> Spread | None:
    """The :class:`Spread` of the finite values, or None when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return Spread(statistics.fmean(finite), std, min(finite), max(finite), len(finite))


# -- learning curves --------------------------------------------------------------------------------------------
@dataclass
class Curve:
    """A run's validations: optimiser step, training seconds so far, top-1 and top-5 error (%) at each."""

    steps: list[float]
    seconds: list[float]
    top1: list[float]
    top5: list[float]

    @property
    def measured_start(self) -> bool:
        """Whether the curve starts with a measurement of the untrained network (step 0)."""
        return bool(self.steps) and self.steps[0] == 0

    def axis(self, name: str) -> list[float]:
        return self.steps if name == "step" else self.seconds

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "seconds": self.seconds, "top1": self.top1, "top5": self.top5}


def cumulative_seconds(rows: Rows) -> list[float]:
    """The training time at the end of each epoch (sum of ``epoch_seconds``)."""
    total, out = 0.0, []
    for row in rows:
        total += row.get("epoch_seconds") or 0.0
        out.append(total)
    return out


def curve_of(evaluations: Rows, rows: Rows, weights: str = "raw") -> Curve:
    """A run's :class:`Curve`: its validations when it has them, else its per-epoch rows."""
    keys = METRICS[weights]
    if evaluations:
        points = [
            (float(r["step"]), float(r.get("train_seconds") or 0.0), r.get(keys["top1"]), r.get(keys["top5"]))
            for r in evaluations
        ]
    else:
        seconds = cumulative_seconds(rows)
        points = [
            (float(r.get("step", r.get("epoch", 0))), s, r.get(keys["top1"]), r.get(keys["top5"]))
            for r, s in zip(rows, seconds, strict=True)
        ]
    points = [p for p in points if p[2] is not None and math.isfinite(p[2])]
    return Curve(
        [p[0] for p in points],
        [p[1] for p in points],
        [float(p[2]) for p in points],
        [float(p[3]) if p[3] is not None else math.nan for p in points],
    )


def first_crossing(curve: Sequence[tuple[float, float]], level: float) -> float | None:
    """The first x where the piecewise-linear curve gets down to ``level`` (or below), else None."""
    previous: tuple[float, float] | None = None
    for x, y in curve:
        if y <= level:
            if previous is None or previous[1] == y:
                return x
            x0, y0 = previous
            return x0 + (x - x0) * (y0 - level) / (y0 - y)
        previous = (x, y)
    return None


def crossing_bracket(curve: Curve, level: float) -> tuple[float, float] | None:
    """The steps of the two validations around the curve's first crossing of ``level``: the last one above it
    and the first one at or below it (the same step twice when the very first validation is below it)."""
    for index, (step, error) in enumerate(zip(curve.steps, curve.top1, strict=True)):
        if error <= level:
            return (curve.steps[index - 1] if index else step), step
    return None


def with_step_seconds(curve: Curve, seconds_per_step: float | None) -> Curve:
    """The curve with its seconds recomputed as steps x ``seconds_per_step`` (unchanged when that is None)."""
    if seconds_per_step is None:
        return curve
    return Curve(curve.steps, [s * seconds_per_step for s in curve.steps], curve.top1, curve.top5)


def time_to_level(curve: Curve, level: float) -> tuple[float | None, float | None]:
    """``(steps, seconds)`` of training until the curve reaches ``level`` (interpolated; None: never)."""
    return (
        first_crossing(list(zip(curve.steps, curve.top1, strict=True)), level),
        first_crossing(list(zip(curve.seconds, curve.top1, strict=True)), level),
    )


def mean_error(curve: Curve) -> float | None:
    """The area under the top-1 error curve over the steps, divided by the steps: the mean error over training."""
    if len(curve.steps) < 2 or curve.steps[-1] <= curve.steps[0]:
        return None
    area = sum(
        (x1 - x0) * (y0 + y1) / 2
        for x0, x1, y0, y1 in zip(curve.steps, curve.steps[1:], curve.top1, curve.top1[1:], strict=False)
    )
    return area / (curve.steps[-1] - curve.steps[0])


@dataclass
class CurveStats:
    """A curve over seeds at the x positions every seed has: x (mean over seeds), mean, min and max of y."""

    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]


def curve_stats(curves: Sequence[Curve], values: str = "top1", axis: str = "step") -> CurveStats:
    """Mean and range over seeds of ``values`` at the validation steps all curves share."""
    stats = CurveStats([], [], [], [])
    if not curves:
        return stats
    tables = [{s: i for i, s in enumerate(c.steps)} for c in curves]
    common = sorted(set.intersection(*(set(t) for t in tables)))
    for step in common:
        ys = [getattr(c, values)[t[step]] for c, t in zip(curves, tables, strict=True)]
        if not all(math.isfinite(y) for y in ys):
            continue
        xs = [c.axis(axis)[t[step]] for c, t in zip(curves, tables, strict=True)]
        stats.x.append(statistics.fmean(xs))
        stats.mean.append(statistics.fmean(ys))
        stats.low.append(min(ys))
        stats.high.append(max(ys))
    return stats


def final_value(rows: Rows, key: str) -> float | None:
    """The last row's value of ``key`` (None when no row has one)."""
    for row in reversed(rows):
        if row.get(key) is not None:
            return float(row[key])
    return None


def best_value(rows: Rows, key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None and math.isfinite(r[key])]
    return min(values) if values else None


def mean_throughput(rows: Rows) -> float | None:
    """Training images per second over the run (images / training seconds)."""
    images = sum((r.get("images_per_second") or 0.0) * (r.get("epoch_seconds") or 0.0) for r in rows)
    seconds = sum(r.get("epoch_seconds") or 0.0 for r in rows)
    return images / seconds if seconds > 0 else None


def clipped_share(rows: Rows) -> float | None:
    """The share (%) of optimiser steps whose gradient norm was clipped; None when the rows do not count them."""
    counted = [r for r in rows if r.get("clipped_steps") is not None]
    steps = sum(r.get("step", 0) - p.get("step", 0) for p, r in zip([{}, *counted], counted, strict=False))
    if not counted or steps <= 0:
        return None
    return 100.0 * sum(r["clipped_steps"] for r in counted) / steps
