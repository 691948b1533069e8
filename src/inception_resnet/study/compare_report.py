"""The files ``study compare`` writes: ``report.md``, ``verdicts.txt``, the figures, the tables and the raw data.

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
from ..training import TrainConfig
from .config import CompareConfig
from .figures import plot_pair
from .report import PAPER, environment_lines, fmt, md_table, write_csv, write_json, write_report, write_text
from .results import CompareResult, Crossing, Judged, ModelResult, PairResult
from .runs import RunRecord, run_entry
from .significance import Interval
from .stats import Spread

BASELINE_FIGURE = "curves-baselines.png"
WIDE_BRACKET = 0.10  # a crossing bracketed by validations further apart than this share of its step is flagged
# Table 2 of the paper: single crop, top-1 / top-5 error (%) on ILSVRC-2012 validation (non-blacklisted subset).
PAPER_TABLE2 = {
    "bn_inception": (25.2, 7.8),
    "inception_v3": (21.2, 5.6),
    "inception_resnet_v1": (21.3, 5.5),
    "inception_v4": (20.0, 5.0),
    "inception_resnet_v2": (19.9, 4.9),
    "inception_resnet_v2_paper": (19.9, 4.9),
}
PAPER_PAIRS = {("inception_v3", "inception_resnet_v1"), ("inception_v4", "inception_resnet_v2"),
               ("inception_v4", "inception_resnet_v2_paper")}


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
    return [{"model": r.spec.model, "pair": r.spec.group, "seed": r.spec.seed, "run_status": r.status, **row}
            for r in records for row in r.rows]


def validation_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every run's validations (``validation.jsonl``), prefixed with entry, group and seed."""
    return [{"model": r.spec.model, "pair": r.spec.group, "seed": r.spec.seed, **row}
            for r in records for row in r.evaluations]


def _roles(pairs: list[PairResult], baselines: list[ModelResult]) -> list[tuple[str, ModelResult]]:
    """(role, entry) for every entry, once: the pairs' partners and residual networks, then the baselines."""
    roles, seen = [], set()
    for role, model in [(role, m) for pair in pairs for role, m in (("partner", pair.partner),
                                                                    ("residual", pair.residual))] + \
            [("baseline", m) for m in baselines]:
        if model.name not in seen:
            seen.add(model.name)
            roles.append((role, model))
    return roles


def model_table_rows(pairs: list[PairResult], baselines: list[ModelResult]) -> list[dict[str, Any]]:
    out = []
    for role, model in _roles(pairs, baselines):
        row: dict[str, Any] = {"model": model.name, "network": model.network, "role": role,
                               "seeds": len(model.seeds), "parameters": model.parameters, "macs": model.macs,
                               "input_size": model.input_size, "lr": model.lr, "peak_lr": model.peak_lr,
                               "total_steps": model.total_steps, "step_seconds_alone": model.step_seconds}
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
            row: dict[str, Any] = {"group": group, "pair": pair.label, "level_top1_error": level.level,
                                   "seeds": pair.seeds}
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


# -- Markdown --------------------------------------------------------------------------------------------------
def _cell(s: Spread | None, digits: int = 2) -> str:
    return s.text(digits) if s is not None else "-"


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.1f}" if seconds is not None else "-"


def _model_md(models: list[tuple[str, ModelResult]]) -> str:
    rows = []
    for role, m in models:
        options = m.settings.get("model_options") or {}
        built = f"`{m.network}`" + (f" {json.dumps(options)}" if options else "")
        rows.append([f"`{m.name}`", role, built, len(m.seeds), f"{m.parameters:,}" if m.parameters else "-",
                     f"{m.macs:,}" if m.macs else "-", fmt(m.lr, 4), _ms(m.step_seconds),
                     _cell(m.clipped_percent, 1), _cell(m.final_top1), _cell(m.final_loss, 3)])
    return md_table(["entry", "role", "network (options)", "seeds", "params", "multiply-accumulates per image",
                     "lr (per reference batch)", "step ms (alone)", "clipped steps %", "final top-1 error %",
                     "final train loss"], rows)


def _per_seed(values: list[float | None], digits: int = 0) -> str:
    return ", ".join("never" if v is None else f"{v:.{digits}f}" for v in values)


def _interval_cell(judged: Judged, suffix: str = "x") -> str:
    return judged.interval.text(2, suffix) if judged.interval else "-"


def _detectable(judged: Judged) -> str:
    return f"{judged.interval.detectable:.2f}x" if judged.interval else "-"


def _bracket_cell(crossings: list[Crossing | None]) -> str:
    gaps = [c.relative_gap for c in crossings if c is not None]
    return f"{100 * max(gaps):.0f} %" + (" (wide)" if max(gaps) > WIDE_BRACKET else "") if gaps else "-"


def _clipped_cell(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


def _level_md(pair: PairResult) -> str:
    p, r = pair.partner.name, pair.residual.name
    rows = []
    for level in pair.levels:
        rows.append([f"{level.level:g}", _per_seed(level.steps.partner), _per_seed(level.steps.residual),
                     _interval_cell(level.steps), _detectable(level.steps), level.steps.verdict,
                     _interval_cell(level.seconds), level.seconds.verdict,
                     f"{_bracket_cell(level.partner_crossings)} / {_bracket_cell(level.residual_crossings)}",
                     (f"{_interval_cell(level.conservative)} -> {level.conservative.verdict}"
                      if level.conservative else "-"),
                     f"{_clipped_cell(level.mean_clipped(level.partner_crossings))} / "
                     f"{_clipped_cell(level.mean_clipped(level.residual_crossings))}"])
    return md_table(["top-1 error level %", f"steps {p} (per seed)", f"steps {r} (per seed)",
                     f"speed-up in steps {p}/{r} [95 % t-CI], p", "detectable at 80 % power", "verdict",
                     "speed-up in seconds (isolated step times) [95 % t-CI], p", "verdict",
                     "widest bracket of a crossing (partner / residual)",
                     "speed-up without interpolation (partner's bracket start / residual's bracket end)",
                     "clipped steps % before the crossing (partner / residual)"], rows)


def _summary_md(pair: PairResult) -> str:
    p, r = pair.partner.name, pair.residual.name
    mean, final = pair.mean_error, pair.final_error
    return md_table(["measure", f"{p} (per seed)", f"{r} (per seed)", "estimate [95 % t-CI], p",
                     "detectable at 80 % power", "verdict"], [
        [f"mean top-1 error over training, ratio {p}/{r}", _per_seed(mean.partner, 1), _per_seed(mean.residual, 1),
         _interval_cell(mean), _detectable(mean), mean.verdict],
        [f"final top-1 error, {r} minus {p} (points)", _per_seed(final.partner, 2), _per_seed(final.residual, 2),
         _interval_cell(final, " points"), f"{final.interval.detectable:.2f} points" if final.interval else "-",
         final.verdict]])


def _grad_md(models: list[tuple[str, ModelResult]]) -> str:
    rows = []
    for _, m in models:
        at_first = m.grad_norm_at(1)
        medians = [sorted(n)[len(n) // 2] for n in m.early_grad_norms if n]
        clipped = [100.0 * sum(flags[:10]) / len(flags[:10]) for flags in m.clipped_flags if flags]
        clip = m.settings.get("clip_grad_norm", TrainConfig.from_dict(m.settings).resolved().clip_grad_norm)
        rows.append([f"`{m.name}`", _cell(at_first, 1), fmt(sum(medians) / len(medians), 1) if medians else "-",
                     fmt(sum(clipped) / len(clipped), 0) if clipped else "-", fmt(clip, 1)])
    return md_table(["entry", "gradient norm at step 1 (the initial weights), mean ± sd over seeds",
                     "median gradient norm over steps 1-10 (mean over seeds)", "steps 1-10 clipped %",
                     "clipping norm"], rows)


def _setup_lines(config: CompareConfig, records: list[RunRecord], timings: dict[str, dict[str, Any]]) -> list[str]:
    resolved = TrainConfig.from_dict(config.settings(config.pairs[0][0])).resolved()
    derived = next((r.derived for r in records if r.derived), {})
    status: dict[str, int] = {}
    for record in records:
        status[record.status] = status.get(record.status, 0) + 1
    rates = ", ".join(f"`{name}` {TrainConfig.from_dict(config.settings(name)).resolved().lr:g}"
                      for name in config.model_names)
    schedule = f"step 0 (the untrained network), then every {resolved.validate_every_steps} steps" + (
        f", the gap growing to {resolved.validate_spacing:.0%} of the step" if resolved.validate_spacing else "")
    rounds = sorted({t.get("rounds", 1) for t in timings.values() if t.get("timed_steps")})
    bn = resolved.bn_recompute_images
    return [
        f"- Pairs (partner vs residual): {', '.join(f'`{a}` vs `{b}`' for a, b in config.pairs)}; seeds "
        f"{config.seeds}, paired: a seed fixes the training subset, the data order and the augmentation, the "
        "same for every entry" + (f"; baselines {', '.join(f'`{m}`' for m in config.baselines)}"
                                  if config.baselines else "") + ".",
        f"- Data: {resolved.data or 'fashion-mnist'}; {derived.get('train_images', '?')} training and "
        f"{derived.get('val_images', '?')} validation images (never seen in training or in the choice of "
        f"rates); {derived.get('num_classes', '?')} classes; input {derived.get('input_size', resolved.input_size)} "
        f"px, {resolved.in_chans} channel(s); augmentation `{resolved.augmentation}`.",
        f"- Networks: width multiplier {resolved.width_multiplier or 1.0} (1.0 is the paper's width). A "
        "no-shortcut entry is its residual network with the identity path of every Inception-ResNet block "
        "removed (`shortcut=False`: same parameters and multiply-accumulates); with its released block scales "
        "(0.17 / 0.10 / 0.20) the only path is scaled down at every block, so `residual_scale=1.0` is the fair "
        "control.",
        f"- Recipe `{resolved.recipe}`: {resolved.optimizer}, schedule {resolved.schedule}, warm-up "
        f"{resolved.warmup_epochs} epochs, {resolved.epochs} epochs ({derived.get('total_steps', '?')} steps of "
        f"{resolved.batch_size} images), label smoothing {resolved.label_smoothing}, gradient clipping at norm "
        f"{resolved.clip_grad_norm}, EMA decay {resolved.ema_decay}, precision {resolved.precision}; each run "
        f"trains with {resolved.threads or 'all'} torch thread(s), {config.parallel} run(s) at a time.",
        f"- Learning rates (per {resolved.reference_batch_size} images, scaled to the batch): {rates}; "
        + (f"chosen per entry by {config.lr_source}." if config.lr_source else "not tuned per entry."),
        f"- Validation: {schedule}; errors of the {'raw' if config.weights == 'raw' else 'moving-average'} weights; "
        + (f"BatchNorm statistics recomputed before each validation on {bn} clean training images, in a copy of "
           "the network." if bn else "BatchNorm running statistics as training left them."),
        "- Seconds: " + (f"every distinct network trained alone on the machine after the study's runs, "
                         f"{config.time_steps} steps in each of {', '.join(map(str, rounds))} interleaved rounds "
                         "(same threads and data pipeline); its step time is the median of the rounds' median "
                         "step times, and seconds to a level are its steps times that. The runs' own clocks, "
                         "shared with a partner run, are not used." if timings else
                         "not measured (`time_steps` 0)."),
        f"- Error levels, fixed in the preset before the runs: {', '.join(f'{v:g}' for v in config.levels)} % "
        "top-1 error.",
        f"- Runs: {', '.join(f'{n} {s}' for s, n in status.items())}.",
    ]


READING = (
    "How to read the tables: steps to a level are interpolated linearly between the two validations that "
    "bracket the first crossing; the bracket's width relative to its step is given per level (flagged "
    f"\"wide\" above {WIDE_BRACKET:.0%}), and the speed-up is judged once more without interpolation: each "
    "partner run at the validation before its crossing against each residual run at the validation at or after "
    "its own, which no placement within a bracket can beat. \"never\": the run did not reach "
    "the level. The speed-up is the partner's steps over the residual network's, seed by seed, analysed as "
    "log-ratios (geometric mean); above 1 the residual network got there sooner. Each comparison gives the "
    "mean with its two-sided 95 % Student t-interval over the paired seeds, the exact sign-flip "
    "(permutation) p-value, and the smallest effect the design detects with 80 % power. A verdict says "
    "\"faster\"/\"lower\" (or \"slower\"/\"higher\") only where the interval excludes no difference **and** p "
    "< 0.05; otherwise \"not shown\". Fewer than 3 seeds give no interval. Where some runs of one side never "
    "reached a level, they count at their whole budget: the ratio is then a one-sided bound (\"at least\"), "
    "judged by the one-sided t-bound and sign-flip test; censored runs on both sides give no verdict.")


def _paper_md(pairs: list[PairResult], baselines: list[ModelResult]) -> list[str]:
    rows = []
    for _, m in _roles(pairs, baselines):
        paper = PAPER_TABLE2.get(m.network)
        rows.append([f"`{m.name}`", fmt(paper[0], 1) if paper else "-", _cell(m.final_top1)])
    claims = []
    for pair in pairs:
        speed = "; ".join(f"{lv.level:g} %: {lv.steps.verdict}" for lv in pair.levels)
        claims.append([f"`{pair.residual.name}` vs `{pair.partner.name}`",
                       "residual connections speed up training (Figs 21-26)", speed])
        if (pair.partner.network, pair.residual.network) in PAPER_PAIRS:
            claims.append([f"`{pair.residual.name}` vs `{pair.partner.name}`", "similar final error (Table 2)",
                           f"final error difference {_interval_cell(pair.final_error, ' points')}: "
                           f"{pair.final_error.verdict}"])
    return [md_table(["entry", "paper top-1 error % (ImageNet, Table 2)", "ours: final top-1 error %"], rows), "",
            "The paper's numbers are for full-width networks trained on ImageNet for well over 100 epochs; ours "
            "are for the networks, data and budget above, so only the direction of a difference compares. The "
            "paper never trained its networks without their shortcuts, so those pairs have no claim beside them.",
            "", md_table(["pair", "paper's claim", "our runs"], claims), ""]


def _figure_lines(pair: PairResult, out: Path, config: CompareConfig) -> list[str]:
    pair.figure = draw_models([pair.partner, pair.residual], out / f"curves-{pair.label}.png", config,
                              f"{pair.partner.name} vs {pair.residual.name}")
    return [f"![{pair.label}]({pair.figure})", ""] if pair.figure else []


def write_compare_report(config: CompareConfig, result: CompareResult, preset: str, *,
                         timings: dict[str, dict[str, Any]] | None = None, redrawn: bool = False) -> Path:
    """Draw the figures and write report.md, verdicts.txt, the CSV/JSON tables and the raw data.

    ``redrawn``: the report is rebuilt from existing runs (``--report-only``); its header says so and when.
    """
    out, pairs, baselines, records = result.out_dir, result.pairs, result.baselines, result.records
    timings = timings or {}
    rows = epoch_rows(records)
    write_json(out / "epochs.json", rows)
    groups = [("pair", p) for p in pairs] + [(f"sensitivity: {v.label}", v.pair) for v in result.variants]
    timing_rows = [{"entry": name, **t} for name, t in timings.items()]
    for name, table in (("epochs.csv", rows), ("models.csv", model_table_rows(pairs, baselines)),
                        ("levels.csv", level_table_rows(groups)), ("validation.csv", validation_rows(records)),
                        ("timing.csv", timing_rows)):
        if table:
            write_csv(out / name, table)
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").is_file() else {}
    env = study.get("environment") or environment("")
    verdicts = result.verdict_lines()
    write_text(out / "verdicts.txt", "".join(line + "\n" for line in verdicts))
    lines = [f"# The residual study: `{preset}` preset", "",
             f"Do residual connections speed up the training of Inception networks? The question of {PAPER}, "
             "asked of networks trained here under one recipe, one data order and the same budget, each at the "
             "learning rate chosen for it. Each residual network is compared with the paper's non-residual "
             "partner and with itself without its shortcuts.", ""]
    lines += environment_lines(env)
    if redrawn:
        lines.append(f"- Report redrawn from these runs on {environment('').get('date', '?')} (`--report-only`); "
                     "the date and command above are the runs'.")
    lines += ["- The torch threads above are the reporting process's; the runs' own are under \"What was run\". A "
              "seed fixes a run on one machine; other CPUs give other numbers, so compare verdicts and intervals "
              "across machines, not single values.", ""]
    lines += ["## What was run", "", *_setup_lines(config, records, timings), "", READING, ""]
    lines += ["## Verdicts", "", "```", *verdicts, "```", ""]
    for pair in pairs:
        lines += [f"## {pair.partner.name} vs {pair.residual.name}", "", *_figure_lines(pair, out, config),
                  _model_md(_roles([pair], [])), "", _level_md(pair), "", _summary_md(pair), ""]
    lines += ["## Gradient norms at the start", "",
              "The gradient's norm before clipping at the first optimiser steps, per entry (`steps.jsonl`): an "
              "entry far above the clipping norm trains at a fraction of its nominal rate until it falls.", "",
              _grad_md(_roles(pairs + [v.pair for v in result.variants], baselines)), ""]
    if result.variants:
        lines += ["## Sensitivity", "",
                  "Variants that change one choice of the study, to see whether a verdict depends on it.", ""]
        for variant in result.variants:
            lines += [f"### {variant.label}", "", variant.question, "", "```", *variant.pair.verdict_lines(), "```",
                      "", *_figure_lines(variant.pair, out, config), _model_md(_roles([variant.pair], [])), "",
                      _level_md(variant.pair), ""]
    if baselines:
        result.baselines_figure = draw_models(baselines, out / BASELINE_FIGURE, config, "baselines")
        lines += ["## Baselines", "", "Extra entries trained like the pairs' networks; no partner, no verdict.", ""]
        lines += [f"![baselines]({result.baselines_figure})", ""] if result.baselines_figure else []
        lines += [_model_md([("baseline", m) for m in baselines]), ""]
    lines += ["## Beside the paper", "", *_paper_md(pairs, baselines)]
    lines += ["## Files", "",
              "- `verdicts.txt`: the verdict lines; `levels.csv`, `models.csv`, `timing.csv`, `summary.json`: the "
              "tables as data; `validation.csv`: every validation of every run (the curves).",
              "- `study.json`: the exact configuration and the environment; `runs/<entry>-seed<k>/`: each run's "
              "`config.json`, `metrics.csv`, `validation.jsonl`, `steps.jsonl`; `timing/`: the timing runs.",
              "- Redraw the report from the data: `inception-resnet study compare --out DIR --report-only`.", ""]
    write_json(out / "summary.json", {"preset": preset, "weights": config.weights, "levels": config.levels,
                                      "pairs": [p.to_dict() for p in pairs],
                                      "sensitivity": [v.to_dict() for v in result.variants],
                                      "baselines": [m.to_dict() for m in baselines],
                                      "baselines_figure": result.baselines_figure, "timings": timings,
                                      "runs": [run_entry(r) for r in records]})
    return write_report(out, lines, [r.spec.key for r in records if r.status == "not run"])
