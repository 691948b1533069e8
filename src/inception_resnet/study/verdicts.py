"""Verdicts of paired comparisons: "faster", "slower", "lower", "higher" or "not shown", and why.

A difference is *shown* only where the 95 % t-interval excludes no difference **and** the exact sign-flip
p-value is below 0.05 (:meth:`~inception_resnet.study.stats.Interval.shows`); fewer than 3 paired seeds give
no interval and no verdict. Steps (or seconds) to a level are *censored* where a run never reached it within
its budget: such a run's time is at least the budget. When only one side is censored, the per-seed
log-ratios with the budget put in are bounds on the true ones, and their one-sided 95 % t-bound with the
one-sided sign-flip p-value decides "faster (at least ...)" or "slower (at least ...)", with no upper end.
When both sides are censored on some seed, nothing is concluded.
"""

from __future__ import annotations

import math

from .results import Judged
from .significance import (
    MIN_INTERVAL_SEEDS,
    Interval,
    difference_interval,
    lower_bound,
    ratio_interval,
)

ALPHA = 0.05


def _seeds_text(n: int) -> str:
    return f"{n} paired seed{'s' if n != 1 else ''}"


def _one_sided(
    partner: list[float | None], residual: list[float | None], budget_partner: float, budget_residual: float
) -> tuple[Interval | None, str] | None:
    """The censored case: a one-sided bound of the speed-up and its verdict, or None when it does not apply."""
    n = len(partner)
    missing_p = sum(v is None for v in partner)
    missing_r = sum(v is None for v in residual)
    if missing_p and not missing_r:  # only partner runs censored: partner / residual is at least this
        logs = [math.log((budget_partner if p is None else p) / r) for p, r in zip(partner, residual, strict=True)]
        bound = lower_bound(logs)
        interval = (
            None
            if bound is None
            else Interval(
                math.exp(bound.estimate),
                math.exp(bound.low),
                None,
                bound.n,
                bound.p_value,
                math.exp(bound.detectable),
                bound.confidence,
                bound.method,
            )
        )
        what = f"{missing_p} of {n} partner runs never reached it, counted at their whole budget"
        if interval is not None and interval.shows(1.0, ALPHA):
            return interval, f"faster (at least {interval.low:.2f}x; {what})"
        return interval, f"not shown ({what}; the lower bound does not exclude 1)"
    if missing_r and not missing_p:  # only residual runs censored: residual / partner is at least this
        logs = [math.log((budget_residual if r is None else r) / p) for p, r in zip(partner, residual, strict=True)]
        bound = lower_bound(logs)
        interval = (
            None
            if bound is None
            else Interval(
                math.exp(-bound.estimate),
                None,
                math.exp(-bound.low),
                bound.n,
                bound.p_value,
                math.exp(bound.detectable),
                bound.confidence,
                bound.method,
            )
        )
        what = f"{missing_r} of {n} residual runs never reached it, counted at their whole budget"
        if interval is not None and interval.shows(1.0, ALPHA):
            return interval, f"slower (at most {interval.high:.2f}x; {what})"
        return interval, f"not shown ({what}; the upper bound does not exclude 1)"
    return None


def judge_time(
    partner: list[float | None],
    residual: list[float | None],
    *,
    budget_partner: float | None,
    budget_residual: float | None,
) -> Judged:
    """Steps (or seconds) to a level, paired by seed: the speed-up partner / residual and its verdict.

    ``None`` is a run that never reached the level; ``budget_*`` is each side's whole run (steps or seconds),
    the least a censored run would have needed. See the module's rules.
    """
    n = len(partner)
    reached_p = sum(v is not None for v in partner)
    reached_r = sum(v is not None for v in residual)
    if n < MIN_INTERVAL_SEEDS:
        return Judged(partner, residual, None, f"not shown ({_seeds_text(n)}: no interval below {MIN_INTERVAL_SEEDS})")
    if reached_p == 0 and reached_r == 0:
        return Judged(partner, residual, None, "not shown (no run reached it)")
    if reached_p < n or reached_r < n:
        if budget_partner and budget_residual:
            censored = _one_sided(partner, residual, budget_partner, budget_residual)
            if censored is not None:
                return Judged(partner, residual, *censored)
        return Judged(
            partner,
            residual,
            None,
            f"not shown (reached in {reached_p}/{n} partner and {reached_r}/{n} residual runs: censored on both sides)",
        )
    interval = ratio_interval(partner, residual)
    if interval is not None and interval.shows(1.0, ALPHA):
        return Judged(partner, residual, interval, "faster" if interval.low > 1.0 else "slower")
    return Judged(partner, residual, interval, "not shown")


def judge_error(partner: list[float | None], residual: list[float | None], *, ratio: bool) -> Judged:
    """An error, paired by seed: ``ratio`` partner / residual (above 1: the residual's is lower) or the
    difference residual - partner (below 0: lower), with "lower", "higher" or "not shown"."""
    interval = ratio_interval(partner, residual) if ratio else difference_interval(partner, residual)
    if interval is None:
        n = sum(a is not None and b is not None for a, b in zip(partner, residual, strict=True))
        return Judged(partner, residual, None, f"not shown ({_seeds_text(n)}: no interval below {MIN_INTERVAL_SEEDS})")
    null = 1.0 if ratio else 0.0
    if not interval.shows(null, ALPHA):
        return Judged(partner, residual, interval, "not shown")
    above = interval.low > null
    lower = above if ratio else not above
    return Judged(partner, residual, interval, "lower" if lower else "higher")
