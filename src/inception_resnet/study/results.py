"""What the studies produce, as data: the result types that the runners fill and the report writers read.

The runners (:mod:`.compare`, :mod:`.sweep`, :mod:`.scaling`) and the writers (:mod:`.compare_report`,
:mod:`.sweep_report`, :mod:`.scaling_report`) depend on this module; a runner calls its writer, and no writer
imports a runner.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training import TrainConfig
from .death import DeathReport
from .runs import RunRecord
from .significance import Interval
from .stats import Curve, Spread, spread


# -- study compare -------------------------------------------------------------------------------------------
@dataclass
class ModelResult:
    """One entry's results over its seeds (``seeds[i]`` is the seed of ``runs[i]``, ``curves[i]``, ...).

    ``step_seconds`` is the entry's training step time measured alone on the machine (:mod:`.timing`): the
    curves' seconds are their steps times it. ``early_grad_norms[i]`` holds seed ``i``'s gradient norms
    (before clipping) at the first optimiser steps (``steps.jsonl``).
    """

    name: str
    seeds: list[int]
    runs: list[list[dict[str, Any]]]
    curves: list[Curve]
    statuses: list[str]
    final_top1: Spread | None
    final_top5: Spread | None
    final_loss: Spread | None
    clipped_percent: Spread | None
    parameters: int | None
    macs: int | None
    input_size: int | None
    settings: dict[str, Any] = field(default_factory=dict)
    peak_lr: float | None = None
    total_steps: int | None = None
    step_seconds: float | None = None
    early_grad_norms: list[list[float]] = field(default_factory=list)
    clipped_flags: list[list[bool]] = field(default_factory=list)

    @property
    def lr(self) -> float | None:
        """The learning rate per reference batch (the entry's own, else the recipe's)."""
        if not self.settings:
            return None
        return TrainConfig.from_dict(self.settings).resolved().lr

    @property
    def network(self) -> str:
        return self.settings.get("model", self.name)

    def curve(self, seed: int) -> Curve | None:
        return self.curves[self.seeds.index(seed)] if seed in self.seeds else None

    def grad_norm_at(self, step: int) -> Spread | None:
        """The gradient norm at optimiser step ``step`` (1: the gradient at the initial weights) over seeds."""
        return spread(norms[step - 1] for norms in self.early_grad_norms if len(norms) >= step)

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "name",
                "seeds",
                "statuses",
                "parameters",
                "macs",
                "input_size",
                "peak_lr",
                "total_steps",
                "step_seconds",
                "early_grad_norms",
            )
        }
        out["model"] = self.network
        out["lr"] = self.lr
        for key in ("final_top1", "final_top5", "final_loss", "clipped_percent"):
            value = getattr(self, key)
            out[key] = value.to_dict() if value is not None else None
        out["curves"] = [c.to_dict() for c in self.curves]
        return out


@dataclass
class Judged:
    """A paired comparison: per-seed values of both entries, the estimate with its interval, the verdict."""

    partner: list[float | None]
    residual: list[float | None]
    interval: Interval | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "residual": self.residual,
            "verdict": self.verdict,
            "interval": self.interval.to_dict() if self.interval else None,
        }


@dataclass
class Crossing:
    """Where a run's curve first reached a level: the validations around it (``before`` < step <= ``after``)
    and the share of optimiser steps up to ``after`` whose gradient was clipped (None: not logged)."""

    before: float
    after: float
    clipped_percent: float | None = None

    @property
    def relative_gap(self) -> float:
        """The bracket's width relative to its end: the most the crossing's step can be off, as a fraction."""
        return (self.after - self.before) / self.after if self.after > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "relative_gap": self.relative_gap,
            "clipped_percent": self.clipped_percent,
        }


@dataclass
class LevelResult:
    """Steps and seconds each entry of a pair took to reach one top-1 error level, per seed, judged, with the
    validations bracketing each crossing. ``conservative`` judges the speed-up that no interpolation can
    have inflated: each partner run at the validation before its crossing against each residual run at the
    validation at or after its own."""

    level: float
    steps: Judged
    seconds: Judged
    partner_crossings: list[Crossing | None] = field(default_factory=list)
    residual_crossings: list[Crossing | None] = field(default_factory=list)
    conservative: Judged | None = None  # the partner's bracket start against the residual's bracket end

    def widest_gap(self) -> float | None:
        """The widest relative bracket of any crossing of this level (None: no run reached it)."""
        gaps = [c.relative_gap for c in (*self.partner_crossings, *self.residual_crossings) if c is not None]
        return max(gaps) if gaps else None

    @staticmethod
    def mean_clipped(crossings: list[Crossing | None]) -> float | None:
        values = [c.clipped_percent for c in crossings if c is not None and c.clipped_percent is not None]
        return statistics.fmean(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "steps": self.steps.to_dict(),
            "seconds": self.seconds.to_dict(),
            "conservative": self.conservative.to_dict() if self.conservative else None,
            "partner_crossings": [c.to_dict() if c else None for c in self.partner_crossings],
            "residual_crossings": [c.to_dict() if c else None for c in self.residual_crossings],
        }


@dataclass
class PairResult:
    """A pair's entries, levels, area under the curve, final error difference, figure and verdict lines."""

    partner: ModelResult
    residual: ModelResult
    seeds: list[int]
    levels: list[LevelResult]
    mean_error: Judged
    final_error: Judged
    figure: str | None = None

    @property
    def label(self) -> str:
        return f"{self.partner.name}-vs-{self.residual.name}"

    def verdict_lines(self) -> list[str]:
        """The pair's verdicts, one line each (the report's and ``make demo``'s summary)."""
        p, r = self.partner.name, self.residual.name
        lines = [f"{r} vs {p} ({len(self.seeds)} paired seeds; 95 % t-intervals, exact sign-flip p-values):"]
        for level in self.levels:
            lines.append(
                f"  steps to {level.level:g} % top-1 error, speed-up {p}/{r}: "
                f"{interval_text(level.steps.interval, 'x')} -> {level.steps.verdict}"
            )
        for level in self.levels:
            lines.append(
                f"  seconds to {level.level:g} % (isolated step times), speed-up {p}/{r}: "
                f"{interval_text(level.seconds.interval, 'x')} -> {level.seconds.verdict}"
            )
        lines.append(
            f"  mean top-1 error over training, ratio {p}/{r}: "
            f"{interval_text(self.mean_error.interval, 'x')} -> {self.mean_error.verdict}"
        )
        lines.append(
            f"  final top-1 error, {r} minus {p}: "
            f"{interval_text(self.final_error.interval, ' points')} -> {self.final_error.verdict}"
        )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner.to_dict(),
            "residual": self.residual.to_dict(),
            "seeds": self.seeds,
            "levels": [lv.to_dict() for lv in self.levels],
            "mean_error": self.mean_error.to_dict(),
            "final_error": self.final_error.to_dict(),
            "figure": self.figure,
            "verdict_lines": self.verdict_lines(),
        }


def interval_text(interval: Interval | None, suffix: str) -> str:
    """An interval for a verdict line, ``-`` when there is none."""
    return interval.text(2, suffix) if interval is not None else "-"


@dataclass
class VariantResult:
    """A sensitivity variant of the study (``compare.sensitivity``): its label, why it is there, its pair."""

    label: str
    question: str
    pair: PairResult

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "question": self.question, "pair": self.pair.to_dict()}


@dataclass
class CompareResult:
    """What :func:`~inception_resnet.study.run_compare` produced: pairs, sensitivity variants, baselines, the
    run records and the report."""

    out_dir: Path
    pairs: list[PairResult]
    records: list[RunRecord]
    report: Path | None
    baselines: list[ModelResult] = field(default_factory=list)
    baselines_figure: str | None = None
    variants: list[VariantResult] = field(default_factory=list)

    def verdict_lines(self) -> list[str]:
        return [line for pair in self.pairs for line in pair.verdict_lines()]


# -- study scaling ---------------------------------------------------------------------------------------------
@dataclass
class ScalingRun:
    """One run's outcome: settings, status, the death verdict and its label, and what the probe measured."""

    key: str
    lr: float | None
    lr_per_32: float
    scale: float
    seed: int
    status: str
    message: str
    death: DeathReport
    label: str
    steps: list[dict[str, Any]]
    total_steps: int | None
    final_loss: float | None
    final_top1: float | None
    trained: bool = False
    measures: dict[str, Any] = field(default_factory=dict)
    val: list[tuple[int, float]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "diverged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "lr": self.lr,
            "lr_per_32": self.lr_per_32,
            "scale": self.scale,
            "seed": self.seed,
            "status": self.status,
            "message": self.message,
            "dead": self.death.dead,
            "death_step": self.death.step,
            "death_reason": self.death.reason,
            "label": self.label,
            "trained_normally": self.trained,
            "logged_steps": len(self.steps),
            "last_step": self.steps[-1]["step"] if self.steps else None,
            "total_steps": self.total_steps,
            "final_loss": self.final_loss,
            "final_val_top1_error": self.final_top1,
            **self.measures,
        }


@dataclass
class ScalingResult:
    """What :func:`~inception_resnet.study.run_scaling` produced."""

    out_dir: Path
    runs: list[ScalingRun]
    widths: list[int]
    records: list[RunRecord]
    report: Path | None
    stages: list[tuple[str, int]] = field(default_factory=list)  # (stage module, blocks), forward order

    def dead_share(self, scale: float, lr: float | None = None) -> tuple[int, int]:
        """(dead runs, finished runs) at ``scale`` (and ``lr``, when given)."""
        finished = [r for r in self.runs if r.scale == scale and r.finished and (lr is None or r.lr == lr)]
        return sum(r.death.dead for r in finished), len(finished)


# -- study sweep -----------------------------------------------------------------------------------------------
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
        return {
            "model": self.model,
            "lr": self.lr,
            "final_errors": self.final_errors,
            "start_errors": self.start_errors,
            "mean_errors": self.mean_errors,
            "clipped_percent": self.clipped,
            "statuses": self.statuses,
            "final_error": self.final_error,
            "mean_error": self.mean_error,
        }


def _mean_of_all(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(v for v in values if v is not None)


@dataclass
class SweepResult:
    """What :func:`~inception_resnet.study.run_sweep` produced: the points, the chosen rate per entry, the grids
    as widened, the records and the report."""

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
