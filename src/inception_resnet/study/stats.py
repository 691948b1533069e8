"""Statistics over seeds: mean and spread of curves and final errors, epochs and seconds to error levels.

Conventions (the report repeats them): the spread of a model is the standard deviation over seeds
(``ddof=1``) and the range (min..max); two models differ "beyond the seed spread" only when their ranges over
seeds do not overlap. Time is the cumulative *training* time of the epochs (validation excluded). Time to
a level interpolates linearly between validations, starting from chance error (1 - 1/classes) at epoch 0
and second 0: an untrained network's expected error.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

METRICS = {
    "raw": {"top1": "val_top1_error", "top5": "val_top5_error"},
    "ema": {"top1": "ema_val_top1_error", "top5": "ema_val_top5_error"},
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
        """Whether the two ranges over seeds overlap (then a difference is within the seed spread)."""
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


def cumulative_seconds(rows: Rows) -> list[float]:
    """The training time at the end of each epoch (sum of ``epoch_seconds``)."""
    total, out = 0.0, []
    for row in rows:
        total += row.get("epoch_seconds") or 0.0
        out.append(total)
    return out


def points(rows: Rows, key: str, axis: str = "epoch") -> list[tuple[float, float]]:
    """``(x, value)`` for the epochs where ``key`` has a finite value; x is the epoch or training seconds."""
    xs = [row.get("epoch") for row in rows] if axis == "epoch" else cumulative_seconds(rows)
    return [(float(x), float(row[key])) for x, row in zip(xs, rows, strict=True)
            if x is not None and row.get(key) is not None and math.isfinite(row[key])]


@dataclass
class CurveStats:
    """A metric over seeds at each epoch all seeds share: x (mean over seeds), mean, std, min, max."""

    x: list[float]
    mean: list[float]
    std: list[float]
    low: list[float]
    high: list[float]
    seeds: list[list[tuple[float, float]]]


def curve_stats(runs: Sequence[Rows], key: str, axis: str = "epoch") -> CurveStats:
    """Mean and spread of ``key`` over runs (seeds), at the epochs every run has a value for."""
    per_run = [{int(row["epoch"]): row for row in rows if row.get(key) is not None and math.isfinite(row[key])}
               for rows in runs]
    seconds = [dict(zip([int(r["epoch"]) for r in rows], cumulative_seconds(rows), strict=True)) for rows in runs]
    common = sorted(set.intersection(*(set(d) for d in per_run))) if per_run else []
    stats = CurveStats([], [], [], [], [], [points(rows, key, axis) for rows in runs])
    for epoch in common:
        values = spread(d[epoch][key] for d in per_run)
        xs = [float(epoch)] if axis == "epoch" else [s[epoch] for s in seconds]
        stats.x.append(statistics.fmean(xs))
        stats.mean.append(values.mean)
        stats.std.append(values.std)
        stats.low.append(values.min)
        stats.high.append(values.max)
    return stats


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


def time_to_level(rows: Rows, key: str, level: float, chance: float) -> tuple[float | None, float | None]:
    """``(epochs, seconds)`` of training until ``key`` reaches ``level`` (see the module docstring)."""
    start = [(0.0, chance)]
    return (first_crossing(start + points(rows, key, "epoch"), level),
            first_crossing(start + points(rows, key, "seconds"), level))


def derive_levels(runs: Sequence[Rows], key: str, margins: Sequence[float], chance: float) -> list[float]:
    """Error levels every run reached: the worst run's best error (rounded up to 0.1) plus each margin.

    Levels in the upper half of the range from that error to chance are dropped (reaching an error just
    below chance says little, and its time hangs on the chance anchor at epoch 0); the result runs from
    the easiest (highest) level to the hardest.
    """
    bests = [min((y for _, y in points(rows, key)), default=None) for rows in runs]
    if not bests or any(b is None for b in bests):
        return []
    base = math.ceil(max(bests) * 10 - 1e-9) / 10
    if base >= chance:
        return []
    ceiling = base + (chance - base) / 2
    levels = {round(base + m, 1) for m in margins if base + m <= ceiling}
    return sorted(levels, reverse=True)


def final_value(rows: Rows, key: str) -> float | None:
    """The last epoch's value of ``key`` (None when the run has no such value)."""
    for row in reversed(rows):
        if row.get(key) is not None:
            return float(row[key])
    return None


def best_value(rows: Rows, key: str) -> float | None:
    values = [y for _, y in points(rows, key)]
    return min(values) if values else None


def mean_throughput(rows: Rows) -> float | None:
    """Training images per second over the run (images / training seconds)."""
    images = sum((r.get("images_per_second") or 0.0) * (r.get("epoch_seconds") or 0.0) for r in rows)
    seconds = sum(r.get("epoch_seconds") or 0.0 for r in rows)
    return images / seconds if seconds > 0 else None


def ratios(numerators: Sequence[float | None], denominators: Sequence[float | None]) -> list[float]:
    """Element-wise ratios where both values exist and the denominator is positive (paired by seed)."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)
            if a is not None and b is not None and b > 0]


def ratio_of_means(numerators: Sequence[float | None], denominators: Sequence[float | None]) -> float | None:
    """mean(numerators) / mean(denominators) over the positions (seeds) where both exist; None if none do."""
    both = [(a, b) for a, b in zip(numerators, denominators, strict=True) if a is not None and b is not None]
    if not both:
        return None
    den = statistics.fmean(b for _, b in both)
    return statistics.fmean(a for a, _ in both) / den if den > 0 else None


def direction(values: Sequence[float]) -> str:
    """``faster`` when every per-seed speed-up exceeds 1, ``slower`` when every one is below, else ``mixed``."""
    if not values:
        return "n/a"
    if all(v > 1.0 for v in values):
        return "faster"
    if all(v < 1.0 for v in values):
        return "slower"
    return "mixed"
