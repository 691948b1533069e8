"""The death detector of the scaling study: did a network's last layer before pooling go all-zero for good?

The paper (section 3.3) saw wide Inception-ResNets "die" early in training: the layer before the average
pooling produced only zeros from some point on, and the loss stopped improving. Every few steps a run logs
(``steps.jsonl``) the fraction of exact zeros entering the final pooling and, under ``study scaling``, the
share of dead channels there (:mod:`.probe`); this module reads those sequences and says whether, and at
which step, a run died (:func:`detect_death`), and whether a death came at a learning rate far above the
paper's (:func:`rate_label`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..training.rundir import read_steps
from .config import PAPER_LR, DeathCriteria


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

    ``zero_fractions`` holds the values of the criteria's measure (dead-channel shares or zero fractions).
    The candidate death step is the start of the final run of logged points whose value is at least the
    measure's threshold (a transient all-zero episode followed by recovery does not count). The run is
    dead when that final stretch has at least ``min_points`` points and the loss in it never falls more
    than ``loss_tolerance`` (relative) below the loss at its first point.
    """
    criteria = criteria or DeathCriteria()
    if not len(steps) == len(zero_fractions) == len(losses):
        raise ValueError(
            f"steps, zero fractions and losses differ in length: {len(steps)}, {len(zero_fractions)}, {len(losses)}"
        )
    if not steps:
        return DeathReport(False, None, "no steps were logged")
    start = len(steps)
    threshold = criteria.threshold
    while start > 0 and _all_zero(zero_fractions[start - 1], threshold):
        start -= 1
    total_zero = sum(1 for z in zero_fractions if _all_zero(z, threshold))
    tail = len(steps) - start
    if tail == 0:
        if total_zero:
            return DeathReport(False, None, f"{total_zero} all-zero point(s), but the network recovered", total_zero)
        finite = [z for z in zero_fractions if z is not None and math.isfinite(z)]
        highest = f"{max(finite):.4f}" if finite else "never measured"
        return DeathReport(False, None, f"highest {criteria.measure.replace('_', ' ')} {highest}", 0)
    if tail < criteria.min_points:
        return DeathReport(
            False,
            None,
            f"all zero for the last {tail} logged point(s) only "
            f"(fewer than {criteria.min_points}): not enough evidence",
            total_zero,
        )
    measured = [x for x in losses[start:] if x is not None and math.isfinite(x)]
    onset_loss = measured[0] if measured else float("nan")
    later = measured[1:]
    if later and min(later) < onset_loss * (1.0 - criteria.loss_tolerance):
        return DeathReport(
            False,
            None,
            f"all zero from step {steps[start]}, but the loss kept falling ({onset_loss:.4f} -> {min(later):.4f})",
            total_zero,
        )
    return DeathReport(
        True,
        int(steps[start]),
        f"{criteria.measure.replace('_', ' ')} at least {threshold:g} from "
        f"step {steps[start]} to the end ({tail} logged points), loss flat at {onset_loss:.4f}",
        total_zero,
    )


def _all_zero(value: float | None, threshold: float) -> bool:
    return value is not None and math.isfinite(value) and value >= threshold


def detect_run_death(run_dir: str | os.PathLike, criteria: DeathCriteria | None = None) -> DeathReport:
    """:func:`detect_death` on a run directory's ``steps.jsonl``."""
    return detect_rows_death(read_steps(run_dir), criteria)


def detect_rows_death(rows: Sequence[dict[str, Any]], criteria: DeathCriteria | None = None) -> DeathReport:
    """:func:`detect_death` on logged step rows, reading the criteria's measure from each row.

    Only rows of training steps count (rows with a loss): the probe's row of the untrained network (step 0)
    says nothing about a death in training.
    """
    criteria = criteria or DeathCriteria()
    rows = [r for r in rows if criteria.measure in r and "loss" in r]
    if not rows:
        return DeathReport(
            False,
            None,
            f"no {criteria.measure} was logged (runs of `study scaling` log it; "
            "set death.measure=zero_fraction for other runs)",
        )
    return detect_death(
        [int(r["step"]) for r in rows],
        [_float(r.get(criteria.measure)) for r in rows],
        [_float(r.get("loss")) for r in rows],
        criteria,
    )


def rate_per_32(lr: float, batch_size: int, reference_batch_size: int, scale_lr: bool = True) -> float:
    """The peak learning rate per 32 images: the paper's unit (0.045 per 32 images)."""
    peak = lr * batch_size / reference_batch_size if scale_lr else lr
    return peak * 32 / batch_size


def rate_label(dead: bool, lr_per_32: float, paper_lr: float = PAPER_LR, factor: float = 4.0) -> str:
    """``alive``, ``dead`` or ``dead, rate-induced`` (a death at ``factor`` times the paper's rate or more).

    The paper says its deaths did not come from the learning rate (lowering it did not prevent them); a
    death at a rate far above the paper's says nothing about that claim, so it is labelled apart.
    """
    if not dead:
        return "alive"
    if lr_per_32 >= factor * paper_lr * (1 - 1e-9):
        return f"dead, rate-induced ({lr_per_32 / paper_lr:.3g}x the paper's rate)"
    return "dead"


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
