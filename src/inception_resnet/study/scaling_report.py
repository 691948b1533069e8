"""The report of ``study scaling``: the answer, the table per learning rate and scale, every death beside its
living controls, every run, the figures (:mod:`.figures`) and the data files; see :mod:`.scaling`.

Findings are stated only as far as the measurements carry them: a difference between two groups of runs is
"above" or "below" only when the ranges over seeds do not overlap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig
from .config import ScalingConfig
from .figures import plot_scaling, plot_stream
from .report import PAPER, environment_lines, fmt, md_table, write_csv, write_json, write_report
from .results import ScalingResult, ScalingRun
from .runs import run_entry
from .stats import Spread, spread

PAPER_ITERATIONS = 20_000  # "a few tens of thousands" of iterations (section 3.3): the low end, for comparison


def _rate_text(run_or_rate: ScalingRun | float) -> str:
    per_32 = run_or_rate if isinstance(run_or_rate, (int, float)) else run_or_rate.lr_per_32
    return f"{per_32:.4g}"


def _range(values: Spread | None, digits: int = 3, suffix: str = "") -> str:
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
        _rate_text(run),
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


def setting_table(config: ScalingConfig, result: ScalingResult) -> list[dict[str, Any]]:
    """One row per (learning rate, scale): deaths, dead channels, residual stream, validation error."""
    rows = []
    for per_32 in sorted({r.lr_per_32 for r in result.runs}):
        for scale in config.scales:
            mine = [r for r in result.runs if r.scale == scale and r.lr_per_32 == per_32]
            done = [r for r in mine if r.finished]
            dead = [r for r in done if r.death.dead]
            rows.append(
                {
                    "lr_per_32": per_32,
                    "lr": mine[0].lr if mine else None,
                    "scale": scale,
                    "runs": len(done),
                    "not_run": len(mine) - len(done),
                    "dead": len(dead),
                    "death_steps": [r.death.step for r in dead],
                    "rate_induced": sum("rate-induced" in r.label for r in dead),
                    "diverged": sum(r.status == "diverged" for r in done),
                    "trained": sum(r.trained for r in done),
                    "final_dead_channels": spread(r.measures.get("final_dead_channels") for r in done),
                    "max_dead_channels": spread(r.measures.get("max_dead_channels") for r in done),
                    "final_stream": spread(r.measures.get("final_stream_rms_last") for r in done),
                    "max_stream": spread(r.measures.get("max_stream_rms_max") for r in done),
                    "top1": spread(r.final_top1 for r in done),
                }
            )
    return rows


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


def _compare(a: Spread | None, b: Spread | None) -> str:
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
        f"at the paper's rate ({_rate_text(at_paper)} per 32 images)"
        if abs(at_paper - config.paper_lr) < 1e-9
        else f"at the rate closest to the paper's ({_rate_text(at_paper)} per 32 images; the paper's is "
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
            f"{_rate_text(rate)}: {len(items)} (scales {', '.join(sorted({f'{r.scale:g}' for r in items}))})"
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
            return ", ".join(f"{_compare(one[key], row[key])} scale {row['scale']:g}'s" for row in others)

        channel, stream, top1 = against("max_dead_channels"), against("final_stream"), against("top1")
        out.append(
            f"**At {_rate_text(row_rate)} per 32 images, the unscaled runs against the scaled ones**: "
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


def write_scaling_report(config: ScalingConfig, result: ScalingResult, preset: str) -> Path:
    out = result.out_dir
    rows = setting_table(config, result)
    per_run = [r.to_dict() for r in result.runs]
    write_csv(out / "scaling.csv", per_run)
    step_rows = [
        {
            "key": r.key,
            "lr_per_32": r.lr_per_32,
            "scale": r.scale,
            "seed": r.seed,
            **{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in s.items()},
        }
        for r in result.runs
        for s in r.steps
    ]
    if step_rows:
        write_csv(out / "steps.csv", step_rows)
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").is_file() else {}
    env = study.get("environment") or environment("")
    summary_rows = [{k: (v.to_dict() if isinstance(v, Spread) else v) for k, v in row.items()} for row in rows]
    write_json(
        out / "summary.json",
        {
            "preset": preset,
            "residual_widths": result.widths,
            "settings": summary_rows,
            "runs": [{**entry, **run_entry(record)} for entry, record in zip(per_run, result.records, strict=True)],
        },
    )
    figures = []
    curves = [
        {
            "lr_per_32": r.lr_per_32,
            "scale": r.scale,
            "seed": r.seed,
            "steps": r.steps,
            "val": r.val,
            "death_step": r.death.step,
        }
        for r in result.runs
        if r.steps
    ]
    if curves:
        plot_scaling(
            curves,
            out / "scaling.png",
            title=f"{config.model}: dead channels, residual stream, loss and validation error (x: a death)",
        )
        figures.append("scaling.png")
        if any(s.get("stream_rms") for c in curves for s in c["steps"]):
            stages = result.stages
            if len(stages) == 3:  # the Inception-ResNet A, B and C stages
                stages = [(f"{letter} ({name})", count) for letter, (name, count) in zip("ABC", stages, strict=True)]
            plot_stream(
                curves,
                out / "stream.png",
                stages=stages,
                title=f"{config.model}: the residual stream "
                "after every block (dotted: step 0; solid: the last logged step)",
            )
            figures.append("stream.png")
    resolved = TrainConfig.from_dict({**config.train, "model": config.model}).resolved()
    derived = next((r.derived for r in result.records if r.derived), {})
    total_steps = derived.get("total_steps")
    images = total_steps * resolved.batch_size if total_steps is not None else None
    rates = sorted({r.lr_per_32 for r in result.runs})
    wide = [w for w in result.widths if w > config.min_filters]
    lines = [
        f"# Residual scaling and dying networks: `{preset}` preset",
        "",
        f'Section 3.3 of {PAPER}: Inception-ResNets with more than 1000 filters "died" early in training '
        '(after "a few tens of thousands of iterations" the layer before the average pooling produced only '
        "zeros); lowering the learning rate or adding BatchNorm did not prevent it, scaling the residuals by "
        "0.1-0.3 before the addition did. Here the network is trained for each learning rate, residual scale "
        "and seed, and its pooling input and residual stream are measured as it trains.",
        "",
    ]
    lines += environment_lines(env) + ["", "## What was run", ""]
    lines += [
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
        f"- Recipe `{resolved.recipe}`: learning rates {', '.join(_rate_text(r) for r in rates)} per 32 images "
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
    lines += ["## The answer", ""] + [f"- {text}" for text in findings(config, result, rows)] + [""]
    lines += [
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
                    _rate_text(r["lr_per_32"]),
                    f"{r['scale']:g}",
                    r["runs"],
                    r["dead"],
                    ", ".join(map(str, r["death_steps"])) or "-",
                    r["rate_induced"],
                    r["diverged"],
                    r["trained"],
                    _range(r["final_dead_channels"]),
                    _range(r["max_dead_channels"]),
                    _range(r["final_stream"], 2),
                    _range(r["max_stream"], 2),
                    _range(r["top1"], 1),
                ]
                for r in rows
            ],
        ),
        "",
    ]
    dead_runs = [r for r in result.runs if r.death.dead]
    lines += ["## Every death and its living controls", ""]
    if not dead_runs:
        lines += ["No run died.", ""]
    for run in dead_runs:
        lines += [
            f"- `{run.key}` ({run.label}; lr {_rate_text(run)} per 32 images, scale {run.scale:g}, seed "
            f"{run.seed}): died at step {run.death.step}, final validation top-1 error {fmt(run.final_top1, 1)} "
            "%. Controls that trained normally:"
        ]
        for kind, items in living_controls(run, result.runs).items():
            text = ", ".join(f"`{c.key}` ({fmt(c.final_top1, 1)} %)" for c in items) or "none"
            lines.append(f"  - {kind}: {text}")
    if dead_runs:
        lines.append("")
    for name in figures:
        lines += [f"![{name[:-4]}]({name})", ""]
    lines += [
        "## Every run",
        "",
        md_table(EVERY_RUN_HEADERS, [every_run_row(r) for r in result.runs]),
        "",
        "Detector's reasons: " + "; ".join(f"`{r.key}`: {r.death.reason}" for r in result.runs if r.finished) + ".",
        "",
    ]
    lines += [
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
    return write_report(out, lines, [r.spec.key for r in result.records if r.status == "not run"])
