"""The files ``study compare`` writes: ``report.md``, ``verdicts.txt``, the tables and the raw data.

::

    report.md              what was run, the verdicts, per pair its figure and tables, the paper beside
    verdicts.txt           the verdict lines alone (what ``make demo`` prints)
    curves-baselines.png   the baselines' curves (``baselines``: extra entries, no partner)
    models.csv             per entry: parameters, GMACs, learning rate, images/s, clipped steps, final errors
    levels.csv             per pair and level: steps and seconds per seed, speed-ups with intervals, verdicts
    validation.csv         every run's validations (step 0, then every N steps): the curves' data
    epochs.csv / .json     every run's per-epoch rows (entry, pair, seed + the training metrics)
    summary.json           all of the above as data; study.json: the exact configuration and environment
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig
from .compare import BASELINE_FIGURE, ModelResult, PairResult
from .config import CompareConfig
from .figures import plot_pair
from .report import PAPER, environment_lines, fmt, md_table, write_csv, write_json, write_report
from .runs import RunRecord, run_entry
from .stats import Interval, Spread

# Table 2 of the paper: single crop, top-1 / top-5 error (%) on ILSVRC-2012 validation (non-blacklisted subset).
PAPER_TABLE2 = {
    "bn_inception": (25.2, 7.8),
    "inception_v3": (21.2, 5.6),
    "inception_resnet_v1": (21.3, 5.5),
    "inception_v4": (20.0, 5.0),
    "inception_resnet_v2": (19.9, 4.9),
    "inception_resnet_v2_paper": (19.9, 4.9),
}


def draw_baselines(baselines: list[ModelResult], out: Path, config: CompareConfig) -> str | None:
    """The baselines' curves in one figure, drawn like a pair's; None when no baseline has a finished run."""
    models = {m.name: (m.curves, m.runs) for m in baselines}
    if not any(curves for curves, _ in models.values()):
        return None
    plot_pair(models, out / BASELINE_FIGURE, levels=config.levels, weights=config.weights,
              title=f"baselines: {', '.join(models)}")
    return BASELINE_FIGURE


# -- data files --------------------------------------------------------------------------------------------
def epoch_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every finished run's per-epoch rows, prefixed with entry, pair, seed and cumulative training time."""
    rows = []
    for record in records:
        elapsed = 0.0
        for row in record.rows:
            elapsed += row.get("epoch_seconds") or 0.0
            rows.append({"model": record.spec.model, "pair": record.spec.group, "seed": record.spec.seed,
                         "run_status": record.status, "train_seconds": elapsed, **row})
    return rows


def validation_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Every run's validations (``validation.jsonl``), prefixed with entry, pair and seed."""
    return [{"model": r.spec.model, "pair": r.spec.group, "seed": r.spec.seed, **row}
            for r in records for row in r.evaluations]


def _roles(pairs: list[PairResult], baselines: list[ModelResult]) -> list[tuple[str, ModelResult]]:
    """(role, entry) for every entry of the study, once: the pairs' partners and residual networks, baselines."""
    roles, seen = [], set()
    for role, model in [(role, m) for pair in pairs for role, m in (("partner", pair.partner),
                                                                    ("residual", pair.residual))] + \
            [("baseline", m) for m in baselines]:
        if model.name not in seen:
            seen.add(model.name)
            roles.append((role, model))
    return roles


def model_table_rows(pairs: list[PairResult], baselines: list[ModelResult] | None = None) -> list[dict[str, Any]]:
    out = []
    for role, model in _roles(pairs, baselines or []):
        row: dict[str, Any] = {"model": model.name, "network": model.settings.get("model", model.name),
                               "role": role, "seeds": len(model.seeds), "parameters": model.parameters,
                               "gmacs": model.gmacs, "input_size": model.input_size, "lr": model.lr,
                               "peak_lr": model.peak_lr, "total_steps": model.total_steps}
        for key in ("final_top1", "final_top5", "best_top1", "final_loss", "images_per_second", "clipped_percent"):
            value = getattr(model, key)
            for stat in ("mean", "std", "min", "max"):
                row[f"{key}_{stat}"] = getattr(value, stat) if value is not None else None
        out.append(row)
    return out


def _interval_columns(prefix: str, interval: Interval | None) -> dict[str, Any]:
    return {f"{prefix}": interval.estimate if interval else None, f"{prefix}_low": interval.low if interval else None,
            f"{prefix}_high": interval.high if interval else None, f"{prefix}_n": interval.n if interval else 0}


def level_table_rows(pairs: list[PairResult]) -> list[dict[str, Any]]:
    out = []
    for pair in pairs:
        for level in pair.levels:
            row: dict[str, Any] = {"pair": pair.label, "level_top1_error": level.level}
            for kind, judged in (("steps", level.steps), ("seconds", level.seconds)):
                row[f"partner_{kind}"] = judged.partner
                row[f"residual_{kind}"] = judged.residual
                row.update(_interval_columns(f"speedup_{kind}", judged.interval))
                row[f"verdict_{kind}"] = judged.verdict
            out.append(row)
    return out


# -- Markdown --------------------------------------------------------------------------------------------------
def _cell(s: Spread | None, digits: int = 2) -> str:
    return s.text(digits) if s is not None else "-"


def _model_md(models: list[tuple[str, ModelResult]]) -> str:
    rows = []
    for role, m in models:
        network = m.settings.get("model", m.name)
        options = m.settings.get("model_options") or {}
        built = f"`{network}`" + (f" {json.dumps(options)}" if options else "")
        rows.append([f"`{m.name}`", role, built, len(m.seeds), f"{m.parameters:,}" if m.parameters else "-",
                     fmt(m.gmacs, 3), fmt(m.lr, 4), _cell(m.clipped_percent, 1),
                     _cell(m.images_per_second, 1), _cell(m.final_top1), _cell(m.final_top5), _cell(m.best_top1),
                     _cell(m.final_loss, 3)])
    return md_table(["entry", "role", "network (options)", "seeds", "params", "GMACs", "lr (per reference batch)",
                     "clipped steps %", "train img/s", "final top-1 error %", "final top-5 error %",
                     "best top-1 error %", "final train loss"], rows)


def _per_seed(values: list[float | None], digits: int = 0) -> str:
    return ", ".join("never" if v is None else f"{v:.{digits}f}" for v in values)


def _level_md(pair: PairResult) -> str:
    p, r = pair.partner.name, pair.residual.name
    rows = []
    for level in pair.levels:
        steps, seconds = level.steps, level.seconds
        rows.append([f"{level.level:g}", _per_seed(steps.partner), _per_seed(steps.residual),
                     steps.interval.text() if steps.interval else "-", steps.verdict,
                     seconds.interval.text() if seconds.interval else "-", seconds.verdict])
    rows.append(["mean error over training", _per_seed(pair.mean_error.partner, 1),
                 _per_seed(pair.mean_error.residual, 1),
                 pair.mean_error.interval.text() if pair.mean_error.interval else "-", pair.mean_error.verdict,
                 "", ""])
    return md_table(["top-1 error level %", f"steps {p} (per seed)", f"steps {r} (per seed)",
                     f"speed-up in steps {p}/{r} [95 % CI]", "residual", "speed-up in seconds [95 % CI]",
                     "residual"], rows)


def _paper_md(pairs: list[PairResult], baselines: list[ModelResult]) -> str:
    rows = []
    for _, m in _roles(pairs, baselines):
        paper = PAPER_TABLE2.get(m.name)
        rows.append([f"`{m.name}`", fmt(paper[0], 1) if paper else "-", fmt(paper[1], 1) if paper else "-",
                     _cell(m.final_top1), _cell(m.final_top5)])
    return md_table(["entry", "paper top-1 error % (ImageNet, Table 2)", "paper top-5 error %",
                     "ours: final top-1 error %", "ours: final top-5 error %"], rows)


def _setup_lines(config: CompareConfig, records: list[RunRecord]) -> list[str]:
    first = config.pairs[0][0]
    resolved = TrainConfig.from_dict(config.settings(first)).resolved()
    derived = next((r.derived for r in records if r.derived), {})
    status: dict[str, int] = {}
    for record in records:
        status[record.status] = status.get(record.status, 0) + 1
    rates = ", ".join(f"`{name}` {TrainConfig.from_dict(config.settings(name)).resolved().lr:g}"
                      for name in config.model_names)
    bn = resolved.bn_recompute_images
    return [
        f"- Pairs (partner vs residual): {', '.join(f'`{a}` vs `{b}`' for a, b in config.pairs)}; seeds "
        f"{config.seeds}, paired: a seed fixes the training subset, the data order and the augmentation, the "
        "same for every entry" + (f"; baselines {', '.join(f'`{m}`' for m in config.baselines)}"
                                  if config.baselines else "") + ".",
        f"- Data: {resolved.data or 'fashion-mnist'}; {derived.get('train_images', '?')} training and "
        f"{derived.get('val_images', '?')} validation images (the validation split, never seen in training "
        f"or in the choice of learning rates); {derived.get('num_classes', '?')} classes; input "
        f"{derived.get('input_size', resolved.input_size)} px, {resolved.in_chans} channel(s); augmentation "
        f"`{resolved.augmentation}`.",
        f"- Networks: width multiplier {resolved.width_multiplier or 1.0} (1.0 is the paper's width); the "
        "no-shortcut entries are the same networks with the identity path of every Inception-ResNet block "
        "removed (`shortcut=False`: same parameters and multiply-accumulates).",
        f"- Recipe `{resolved.recipe}`: {resolved.optimizer}, schedule {resolved.schedule}, warm-up "
        f"{resolved.warmup_epochs} epochs, {resolved.epochs} epochs ({derived.get('total_steps', '?')} steps of "
        f"{resolved.batch_size} images), label smoothing {resolved.label_smoothing}, gradient clipping at norm "
        f"{resolved.clip_grad_norm} (the share of clipped steps is in the table), EMA decay {resolved.ema_decay}, "
        f"precision {resolved.precision}.",
        f"- Learning rates (per {resolved.reference_batch_size} images, scaled to the batch): {rates}; "
        + (f"chosen per entry by {config.lr_source}." if config.lr_source else "not tuned per entry."),
        f"- Validation: step 0 (the untrained network) and every {resolved.validate_every_steps} steps, errors of "
        f"the {'raw' if config.weights == 'raw' else 'moving-average'} weights, single whole-image view; "
        + (f"BatchNorm statistics recomputed before each validation on {bn} clean (unaugmented) training "
           "images, in a copy of the network (training is not affected)." if bn else
           "BatchNorm running statistics as training left them."),
        f"- Error levels, fixed in the preset before the runs: {', '.join(f'{v:g}' for v in config.levels)} % "
        "top-1 error.",
        f"- Runs: {', '.join(f'{n} {s}' for s, n in status.items())}.",
    ]


def _reading_lines() -> list[str]:
    return [
        "How to read the tables: steps (and seconds of training, validation excluded) to a level are "
        "interpolated linearly between measured validations, from the measured step-0 point; \"never\": the run "
        "did not reach the level. The speed-up is the partner's steps over the residual network's, seed by seed "
        "(geometric mean over seeds); above 1 the residual network got there sooner. The mean error over "
        "training is the area under the top-1 error curve divided by the steps; its ratio partner/residual "
        "above 1 means the residual network's curve lay lower. Intervals are 95 % percentile intervals of a "
        "paired bootstrap over seeds (10,000 resamples). A verdict says \"faster\"/\"lower\" (or "
        "\"slower\"/\"higher\") only where the interval excludes no difference (1 for a ratio, 0 for a "
        "difference), and \"not shown\" otherwise. Where every residual run reached a level and some partner runs "
        "did not, those count as the whole run's steps: the speed-up is then a lower bound, and \"faster (at "
        "least ...)\" is said only when its interval lies above 1. With few seeds the intervals are wide and "
        "percentile intervals tend to be too narrow, so \"not shown\" is the honest reading of most small "
        "differences.", ""]


def _baseline_lines(baselines: list[ModelResult], figure: str | None) -> list[str]:
    lines = ["## Baselines", "",
             "Extra entries trained under the same recipe, data order, budget and seeds as the pairs. They have no "
             "partner, so there is no verdict for them: they place the pairs among other networks of the family.",
             ""]
    if figure:
        lines += [f"![baselines]({figure})", ""]
    lines += [_model_md([("baseline", m) for m in baselines]), ""]
    return lines


def write_compare_report(
    config: CompareConfig, pairs: list[PairResult], records: list[RunRecord], out: Path, preset: str, *,
    baselines: list[ModelResult] | None = None, baselines_figure: str | None = None, redrawn: bool = False,
) -> Path:
    """Write report.md, verdicts.txt, the CSV/JSON tables and the raw data (the figures are drawn already).

    ``redrawn``: the report is rebuilt from existing runs (``--report-only``); its header says so and when.
    """
    baselines = baselines or []
    rows = epoch_rows(records)
    write_json(out / "epochs.json", rows)
    for name, table in (("epochs.csv", rows), ("models.csv", model_table_rows(pairs, baselines)),
                        ("levels.csv", level_table_rows(pairs)), ("validation.csv", validation_rows(records))):
        if table:
            write_csv(out / name, table)
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").is_file() else {}
    env = study.get("environment") or environment("")
    verdicts = [line for pair in pairs for line in pair.verdict_lines()]
    (out / "verdicts.txt").write_text("".join(line + "\n" for line in verdicts))
    write_json(out / "summary.json", {"preset": preset, "weights": config.weights, "levels": config.levels,
                                      "pairs": [p.to_dict() for p in pairs],
                                      "baselines": [m.to_dict() for m in baselines],
                                      "baselines_figure": baselines_figure,
                                      "runs": [run_entry(r) for r in records]})
    lines = [f"# The residual study: `{preset}` preset", "",
             f"Do residual connections speed up the training of Inception networks? The question of {PAPER}, "
             "asked of networks trained here under one recipe, one data order and the same budget, each at the "
             "learning rate chosen for it. Each residual network is compared with the paper's non-residual "
             "partner and with itself without its shortcuts.", ""]
    lines += environment_lines(env)
    if redrawn:
        lines.append(f"- Report redrawn from these runs on {environment('').get('date', '?')} (`--report-only`); "
                     "the date and command above are the runs'.")
    lines += ["- A seed fixes a run on one machine; other CPUs (and thread counts) give other numbers, so "
              "compare the verdicts and intervals, not single values, across machines.", ""]
    lines += ["## What was run", ""] + _setup_lines(config, records) + [""] + _reading_lines()
    lines += ["## Verdicts", "", "```", *verdicts, "```", ""]
    for pair in pairs:
        lines += [f"## {pair.partner.name} vs {pair.residual.name}", ""]
        if pair.figure:
            lines += [f"![{pair.label}]({pair.figure})", ""]
        lines += [_model_md(_roles([pair], [])), "", _level_md(pair), "",
                  f"Final top-1 error, {pair.residual.name} minus {pair.partner.name} (points, per seed "
                  f"{_per_seed(_differences(pair), 2)}): "
                  f"{pair.final_error.interval.text() if pair.final_error.interval else '-'} -> "
                  f"{pair.final_error.verdict}.", ""]
    if baselines:
        lines += _baseline_lines(baselines, baselines_figure)
    lines += ["## Beside the paper", "", _paper_md(pairs, baselines), "",
              "The paper's numbers are for full-width networks trained on ImageNet for well over 100 epochs and "
              "evaluated at 299x299; ours are for the networks, data and budget above, so only the direction of "
              "the differences can be compared, not the values.", ""]
    claims = []
    for pair in pairs:
        speed = "; ".join(f"{lv.level:g} %: {lv.steps.verdict}" for lv in pair.levels)
        claims.append([f"`{pair.residual.name}` vs `{pair.partner.name}`",
                       "residual connections speed up training (Figs 21-26)", speed])
        final = pair.final_error.interval.text() if pair.final_error.interval else "-"
        claims.append([f"`{pair.residual.name}` vs `{pair.partner.name}`", "similar final error (Table 2)",
                       f"final error difference {final} points: {pair.final_error.verdict}"])
    lines += [md_table(["pair", "paper's claim", "our runs (steps to each level; final error)"], claims), ""]
    lines += ["## Files", "",
              "- `verdicts.txt`: the verdict lines; `levels.csv`, `models.csv`, `summary.json`: the tables as data.",
              "- `validation.csv`: every validation of every run (the curves); `epochs.csv` / `epochs.json`: the "
              "per-epoch rows.",
              "- `study.json`: the exact study configuration and the environment; `runs/<entry>-seed<k>/` (where "
              "kept): each run's resolved `config.json`, `metrics.csv`, `validation.jsonl`, `steps.jsonl`.",
              "- Redraw the report from the data: `inception-resnet study compare --out DIR --report-only`.", ""]
    return write_report(out, lines, [r.spec.key for r in records if r.status == "not run"])


def _differences(pair: PairResult) -> list[float | None]:
    return [None if a is None or b is None else b - a
            for a, b in zip(pair.final_error.partner, pair.final_error.residual, strict=True)]
