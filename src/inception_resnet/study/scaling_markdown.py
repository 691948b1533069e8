"""The Markdown of the ``study scaling`` report: its sections and tables, built from the result types and the
per-setting rows; :mod:`.scaling_report` assembles them into ``report.md`` beside the data files and figures,
with the answer of :mod:`.scaling_findings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..training import TrainConfig
from .config import ScalingConfig
from .report import PAPER, fmt, md_table
from .results import ScalingResult, ScalingRun
from .scaling_findings import PAPER_ITERATIONS, living_controls, rate_text
from .stats import Spread


def range_cell(values: Spread | None, digits: int = 3, suffix: str = "") -> str:
    if values is None:
        return "-"
    if values.n == 1 or values.min == values.max:
        return f"{values.mean:.{digits}f}{suffix}"
    return f"{values.mean:.{digits}f}{suffix} ({values.min:.{digits}f}..{values.max:.{digits}f})"


EVERY_RUN_HEADERS = [
    "run",
    "lr per 32",
    "scale",
    "seed",
    "status",
    "verdict",
    "died at step",
    "last step",
    "last loss",
    "final val top-1 %",
    "dead channels (last / highest)",
    "zero fraction, probe (last)",
    "zero fraction, training batch (last)",
    "stream, last block (step 0 / last / highest)",
]


def every_run_row(run: ScalingRun) -> list[Any]:
    """A run's row of the report's table of every run."""
    m = run.measures
    return [
        f"`{run.key}`",
        rate_text(run),
        f"{run.scale:g}",
        run.seed,
        run.status,
        run.label,
        run.death.step if run.death.dead else "-",
        run.steps[-1]["step"] if run.steps else "-",
        fmt(run.final_loss, 3),
        fmt(run.final_top1, 1),
        f"{fmt(m.get('final_dead_channels'), 3)} / {fmt(m.get('max_dead_channels'), 3)}",
        fmt(m.get("final_probe_zero_fraction"), 3),
        fmt(m.get("final_zero_fraction"), 3),
        f"{fmt(m.get('init_stream_rms_last'), 2)} / {fmt(m.get('final_stream_rms_last'), 2)} / "
        f"{fmt(m.get('max_stream_rms_last'), 2)}",
    ]


def intro_lines(preset: str) -> list[str]:
    """The title and what the paper found."""
    return [
        f"# Residual scaling and dying networks: `{preset}` preset",
        "",
        f'Section 3.3 of {PAPER}: Inception-ResNets with more than 1000 filters "died" early in training '
        '(after "a few tens of thousands of iterations" the layer before the average pooling produced only '
        "zeros); lowering the learning rate or adding BatchNorm did not prevent it, scaling the residuals by "
        "0.1-0.3 before the addition did. Here the network is trained for each learning rate, residual scale "
        "and seed, and its pooling input and residual stream are measured as it trains.",
        "",
    ]


def setup_lines(
    config: ScalingConfig, result: ScalingResult, resolved: TrainConfig, derived: dict[str, Any]
) -> list[str]:
    """The bullets of "What was run": network, data, budget against the paper's, recipe, what is measured."""
    total_steps = derived.get("total_steps")
    images = total_steps * resolved.batch_size if total_steps is not None else None
    rates = sorted({r.lr_per_32 for r in result.runs})
    wide = [w for w in result.widths if w > config.min_filters]
    return [
        f"- Network: `{config.model}`, blocks {resolved.model_options.get('blocks', 'as defined (full depth)')}, "
        f"width multiplier {resolved.model_options.get('width_multiplier') or 1.0}: residual stages of "
        f"{', '.join(map(str, result.widths))} filters ({len(wide)} above {config.min_filters}).",
        f"- Data: {resolved.data or 'fashion-mnist'}, {derived.get('train_images', '?')} training images, "
        f"{derived.get('val_images', resolved.max_val_images or '?')} validation images, input "
        f"{derived.get('input_size', resolved.input_size)}, augmentation `{resolved.augmentation}`; "
        f"{resolved.epochs} epoch(s) of batch "
        f"{resolved.batch_size}: {total_steps if total_steps is not None else '?'} steps "
        f"({images if images else '?'} images) per run.",
        f"- Budget against the paper: {total_steps if total_steps is not None else '?'} steps per run, against "
        f'the paper\'s deaths after "a few tens of thousands" of iterations (batch 32 per replica): '
        + (
            f"{100 * total_steps / PAPER_ITERATIONS:.1f} % of {PAPER_ITERATIONS:,} iterations."
            if total_steps
            else "unknown."
        ),
        f"- Recipe `{resolved.recipe}`: learning rates {', '.join(rate_text(r) for r in rates)} per 32 images "
        f"(the paper's: {config.paper_lr:g}; scaled linearly to the batch), warm-up {resolved.warmup_epochs} "
        f"epochs, gradient clipping at {resolved.clip_grad_norm}, decay x{resolved.decay_rate} every "
        f"{resolved.decay_epochs} epochs.",
        f"- Residual scales {config.scales}, seeds {config.seeds}: {len(result.runs)} runs "
        f"({sum(r.finished for r in result.runs)} finished).",
        f"- Measured every {resolved.log_every_steps} steps, in eval mode on a fixed batch of "
        f"{config.probe_images} validation images: the share of channels entering the final pooling that are zero "
        "on every image (*dead channels*), the zero fraction there, and the root-mean-square of the residual "
        "stream after every block; with the training loss and the zero fraction of the training batch. "
        + (
            f"Validation error every {config.val_every_steps} steps and at the end."
            if config.val_every_steps
            else "Validation error after every epoch."
        ),
        f"- Dead: from some logged step to the end, {config.death.measure.replace('_', ' ')} at least "
        f"{config.death.threshold:g} (at {config.death.min_points} or more logged points) and the training loss "
        f"no longer falling (by more than {100 * config.death.loss_tolerance:g} % of its value there). A death "
        f"at {config.rate_factor:g}x the paper's rate or more is labelled *rate-induced*. A non-finite loss ends "
        f"a run as *diverged*. A run *trained normally* when it did not die and ended at a validation top-1 "
        f"error of at most {config.trained_top1:g} %.",
        "",
    ]


def setting_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The section "Per learning rate and scale": one row per setting, the mean over seeds and the range."""
    lines = [
        "## Per learning rate and scale",
        "",
        "Values: mean over seeds (range). Dead channels: share of the pooling input's channels zero on every "
        "probe image. Stream: root-mean-square of the residual stream after the last block.",
        "",
    ]
    lines += [
        md_table(
            [
                "lr per 32",
                "scale",
                "runs",
                "dead",
                "died at step",
                "rate-induced",
                "diverged",
                "trained normally",
                "dead channels, last",
                "dead channels, highest",
                "stream, last",
                "stream, highest (any block)",
                "final val top-1 %",
            ],
            [
                [
                    rate_text(r["lr_per_32"]),
                    f"{r['scale']:g}",
                    r["runs"],
                    r["dead"],
                    ", ".join(map(str, r["death_steps"])) or "-",
                    r["rate_induced"],
                    r["diverged"],
                    r["trained"],
                    range_cell(r["final_dead_channels"]),
                    range_cell(r["max_dead_channels"]),
                    range_cell(r["final_stream"], 2),
                    range_cell(r["max_stream"], 2),
                    range_cell(r["top1"], 1),
                ]
                for r in rows
            ],
        ),
        "",
    ]
    return lines


def death_lines(runs: Sequence[ScalingRun]) -> list[str]:
    """The section "Every death and its living controls"."""
    dead_runs = [r for r in runs if r.death.dead]
    lines = ["## Every death and its living controls", ""]
    if not dead_runs:
        lines += ["No run died.", ""]
    for run in dead_runs:
        lines += [
            f"- `{run.key}` ({run.label}; lr {rate_text(run)} per 32 images, scale {run.scale:g}, seed "
            f"{run.seed}): died at step {run.death.step}, final validation top-1 error {fmt(run.final_top1, 1)} "
            "%. Controls that trained normally:"
        ]
        for kind, items in living_controls(run, runs).items():
            text = ", ".join(f"`{c.key}` ({fmt(c.final_top1, 1)} %)" for c in items) or "none"
            lines.append(f"  - {kind}: {text}")
    if dead_runs:
        lines.append("")
    return lines


def every_run_lines(result: ScalingResult) -> list[str]:
    """The section "Every run": the table and the death detector's reasons."""
    return [
        "## Every run",
        "",
        md_table(EVERY_RUN_HEADERS, [every_run_row(r) for r in result.runs]),
        "",
        "Detector's reasons: " + "; ".join(f"`{r.key}`: {r.death.reason}" for r in result.runs if r.finished) + ".",
        "",
    ]


def closing_lines(resolved: TrainConfig, derived: dict[str, Any]) -> list[str]:
    """The sections "Beside the paper" and "Files"."""
    return [
        "## Beside the paper",
        "",
        "The paper reports the phenomenon qualitatively (no share of dead runs, no step counts): networks of "
        "more than 1000 filters died after a few tens of thousands of iterations; a lower learning rate, extra "
        "BatchNorm or a low-learning-rate warm-up did not help; scaling the residuals by 0.1-0.3 did, without "
        "hurting accuracy. It trained on ImageNet at 299x299 with many replicas; this study trains on "
        f"{resolved.data or 'fashion-mnist'} at {derived.get('input_size', resolved.input_size)}x"
        f"{derived.get('input_size', resolved.input_size)}, so a difference can come from the data, the "
        "input size and the budget as much as from the network.",
        "",
        "## Files",
        "",
        "- `scaling.csv`: one row per run; `steps.csv`: every logged step of every run (the figures' data; "
        "`stream_rms` lists the blocks in forward order).",
        "- `study.json`: the exact configuration and environment; `summary.json`: per setting and per run "
        "(with each run's settings and derived values); `runs/<run>/` (where kept): the training runs.",
        "",
    ]
