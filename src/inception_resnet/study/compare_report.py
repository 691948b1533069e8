"""The files ``study compare`` writes: ``report.md`` (its tables and paragraphs: :mod:`.compare_markdown`),
``verdicts.txt``, the figures, the tables and the raw data.

::

    report.md              what was run, how to read it, the verdicts, per pair its figure and tables, the
                           early gradient norms, the sensitivity variants, the paper beside
    verdicts.txt           the verdict lines alone (what ``make demo`` prints)
    curves-*.png           per pair (and the baselines): top-1 error against steps and isolated seconds
    models.csv             per entry: parameters, exact multiply-accumulates, rate, step time, errors
    levels.csv             per pair (and variant) and level: steps and seconds per seed, the brackets of the
                           crossings, speed-ups with t-intervals, p-values, detectable effects, verdicts
    timing.csv             every entry's training step time, measured alone
    validation.csv         every run's validations: the curves' data
    epochs.csv / .json     every run's per-epoch rows
    summary.json           all of the above as data; study.json: the exact configuration and environment
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..environment import environment
from .compare_markdown import READING, grad_md, level_md, model_md, paper_md, roles, setup_lines, summary_md
from .config import CompareConfig
from .figures import plot_pair
from .report import PAPER, environment_lines, write_csv, write_json, write_report, write_text
from .results import CompareResult, ModelResult, PairResult
from .runs import RunRecord, run_entry
from .significance import Interval

BASELINE_FIGURE = "curves-baselines.png"


def draw_models(models: list[ModelResult], path: Path, config: CompareConfig, title: str) -> str | None:
    """The entries' curves in one figure; None when no entry has a finished run."""
    curves = {m.name: (m.curves, m.runs) for m in models}
    if not any(c for c, _ in curves.values()):
        return None
    plot_pair(curves, path, levels=config.levels, weights=config.weights, title=title)
    return path.name


# -- data files --------------------------------------------------------------------------------------------
def epoch_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every finished run's per-epoch rows, prefixed with entry, group and seed."""
    return [
        {"model": r.spec.model, "pair": r.spec.group, "seed": r.spec.seed, "run_status": r.status, **row}
        for r in records
        for row in r.rows
    ]


def validation_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every run's validations (``validation.jsonl``), prefixed with entry, group and seed."""
    return [
        {"model": r.spec.model, "pair": r.spec.group, "seed": r.spec.seed, **row}
        for r in records
        for row in r.evaluations
    ]


def model_table_rows(pairs: list[PairResult], baselines: list[ModelResult]) -> list[dict[str, Any]]:
    out = []
    for role, model in roles(pairs, baselines):
        row: dict[str, Any] = {
            "model": model.name,
            "network": model.network,
            "role": role,
            "seeds": len(model.seeds),
            "parameters": model.parameters,
            "macs": model.macs,
            "input_size": model.input_size,
            "lr": model.lr,
            "peak_lr": model.peak_lr,
            "total_steps": model.total_steps,
            "step_seconds_alone": model.step_seconds,
        }
        for key in ("final_top1", "final_top5", "final_loss", "clipped_percent"):
            value = getattr(model, key)
            for stat in ("mean", "std", "min", "max"):
                row[f"{key}_{stat}"] = getattr(value, stat) if value is not None else None
        out.append(row)
    return out


def _interval_columns(prefix: str, interval: Interval | None) -> dict[str, Any]:
    keys = ("estimate", "low", "high", "n", "p_value", "detectable")
    return {f"{prefix}_{k}": (getattr(interval, k) if interval else None) for k in keys}


def level_table_rows(pairs: list[tuple[str, PairResult]]) -> list[dict[str, Any]]:
    out = []
    for group, pair in pairs:
        for level in pair.levels:
            row: dict[str, Any] = {
                "group": group,
                "pair": pair.label,
                "level_top1_error": level.level,
                "seeds": pair.seeds,
            }
            for kind, judged in (("steps", level.steps), ("seconds", level.seconds)):
                row[f"partner_{kind}"] = judged.partner
                row[f"residual_{kind}"] = judged.residual
                row.update(_interval_columns(f"speedup_{kind}", judged.interval))
                row[f"verdict_{kind}"] = judged.verdict
            for side, crossings in (("partner", level.partner_crossings), ("residual", level.residual_crossings)):
                row[f"{side}_brackets"] = [[c.before, c.after] if c else None for c in crossings]
                row[f"{side}_clipped_percent_before"] = [c.clipped_percent if c else None for c in crossings]
            row["widest_relative_bracket"] = level.widest_gap()
            if level.conservative is not None:
                row.update(_interval_columns("conservative_speedup_steps", level.conservative.interval))
                row["verdict_conservative"] = level.conservative.verdict
            out.append(row)
    return out


def _figure_lines(pair: PairResult, out: Path, config: CompareConfig) -> list[str]:
    pair.figure = draw_models(
        [pair.partner, pair.residual],
        out / f"curves-{pair.label}.png",
        config,
        f"{pair.partner.name} vs {pair.residual.name}",
    )
    return [f"![{pair.label}]({pair.figure})", ""] if pair.figure else []


def write_compare_report(
    config: CompareConfig,
    result: CompareResult,
    preset: str,
    *,
    timings: dict[str, dict[str, Any]] | None = None,
    redrawn: bool = False,
) -> Path:
    """Draw the figures and write report.md, verdicts.txt, the CSV/JSON tables and the raw data.

    ``redrawn``: the report is rebuilt from existing runs (``--report-only``); its header says so and when.
    """
    out, pairs, baselines, records = result.out_dir, result.pairs, result.baselines, result.records
    timings = timings or {}
    rows = epoch_rows(records)
    write_json(out / "epochs.json", rows)
    groups = [("pair", p) for p in pairs] + [(f"sensitivity: {v.label}", v.pair) for v in result.variants]
    timing_rows = [{"entry": name, **t} for name, t in timings.items()]
    for name, table in (
        ("epochs.csv", rows),
        ("models.csv", model_table_rows(pairs, baselines)),
        ("levels.csv", level_table_rows(groups)),
        ("validation.csv", validation_rows(records)),
        ("timing.csv", timing_rows),
    ):
        if table:
            write_csv(out / name, table)
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").is_file() else {}
    env = study.get("environment") or environment("")
    verdicts = result.verdict_lines()
    write_text(out / "verdicts.txt", "".join(line + "\n" for line in verdicts))
    lines = [
        f"# The residual study: `{preset}` preset",
        "",
        f"Do residual connections speed up the training of Inception networks? The question of {PAPER}, "
        "asked of networks trained here under one recipe, one data order and the same budget, each at the "
        "learning rate chosen for it. Each residual network is compared with the paper's non-residual "
        "partner and with itself without its shortcuts.",
        "",
    ]
    lines += environment_lines(env)
    if redrawn:
        lines.append(
            f"- Report redrawn from these runs on {environment('').get('date', '?')} (`--report-only`); "
            "the date and command above are the runs'."
        )
    lines += [
        "- The torch threads above are the reporting process's; the runs' own are under \"What was run\". A "
        "seed fixes a run on one machine; other CPUs give other numbers, so compare verdicts and intervals "
        "across machines, not single values.",
        "",
    ]
    lines += ["## What was run", "", *setup_lines(config, records, timings), "", READING, ""]
    shared = config.train.get("model_options", {})  # every entry's, said once in "What was run"
    lines += ["## Verdicts", "", "```", *verdicts, "```", ""]
    for pair in pairs:
        lines += [
            f"## {pair.partner.name} vs {pair.residual.name}",
            "",
            *_figure_lines(pair, out, config),
            model_md(roles([pair], []), shared),
            "",
            level_md(pair),
            "",
            summary_md(pair),
            "",
        ]
    lines += [
        "## Gradient norms at the start",
        "",
        "The gradient's norm before clipping at the first optimiser steps, per entry (`steps.jsonl`): an "
        "entry far above the clipping norm trains at a fraction of its nominal rate until it falls.",
        "",
        grad_md(roles(pairs + [v.pair for v in result.variants], baselines)),
        "",
    ]
    if result.variants:
        lines += [
            "## Sensitivity",
            "",
            "Variants that change one choice of the study, to see whether a verdict depends on it.",
            "",
        ]
        for variant in result.variants:
            lines += [
                f"### {variant.label}",
                "",
                variant.question,
                "",
                "```",
                *variant.pair.verdict_lines(),
                "```",
                "",
                *_figure_lines(variant.pair, out, config),
                model_md(roles([variant.pair], []), shared),
                "",
                level_md(variant.pair),
                "",
            ]
    if baselines:
        result.baselines_figure = draw_models(baselines, out / BASELINE_FIGURE, config, "baselines")
        lines += ["## Baselines", "", "Extra entries trained like the pairs' networks; no partner, no verdict.", ""]
        lines += [f"![baselines]({result.baselines_figure})", ""] if result.baselines_figure else []
        lines += [model_md([("baseline", m) for m in baselines], shared), ""]
    lines += ["## Beside the paper", "", *paper_md(pairs, baselines)]
    lines += [
        "## Files",
        "",
        "- `verdicts.txt`: the verdict lines; `levels.csv`, `models.csv`, `timing.csv`, `summary.json`: the "
        "tables as data; `validation.csv`: every validation of every run (the curves).",
        "- `study.json`: the exact configuration and the environment; `runs/<entry>-seed<k>/`: each run's "
        "`config.json`, `metrics.csv`, `validation.jsonl`, `steps.jsonl`; `timing/`: the timing runs.",
        "- Redraw the report from the data: `inception-resnet study compare --out DIR --report-only`.",
        "",
    ]
    write_json(
        out / "summary.json",
        {
            "preset": preset,
            "weights": config.weights,
            "levels": config.levels,
            "pairs": [p.to_dict() for p in pairs],
            "sensitivity": [v.to_dict() for v in result.variants],
            "baselines": [m.to_dict() for m in baselines],
            "baselines_figure": result.baselines_figure,
            "timings": timings,
            "runs": [run_entry(r) for r in records],
        },
    )
    return write_report(out, lines, [r.spec.key for r in records if r.status == "not run"])
