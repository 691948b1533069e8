"""The paired statistics of the study: t-intervals that cover, exact sign-flip p-values, t quantiles."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from inception_resnet.study.significance import (
    incomplete_beta,
    lower_bound,
    sign_flip_p,
    t_cdf,
    t_interval,
    t_quantile,
)


@pytest.mark.parametrize("n", [4, 12])
def test_t_interval_covers_the_true_mean_about_95_percent_of_the_time(n: int) -> None:
    rng = np.random.default_rng(n)
    trials = 2000
    covered = sum(t_interval(rng.normal(0.3, 1.0, n)).excludes(0.3) is False for _ in range(trials))
    # binomial sd at 95 % over 2000 trials is 0.49 points: 93-97 % is a 4-sd band
    assert 0.93 <= covered / trials <= 0.97


def test_t_interval_width_is_the_textbook_one() -> None:
    values = [0.1, 0.2, 0.15, 0.3, 0.05]
    interval = t_interval(values)
    half = scipy_stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    mean, sd = np.mean(values), np.std(values, ddof=1)
    assert interval.low == pytest.approx(mean - half) and interval.high == pytest.approx(mean + half)
    assert t_interval([1.0, 2.0]) is None  # no interval below 3 values
    one_sided = lower_bound(values)
    assert one_sided.high is None
    assert one_sided.low == pytest.approx(mean - scipy_stats.t.ppf(0.95, 4) * sd / 5**0.5)


def test_sign_flip_p_value_on_cases_with_a_known_answer() -> None:
    # all positive: only the observed pattern and its mirror are as extreme, two-sided p = 2 / 2^n
    for n in (3, 5, 6, 12):
        assert sign_flip_p([1.0 + 0.1 * i for i in range(n)]) == pytest.approx(2 / 2**n)
    assert sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0], "greater") == pytest.approx(1 / 32)
    # a symmetric sample has mean 0: every pattern is at least as extreme, p = 1
    assert sign_flip_p([1.0, -1.0, 2.0, -2.0]) == pytest.approx(1.0)
    # against a brute-force count over all 2^n patterns
    data = [0.4, -0.1, 0.3, 0.25, -0.05, 0.2, 0.1]
    observed = abs(sum(data))
    count = sum(
        abs(sum(s * d for s, d in zip(signs, data, strict=True))) >= observed - 1e-12
        for signs in itertools.product((-1, 1), repeat=len(data))
    )
    assert sign_flip_p(data) == pytest.approx(count / 2 ** len(data))


def test_t_distribution_matches_scipy() -> None:
    for df in (2, 3, 5, 11, 40):
        for q in (0.8, 0.95, 0.975):
            assert t_quantile(q, df) == pytest.approx(scipy_stats.t.ppf(q, df), rel=1e-7)
        for t in (-2.5, -0.3, 0.0, 1.1, 3.7):
            assert t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-10)
    assert incomplete_beta(2.0, 3.0, 0.4) == pytest.approx(scipy_stats.beta.cdf(0.4, 2.0, 3.0))
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
