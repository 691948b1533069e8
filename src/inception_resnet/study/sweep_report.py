"""The files ``study sweep`` writes: ``report.md``, ``chosen.json``, ``sweep.png``, ``sweep.csv``, ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..training import TrainConfig
from .config import CompareConfig, SweepConfig
from .figures import plot_sweep
from .report import environment_lines, fmt, md_table, write_csv, write_json, write_text
from .results import SweepResult
from .runs import run_entry
from .stats import clipped_share, curve_of, mean_error

MEASURE_TEXT = {
    "mean_error": "mean held-out top-1 error over training (%)",
    "final_error": "final held-out top-1 error (%)",
}


def write_sweep_report(
    sweep: SweepConfig, compare: CompareConfig, result: SweepResult, preset: str, env: dict[str, Any]
) -> Path:
    out = result.out_dir
    rows = []
    for record in result.records:
        curve = curve_of(record.evaluations, record.rows)
        rows.append(
            {
                "model": record.spec.model,
                "lr": record.spec.settings.get("lr"),
                "seed": record.spec.seed,
                "status": record.status,
                "final_heldout_top1_error": curve.top1[-1] if curve.top1 else None,
                "mean_heldout_top1_error": mean_error(curve),
                "clipped_percent": clipped_share(record.rows),
            }
        )
    if rows:
        write_csv(out / "sweep.csv", rows)
    write_json(out / "chosen.json", {"models": result.preset_models(), "source": result.source})
    write_json(
        out / "summary.json",
        {
            "preset": preset,
            "points": [p.to_dict() for p in result.points],
            "chosen": result.chosen,
            "notes": result.notes,
            "runs": [run_entry(r) for r in result.records],
        },
    )
    figure = None
    errors = {
        name: {p.lr: p.measure(sweep.choose_by) for p in result.points if p.model == name} for name in sweep.models
    }
    if any(v is not None for by_lr in errors.values() for v in by_lr.values()):
        plot_sweep(
            errors,
            out / "sweep.png",
            chosen=result.chosen,
            title=f"learning-rate sweep, `{preset}` preset",
            ylabel=MEASURE_TEXT[sweep.choose_by],
        )
        figure = "sweep.png"
    first = sweep.models[0]
    resolved = TrainConfig.from_dict({**compare.settings(first), **sweep.train, "lr": sweep.rates(first)[0]})
    resolved = resolved.resolved()
    derived = next((r.derived for r in result.records if r.derived), {})
    lines = [
        f"# Learning-rate sweep: `{preset}` preset",
        "",
        "Each entry of the residual study trained at several learning rates under the settings `study compare` "
        "gives it, validated on held-out *training* images; the validation split, on which the comparison is "
        "judged, is not read.",
        "",
    ]
    lines += environment_lines(env) + ["", "## What was run", ""]
    lines += [
        f"- Entries: {', '.join(f'`{m}`' for m in sweep.models)}; seeds {sweep.seeds}.",
        f"- Data: {derived.get('train_images', '?')} training images; {derived.get('val_images', '?')} held-out "
        f"images for validation, a class-balanced {resolved.holdout_fraction:g} of the training split set aside "
        "before the training subset is drawn (the same images for every run).",
        f"- Budget: {resolved.epochs} epochs ({derived.get('total_steps', '?')} steps of {resolved.batch_size} "
        f"images; the comparison trains {compare.train.get('epochs', resolved.epochs)} epochs"
        + (", so the schedule is compressed here: a proxy that saves time" if "epochs" in sweep.train else "")
        + f"), recipe `{resolved.recipe}`, schedule {resolved.schedule}, clipping at norm {resolved.clip_grad_norm}; "
        f"learning rates per {resolved.reference_batch_size} images.",
        f"- Choice: the rate with the lowest {MEASURE_TEXT[sweep.choose_by]} (mean over seeds); a run whose loss "
        "became non-finite fails its rate. A choice at the edge of the grid widens it by one rate beyond that edge "
        f"(up to {sweep.widen} time(s) per side).",
        "",
    ]
    if figure:
        lines += [f"![sweep]({figure})", ""]
    table = []
    for point in result.points:
        mark = " (chosen)" if result.chosen.get(point.model) == point.lr else ""
        table.append(
            [
                f"`{point.model}`",
                f"{point.lr:g}{mark}",
                ", ".join(fmt(e) for e in point.final_errors) or "-",
                ", ".join(fmt(e) for e in point.mean_errors) or "-",
                ", ".join(fmt(c, 1) for c in point.clipped) or "-",
                "; ".join(point.statuses),
            ]
        )
    lines += [
        md_table(
            [
                "entry",
                "learning rate",
                "final held-out top-1 error % (per seed)",
                "mean held-out top-1 error over training % (per seed)",
                "clipped steps %",
                "runs",
            ],
            table,
        ),
        "",
    ]
    lines += ["## Chosen rates", ""]
    lines += [f"- `{name}`: {lr:g}" for name, lr in result.chosen.items()] + [f"- {note}" for note in result.notes]
    lines += [
        "",
        "In the preset, `compare.models` takes them (and `compare.lr_source` names this report):",
        "",
        "```json",
        json.dumps(result.preset_models(), indent=2),
        "```",
        "",
    ]
    return write_text(out / "report.md", "\n".join(lines))
