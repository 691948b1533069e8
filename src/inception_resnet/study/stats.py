"""Statistics of the studies: spread over seeds, learning curves, time to an error level, paired bootstrap.

Conventions (the reports repeat them):

* A run's learning curve is its validations (``validation.jsonl``: step 0, then every N steps), each with
  the optimiser step, the training time so far (validation excluded) and the errors. Runs without that
  file fall back to their per-epoch rows (no step-0 point then).
* Steps (or seconds) to an error level: the first point where the curve, drawn as straight lines between
  the measured validations, gets down to the level; ``None`` when the run never gets there.
* Area under the error curve: the mean error over training (trapezoids over the steps, divided by the
  steps), a summary of the whole curve that no choice of level can tilt.
* Paired comparisons are made seed by seed (the two networks of a pair share a seed's data, order and
  augmentation). A ratio is the geometric mean of the per-seed ratios; a difference the mean of the
  per-seed differences. Their 95 % intervals are percentile intervals of a paired bootstrap: the seeds are
  resampled with replacement (Efron and Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METRICS = {
    "raw": {"top1": "val_top1_error", "top5": "val_top5_error", "loss": "val_loss"},
    "ema": {"top1": "ema_val_top1_error", "top5": "ema_val_top5_error", "loss": "ema_val_loss"},
}
Rows = list[dict[str, Any]]
BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95


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
        points = [(float(r["step"]), float(r.get("train_seconds") or 0.0), r.get(keys["top1"]), r.get(keys["top5"]))
                  for r in evaluations]
    else:
        seconds = cumulative_seconds(rows)
        points = [(float(r.get("step", r.get("epoch", 0))), s, r.get(keys["top1"]), r.get(keys["top5"]))
                  for r, s in zip(rows, seconds, strict=True)]
    points = [p for p in points if p[2] is not None and math.isfinite(p[2])]
    return Curve([p[0] for p in points], [p[1] for p in points], [float(p[2]) for p in points],
                 [float(p[3]) if p[3] is not None else math.nan for p in points])


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


def time_to_level(curve: Curve, level: float) -> tuple[float | None, float | None]:
    """``(steps, seconds)`` of training until the curve reaches ``level`` (interpolated; None: never)."""
    return (first_crossing(list(zip(curve.steps, curve.top1, strict=True)), level),
            first_crossing(list(zip(curve.seconds, curve.top1, strict=True)), level))


def mean_error(curve: Curve) -> float | None:
    """The area under the top-1 error curve over the steps, divided by the steps: the mean error over training."""
    if len(curve.steps) < 2 or curve.steps[-1] <= curve.steps[0]:
        return None
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in
               zip(curve.steps, curve.steps[1:], curve.top1, curve.top1[1:], strict=False))
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


# -- paired bootstrap ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """An estimate with its bootstrap interval (``low``, ``high``) over ``n`` paired seeds."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def excludes(self, value: float) -> bool:
        """Whether ``value`` (no difference: 1 for a ratio, 0 for a difference) lies outside the interval."""
        return self.low > value or self.high < value

    def text(self, digits: int = 2, suffix: str = "") -> str:
        return (f"{self.estimate:.{digits}f}{suffix} [{self.low:.{digits}f}, {self.high:.{digits}f}]")

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n,
                "confidence": self.confidence}


def bootstrap_mean(values: Sequence[float], *, samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
                   seed: int = 0) -> Interval | None:
    """The mean of ``values`` and its percentile bootstrap interval (None without values).

    ``samples`` resamples of the values, drawn with replacement by a generator seeded with ``seed`` (the same
    data always give the same interval).
    """
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(data.mean()), float(low), float(high), int(data.size), confidence)


def paired(first: Sequence[float | None], second: Sequence[float | None]) -> list[tuple[float, float]]:
    """The (first, second) pairs, seed by seed, where both values exist and are finite."""
    return [(float(a), float(b)) for a, b in zip(first, second, strict=True)
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]


def ratio_interval(numerators: Sequence[float | None], denominators: Sequence[float | None],
                   **options: Any) -> Interval | None:
    """Geometric mean over seeds of ``numerator / denominator`` with its paired bootstrap interval.

    The bootstrap resamples the seeds' log-ratios; seeds where a value is missing or not positive are left out.
    """
    logs = [math.log(a / b) for a, b in paired(numerators, denominators) if a > 0 and b > 0]
    interval = bootstrap_mean(logs, **options)
    if interval is None:
        return None
    return Interval(math.exp(interval.estimate), math.exp(interval.low), math.exp(interval.high), interval.n,
                    interval.confidence)


def difference_interval(first: Sequence[float | None], second: Sequence[float | None],
                        **options: Any) -> Interval | None:
    """Mean over seeds of ``second - first`` with its paired bootstrap interval."""
    return bootstrap_mean([b - a for a, b in paired(first, second)], **options)
