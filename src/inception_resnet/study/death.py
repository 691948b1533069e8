"""The death detector of the scaling study: did a network's last layer before pooling go all-zero for good?

The paper (section 3.3) saw wide Inception-ResNets "die" early in training: the layer before the average
pooling produced only zeros from some point on, and the loss stopped improving. The training loop logs,
every few steps, the fraction of exact zeros entering the final pooling (``steps.jsonl``); this module
reads those sequences and says whether, and at which step, a run died.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..training.rundir import read_steps
from .config import DeathCriteria


@dataclass(frozen=True)
class DeathReport:
    """The detector's verdict on one run: dead or not, the step it died at, and why."""

    dead: bool
    step: int | None
    reason: str
    all_zero_points: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"dead": self.dead, "step": self.step, "reason": self.reason, "all_zero_points": self.all_zero_points}


def detect_death(
    steps: Sequence[int],
    zero_fractions: Sequence[float],
    losses: Sequence[float],
    criteria: DeathCriteria | None = None,
) -> DeathReport:
    """Apply :class:`~inception_resnet.study.config.DeathCriteria` to a run's logged steps (in step order).

    The candidate death step is the start of the final run of logged points whose zero fraction is at
    least the threshold (a transient all-zero episode followed by recovery does not count). The run is
    dead when that final stretch has at least ``min_points`` points and the loss in it never falls more
    than ``loss_tolerance`` (relative) below the loss at its first point.
    """
    criteria = criteria or DeathCriteria()
    if not len(steps) == len(zero_fractions) == len(losses):
        raise ValueError(f"steps, zero fractions and losses differ in length: "
                         f"{len(steps)}, {len(zero_fractions)}, {len(losses)}")
    if not steps:
        return DeathReport(False, None, "no steps were logged")
    start = len(steps)
    while start > 0 and _all_zero(zero_fractions[start - 1], criteria.zero_fraction):
        start -= 1
    total_zero = sum(1 for z in zero_fractions if _all_zero(z, criteria.zero_fraction))
    tail = len(steps) - start
    if tail == 0:
        if total_zero:
            return DeathReport(False, None, f"{total_zero} all-zero point(s), but the network recovered",
                               total_zero)
        return DeathReport(False, None, f"highest zero fraction {max(zero_fractions):.4f}", 0)
    if tail < criteria.min_points:
        return DeathReport(False, None, f"all zero for the last {tail} logged point(s) only "
                           f"(fewer than {criteria.min_points}): not enough evidence", total_zero)
    onset_loss = losses[start]
    later = [x for x in losses[start:] if x is not None and math.isfinite(x)]
    if later and onset_loss is not None and min(later) < onset_loss * (1.0 - criteria.loss_tolerance):
        return DeathReport(False, None, f"all zero from step {steps[start]}, but the loss kept falling "
                           f"({onset_loss:.4f} -> {min(later):.4f})", total_zero)
    return DeathReport(True, int(steps[start]), f"all zero from step {steps[start]} to the end ({tail} logged "
                       f"points), loss flat at {onset_loss:.4f}", total_zero)


def _all_zero(value: float | None, threshold: float) -> bool:
    return value is not None and math.isfinite(value) and value >= threshold


def detect_run_death(run_dir: str | os.PathLike, criteria: DeathCriteria | None = None) -> DeathReport:
    """:func:`detect_death` on a run directory's ``steps.jsonl``."""
    rows = read_steps(run_dir)
    return detect_death([int(r["step"]) for r in rows], [_float(r.get("zero_fraction")) for r in rows],
                        [_float(r.get("loss")) for r in rows], criteria)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
