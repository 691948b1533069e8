"""The answer of ``study scaling``: which runs died beside which living controls, and the sentences on what
reproduces section 3.3 of the Inception-v4 paper (Szegedy et al. 2016) and what does not.

Findings are stated only as far as the measurements carry them: a difference between two groups of runs is
"above" or "below" only when the ranges over seeds do not overlap. :mod:`.scaling_markdown` and
:mod:`.scaling_report` write them; see docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config import ScalingConfig
from .results import ScalingResult, ScalingRun
from .stats import Spread

PAPER_ITERATIONS = 20_000  # "a few tens of thousands" of iterations (section 3.3): the low end, for comparison


def rate_text(run_or_rate: ScalingRun | float) -> str:
    per_32 = run_or_rate if isinstance(run_or_rate, (int, float)) else run_or_rate.lr_per_32
    return f"{per_32:.4g}"


def living_controls(dead: ScalingRun, runs: Sequence[ScalingRun]) -> dict[str, list[ScalingRun]]:
    """The runs that trained normally beside a dead one: the same settings with another seed, the same
    rate with another scale, the same scale with another rate."""
    trained = [r for r in runs if r.trained and r is not dead]
    return {
        "same rate and scale, other seed": [
            r for r in trained if r.lr_per_32 == dead.lr_per_32 and r.scale == dead.scale
        ],
        "same rate, other scale": [r for r in trained if r.lr_per_32 == dead.lr_per_32 and r.scale != dead.scale],
        "same scale, other rate": [r for r in trained if r.scale == dead.scale and r.lr_per_32 != dead.lr_per_32],
    }


def compare_ranges(a: Spread | None, b: Spread | None) -> str:
    """Where the range of ``a`` lies against that of ``b``: above, below, or overlapping (seed spread)."""
    if a is None or b is None:
        return "cannot be compared (not measured) with"
    if a.min > b.max:
        return "is above"
    if a.max < b.min:
        return "is below"
    return "overlaps"


def findings(config: ScalingConfig, result: ScalingResult, rows: list[dict[str, Any]]) -> list[str]:
    """Sentences on what reproduces and what does not, each resting on the table's numbers."""
    done = [r for r in result.runs if r.finished]
    if not done:
        return ["No run finished: nothing to compare."]
    out = []
    steps = max((r.total_steps or 0) for r in done) or None
    paper_rates = sorted({r.lr_per_32 for r in done}, key=lambda x: abs(x - config.paper_lr))
    at_paper = paper_rates[0]
    unscaled = [r for r in done if r.lr_per_32 == at_paper and r.scale >= 0.999]
    scaled = [r for r in done if r.lr_per_32 == at_paper and r.scale <= 0.3]
    dead_unscaled = sum(r.death.dead for r in unscaled)
    dead_scaled = sum(r.death.dead for r in scaled)
    where = (
        f"at the paper's rate ({rate_text(at_paper)} per 32 images)"
        if abs(at_paper - config.paper_lr) < 1e-9
        else f"at the rate closest to the paper's ({rate_text(at_paper)} per 32 images; the paper's is "
        f"{config.paper_lr:g})"
    )
    if unscaled:
        verb = "died" if dead_unscaled else "did not die"
        out.append(
            f"**Death, {where}**: {dead_unscaled} of {len(unscaled)} unscaled run(s) (scale 1.0) died "
            f"within {steps if steps else '?'} steps; {dead_scaled} of {len(scaled)} run(s) with a scale of "
            f"0.3 or less died. The paper's unscaled wide networks died; here they {verb}"
            + (
                ' — the paper\'s deaths came after "a few tens of thousands" of iterations, '
                f"about {PAPER_ITERATIONS // max(steps or 1, 1)}x this budget or more, so this neither "
                "confirms nor refutes them."
                if not dead_unscaled
                else "."
            )
        )
    dead_runs = [r for r in done if r.death.dead]
    if dead_runs:
        by_rate = {}
        for r in dead_runs:
            by_rate.setdefault(r.lr_per_32, []).append(r)
        parts = [
            f"{rate_text(rate)}: {len(items)} (scales {', '.join(sorted({f'{r.scale:g}' for r in items}))})"
            for rate, items in sorted(by_rate.items())
        ]
        induced = sum("rate-induced" in r.label for r in dead_runs)
        out.append(
            f"**Deaths per rate** (per 32 images): {'; '.join(parts)}. {induced} of {len(dead_runs)} "
            f"came at {config.rate_factor:g}x the paper's rate or more (rate-induced: the paper says its "
            "deaths did not come from the rate)."
        )
        scaled_dead = [r for r in dead_runs if r.scale <= 0.3]
        if scaled_dead:
            out.append(
                f"**Scaling did not always prevent death**: {len(scaled_dead)} run(s) with a scale of 0.3 "
                "or less died (" + ", ".join(r.key for r in scaled_dead) + "), unlike the paper."
            )
    for row_rate in sorted({row["lr_per_32"] for row in rows}):
        mine = [row for row in rows if row["lr_per_32"] == row_rate and row["runs"]]
        one = next((row for row in mine if row["scale"] >= 0.999), None)
        if one is None:
            continue
        others = [row for row in mine if row["scale"] <= 0.3]
        if not others:
            continue

        def against(key: str, one: dict[str, Any] = one, others: list[dict[str, Any]] = others) -> str:
            return ", ".join(f"{compare_ranges(one[key], row[key])} scale {row['scale']:g}'s" for row in others)

        channel, stream, top1 = against("max_dead_channels"), against("final_stream"), against("top1")
        out.append(
            f"**At {rate_text(row_rate)} per 32 images, the unscaled runs against the scaled ones**: "
            f"their highest dead-channel share {channel}; their residual stream at the last step "
            f"{stream}; their final validation error {top1}. (Above or below: every unscaled run beyond "
            "every run of that scale; overlaps: the ranges over seeds overlap.)"
        )
    trained = sum(r.trained for r in done)
    out.append(
        f"**Living runs**: {trained} of {len(done)} finished run(s) trained normally (not dead, final "
        f"validation top-1 error at most {config.trained_top1:g} %)."
        + (
            " No run reached that regime within the budget: the comparisons above are between networks "
            "that had not learned the task yet, and no death has a living control."
            if not trained
            else ""
        )
    )
    return out
