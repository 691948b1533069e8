"""Paired comparisons over seeds: Student t-intervals, exact sign-flip p-values, detectable effects.

Paired comparisons are made seed by seed (the two networks of a pair share a seed's data, order and
augmentation). A ratio is analysed as the per-seed log-ratios (reported as their geometric mean), a
difference as the per-seed differences. Each gets a two-sided 95 % Student t-interval (none for fewer than
3 seeds), the exact paired sign-flip (permutation) p-value, and the smallest effect the design detects with
80 % power. A difference is "shown" only where the interval excludes none *and* p < 0.05
(:mod:`.verdicts`). The t distribution is computed here (no SciPy at run time) from the regularised
incomplete beta function.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIDENCE = 0.95


# -- paired comparisons: t-intervals and exact sign-flip tests ----------------------------------------------
def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularised incomplete beta function (modified Lentz's method)."""
    tiny, result = 1e-300, 1.0
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and x in [0, 1]."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """The cumulative distribution function of Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=256)
def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (bisection on :func:`t_cdf`; cached)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"a quantile needs q in (0, 1), got {q}")
    low, high = -1e6, 1e6
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < q:
            low = middle
        else:
            high = middle
    return (low + high) / 2


EXACT_SIGN_FLIPS = 16  # up to this many seeds every sign pattern is enumerated; beyond, a seeded sample
SAMPLED_SIGN_FLIPS = 200_000


def sign_flip_p(differences: Sequence[float], alternative: str = "two-sided") -> float:
    """The paired permutation (sign-flip) p-value of the mean of ``differences`` against 0.

    Under no difference each seed's difference is as likely positive as negative, so its sign is flipped in
    every one of the 2^n ways (exact; past ``EXACT_SIGN_FLIPS`` seeds a seeded sample of patterns) and the
    p-value is the share of patterns whose mean is at least as extreme as the observed one (``two-sided``:
    in absolute value; ``greater``: as large). The smallest possible value is 2 / 2^n two-sided, so 3 seeds
    can never give p < 0.05 and 5 seeds are the fewest that can (Fisher 1935, "The Design of Experiments",
    section 21; Good 2005, "Permutation, Parametric and Bootstrap Tests of Hypotheses", ch. 3).
    """
    data = np.asarray(differences, dtype=np.float64)
    n = data.size
    if n == 0:
        raise ValueError("a sign-flip test needs at least one difference")
    if n <= EXACT_SIGN_FLIPS:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    else:
        patterns = np.random.default_rng(0).choice([-1, 1], size=(SAMPLED_SIGN_FLIPS, n))
        patterns[0] = 1
    means = patterns @ data / n
    observed = data.mean()
    tolerance = 1e-12 * max(1.0, float(np.abs(data).max()))
    if alternative == "two-sided":
        extreme = np.abs(means) >= abs(observed) - tolerance
    elif alternative == "greater":
        extreme = means >= observed - tolerance
    else:
        raise ValueError(f"alternative must be two-sided or greater, got {alternative!r}")
    return float(extreme.mean())


MIN_INTERVAL_SEEDS = 3  # fewer values give no interval at all
POWER = 0.80


@dataclass(frozen=True)
class Interval:
    """A paired estimate over ``n`` seeds: the mean with its t-interval, the exact sign-flip p-value, and the
    smallest true effect the design detects with 80 % power (two-sided, at 1 - ``confidence``).

    For a ratio every number is on the ratio's scale (the analysis is of the per-seed log-ratios). A one-sided
    bound comes from a censored comparison: ``high`` None says only "at least ``low``", ``low`` None only "at
    most ``high``".
    """

    estimate: float
    low: float | None
    high: float | None
    n: int
    p_value: float
    detectable: float
    confidence: float = CONFIDENCE
    method: str = "t"

    def excludes(self, value: float) -> bool:
        """Whether ``value`` (no difference: 1 for a ratio, 0 for a difference) lies outside the interval."""
        return (self.low is not None and self.low > value) or (self.high is not None and self.high < value)

    def shows(self, value: float, alpha: float | None = None) -> bool:
        """Whether the comparison shows a difference: the interval excludes ``value`` *and* p < alpha."""
        return self.excludes(value) and self.p_value < (alpha if alpha is not None else 1.0 - self.confidence)

    def text(self, digits: int = 2, suffix: str = "") -> str:
        if self.high is None or self.low is None:
            bound = f">= {self.low:.{digits}f}" if self.high is None else f"<= {self.high:.{digits}f}"
            return f"{bound}{suffix} (one-sided {self.confidence:.0%} bound, n = {self.n}), p = {self.p_value:.3g}"
        return (
            f"{self.estimate:.{digits}f}{suffix} [{self.low:.{digits}f}, {self.high:.{digits}f}], "
            f"n = {self.n}, p = {self.p_value:.3g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "p_value": self.p_value,
            "detectable": self.detectable,
            "confidence": self.confidence,
            "method": self.method,
        }


def t_interval(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Interval | None:
    """The mean of ``values`` with its two-sided Student t-interval, the exact sign-flip p-value against 0 and
    the smallest mean difference detectable with 80 % power; None for fewer than ``MIN_INTERVAL_SEEDS`` values.

    The detectable effect is (t_{1-alpha/2} + t_{power}) * sd / sqrt(n) with n - 1 degrees of freedom, the
    usual approximation to the paired t-test's power (Cohen 1988, "Statistical Power Analysis", ch. 2).
    """
    data = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(data)
    if n < MIN_INTERVAL_SEEDS:
        return None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean, sd = statistics.fmean(data), statistics.stdev(data)
    half = t_quantile(1.0 - (1.0 - confidence) / 2, n - 1) * sd / math.sqrt(n)
    detectable = (t_quantile(1.0 - (1.0 - confidence) / 2, n - 1) + t_quantile(POWER, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sign_flip_p(data), detectable, confidence)


def lower_bound(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Interval | None:
    """A one-sided lower bound of the mean of ``values`` (each itself a lower bound of the true value: a
    censored comparison) with the one-sided sign-flip p-value; None for fewer than ``MIN_INTERVAL_SEEDS``."""
    data = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(data)
    if n < MIN_INTERVAL_SEEDS:
        return None
    mean, sd = statistics.fmean(data), statistics.stdev(data)
    low = mean - t_quantile(confidence, n - 1) * sd / math.sqrt(n)
    detectable = (t_quantile(confidence, n - 1) + t_quantile(POWER, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, low, None, n, sign_flip_p(data, "greater"), detectable, confidence, "t, one-sided")


def paired(first: Sequence[float | None], second: Sequence[float | None]) -> list[tuple[float, float]]:
    """The (first, second) pairs, seed by seed, where both values exist and are finite."""
    return [
        (float(a), float(b))
        for a, b in zip(first, second, strict=True)
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    ]


def log_ratios(numerators: Sequence[float | None], denominators: Sequence[float | None]) -> list[float]:
    """``log(numerator / denominator)`` seed by seed, where both exist and are positive."""
    return [math.log(a / b) for a, b in paired(numerators, denominators) if a > 0 and b > 0]


def on_ratio_scale(interval: Interval | None) -> Interval | None:
    """An interval of mean log-ratios as one of ratios (geometric mean; the detectable effect as a factor)."""
    if interval is None:
        return None
    return Interval(
        math.exp(interval.estimate),
        math.exp(interval.low) if interval.low is not None else None,
        math.exp(interval.high) if interval.high is not None else None,
        interval.n,
        interval.p_value,
        math.exp(interval.detectable),
        interval.confidence,
        interval.method,
    )


def ratio_interval(numerators: Sequence[float | None], denominators: Sequence[float | None]) -> Interval | None:
    """Geometric mean over seeds of ``numerator / denominator``, its t-interval (on the log-ratios), the sign-flip
    p-value and the detectable factor; seeds where a value is missing or not positive are left out."""
    return on_ratio_scale(t_interval(log_ratios(numerators, denominators)))


def difference_interval(first: Sequence[float | None], second: Sequence[float | None]) -> Interval | None:
    """Mean over seeds of ``second - first`` with its t-interval, sign-flip p-value and detectable difference."""
    return t_interval([b - a for a, b in paired(first, second)])
