"""The report of ``study scaling``: the answer (:mod:`.scaling_findings`), the table per learning rate and
scale, every death beside its living controls, every run (their Markdown: :mod:`.scaling_markdown`), the
figures (:mod:`.figures`) and the data files; see :mod:`.scaling`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig
from .config import ScalingConfig
from .figures import plot_scaling, plot_stream
from .report import environment_lines, write_csv, write_json, write_report
from .results import ScalingResult
from .runs import run_entry
from .scaling_findings import findings
from .scaling_markdown import closing_lines, death_lines, every_run_lines, intro_lines, setting_lines, setup_lines
from .stats import Spread, spread


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
    lines = intro_lines(preset) + environment_lines(env) + ["", "## What was run", ""]
    lines += setup_lines(config, result, resolved, derived)
    lines += ["## The answer", ""] + [f"- {text}" for text in findings(config, result, rows)] + [""]
    lines += setting_lines(rows)
    lines += death_lines(result.runs)
    for name in figures:
        lines += [f"![{name[:-4]}]({name})", ""]
    lines += every_run_lines(result)
    lines += closing_lines(resolved, derived)
    return write_report(out, lines, [r.spec.key for r in result.records if r.status == "not run"])
