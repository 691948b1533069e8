"""The Markdown of the ``study compare`` report: its tables and paragraphs, built from the result types.

:mod:`.compare_report` assembles them into ``report.md`` beside the data files and figures.
"""

from __future__ import annotations

import json
from typing import Any

from ..training import TrainConfig
from .config import CompareConfig
from .report import fmt, md_table
from .results import Crossing, Judged, ModelResult, PairResult
from .runs import RunRecord
from .stats import Spread

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
PAPER_PAIRS = {
    ("inception_v3", "inception_resnet_v1"),
    ("inception_v4", "inception_resnet_v2"),
    ("inception_v4", "inception_resnet_v2_paper"),
}


def roles(pairs: list[PairResult], baselines: list[ModelResult]) -> list[tuple[str, ModelResult]]:
    """(role, entry) for every entry, once: the pairs' partners and residual networks, then the baselines."""
    roles, seen = [], set()
    for role, model in [
        (role, m) for pair in pairs for role, m in (("partner", pair.partner), ("residual", pair.residual))
    ] + [("baseline", m) for m in baselines]:
        if model.name not in seen:
            seen.add(model.name)
            roles.append((role, model))
    return roles


# -- Markdown --------------------------------------------------------------------------------------------------
def spread_cell(s: Spread | None, digits: int = 2) -> str:
    return s.text(digits) if s is not None else "-"


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.1f}" if seconds is not None else "-"


def model_md(models: list[tuple[str, ModelResult]], shared: dict[str, Any] | None = None) -> str:
    """The entries' table; the options column shows each entry's model options besides the ``shared`` ones
    (the study's, the same for every entry)."""
    shared = shared or {}
    rows = []
    for role, m in models:
        options = m.settings.get("model_options") or {}
        options = {k: v for k, v in options.items() if k not in shared or shared[k] != v}
        built = f"`{m.network}`" + (f" {json.dumps(options)}" if options else "")
        rows.append(
            [
                f"`{m.name}`",
                role,
                built,
                len(m.seeds),
                f"{m.parameters:,}" if m.parameters else "-",
                f"{m.macs:,}" if m.macs else "-",
                fmt(m.lr, 4),
                _ms(m.step_seconds),
                spread_cell(m.clipped_percent, 1),
                spread_cell(m.final_top1),
                spread_cell(m.final_loss, 3),
            ]
        )
    return md_table(
        [
            "entry",
            "role",
            "network (options)",
            "seeds",
            "params",
            "multiply-accumulates per image",
            "lr (per reference batch)",
            "step ms (alone)",
            "clipped steps %",
            "final top-1 error %",
            "final train loss",
        ],
        rows,
    )


def per_seed(values: list[float | None], digits: int = 0) -> str:
    return ", ".join("never" if v is None else f"{v:.{digits}f}" for v in values)


def interval_cell(judged: Judged, suffix: str = "x") -> str:
    return judged.interval.text(2, suffix) if judged.interval else "-"


def _detectable(judged: Judged) -> str:
    return f"{judged.interval.detectable:.2f}x" if judged.interval else "-"


def _bracket_cell(crossings: list[Crossing | None]) -> str:
    gaps = [c.relative_gap for c in crossings if c is not None]
    return f"{100 * max(gaps):.0f} %" + (" (wide)" if max(gaps) > WIDE_BRACKET else "") if gaps else "-"


def _clipped_cell(value: float | None) -> str:
    return f"{value:.0f}" if value is not None else "-"


def level_md(pair: PairResult) -> str:
    p, r = pair.partner.name, pair.residual.name
    rows = []
    for level in pair.levels:
        rows.append(
            [
                f"{level.level:g}",
                per_seed(level.steps.partner),
                per_seed(level.steps.residual),
                interval_cell(level.steps),
                _detectable(level.steps),
                level.steps.verdict,
                interval_cell(level.seconds),
                level.seconds.verdict,
                f"{_bracket_cell(level.partner_crossings)} / {_bracket_cell(level.residual_crossings)}",
                (f"{interval_cell(level.conservative)} -> {level.conservative.verdict}" if level.conservative else "-"),
                f"{_clipped_cell(level.mean_clipped(level.partner_crossings))} / "
                f"{_clipped_cell(level.mean_clipped(level.residual_crossings))}",
            ]
        )
    return md_table(
        [
            "top-1 error level %",
            f"steps {p} (per seed)",
            f"steps {r} (per seed)",
            f"speed-up in steps {p}/{r} [95 % t-CI], p",
            "detectable at 80 % power",
            "verdict",
            "speed-up in seconds (isolated step times) [95 % t-CI], p",
            "verdict",
            "widest bracket of a crossing (partner / residual)",
            "speed-up without interpolation (partner's bracket start / residual's bracket end)",
            "clipped steps % before the crossing (partner / residual)",
        ],
        rows,
    )


def summary_md(pair: PairResult) -> str:
    p, r = pair.partner.name, pair.residual.name
    mean, final = pair.mean_error, pair.final_error
    return md_table(
        [
            "measure",
            f"{p} (per seed)",
            f"{r} (per seed)",
            "estimate [95 % t-CI], p",
            "detectable at 80 % power",
            "verdict",
        ],
        [
            [
                f"mean top-1 error over training, ratio {p}/{r}",
                per_seed(mean.partner, 1),
                per_seed(mean.residual, 1),
                interval_cell(mean),
                _detectable(mean),
                mean.verdict,
            ],
            [
                f"final top-1 error, {r} minus {p} (points)",
                per_seed(final.partner, 2),
                per_seed(final.residual, 2),
                interval_cell(final, " points"),
                f"{final.interval.detectable:.2f} points" if final.interval else "-",
                final.verdict,
            ],
        ],
    )


def grad_md(models: list[tuple[str, ModelResult]]) -> str:
    rows = []
    for _, m in models:
        at_first = m.grad_norm_at(1)
        medians = [sorted(n)[len(n) // 2] for n in m.early_grad_norms if n]
        clipped = [100.0 * sum(flags[:10]) / len(flags[:10]) for flags in m.clipped_flags if flags]
        clip = m.settings.get("clip_grad_norm", TrainConfig.from_dict(m.settings).resolved().clip_grad_norm)
        rows.append(
            [
                f"`{m.name}`",
                spread_cell(at_first, 1),
                fmt(sum(medians) / len(medians), 1) if medians else "-",
                fmt(sum(clipped) / len(clipped), 0) if clipped else "-",
                fmt(clip, 1),
            ]
        )
    return md_table(
        [
            "entry",
            "gradient norm at step 1 (the initial weights), mean ± sd over seeds",
            "median gradient norm over steps 1-10 (mean over seeds)",
            "steps 1-10 clipped %",
            "clipping norm",
        ],
        rows,
    )


def setup_lines(config: CompareConfig, records: list[RunRecord], timings: dict[str, dict[str, Any]]) -> list[str]:
    resolved = TrainConfig.from_dict(config.settings(config.pairs[0][0])).resolved()
    derived = next((r.derived for r in records if r.derived), {})
    status: dict[str, int] = {}
    for record in records:
        status[record.status] = status.get(record.status, 0) + 1
    rates = ", ".join(
        f"`{name}` {TrainConfig.from_dict(config.settings(name)).resolved().lr:g}" for name in config.model_names
    )
    schedule = f"step 0 (the untrained network), then every {resolved.validate_every_steps} steps" + (
        f", the gap growing to {resolved.validate_spacing:.0%} of the step" if resolved.validate_spacing else ""
    )
    rounds = sorted({t.get("rounds", 1) for t in timings.values() if t.get("timed_steps")})
    shared = config.train.get("model_options", {})  # every entry's (the table of entries shows the others)
    others = {k: v for k, v in shared.items() if k != "width_multiplier"}
    bn = resolved.bn_recompute_images
    return [
        f"- Pairs (partner vs residual): {', '.join(f'`{a}` vs `{b}`' for a, b in config.pairs)}; seeds "
        f"{config.seeds}, paired: a seed fixes the training subset, the data order and the augmentation, the "
        "same for every entry"
        + (f"; baselines {', '.join(f'`{m}`' for m in config.baselines)}" if config.baselines else "")
        + ".",
        f"- Data: {resolved.data or 'fashion-mnist'}; {derived.get('train_images', '?')} training and "
        f"{derived.get('val_images', '?')} validation images (never seen in training or in the choice of "
        f"rates); {derived.get('num_classes', '?')} classes; input {derived.get('input_size', resolved.input_size)} "
        f"px, {resolved.in_chans} channel(s); augmentation `{resolved.augmentation}`.",
        f"- Networks: width multiplier {shared.get('width_multiplier') or 1.0} (1.0 is the paper's width)"
        + (f"; every entry has the model options {json.dumps(others)}" if others else "")
        + ". A no-shortcut entry is its residual network with the identity path of every Inception-ResNet block "
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
        + (
            f"BatchNorm statistics recomputed before each validation on {bn} clean training images, in a copy of "
            "the network."
            if bn
            else "BatchNorm running statistics as training left them."
        ),
        "- Seconds: "
        + (
            f"every distinct network trained alone on the machine after the study's runs, "
            f"{config.time_steps} steps in each of {', '.join(map(str, rounds))} interleaved rounds "
            "(same threads and data pipeline); its step time is the median of the rounds' median "
            "step times, and seconds to a level are its steps times that. The runs' own clocks, "
            "shared with a partner run, are not used."
            if timings
            else "not measured (`time_steps` 0)."
        ),
        f"- Error levels, fixed in the preset before the runs: {', '.join(f'{v:g}' for v in config.levels)} % "
        "top-1 error.",
        f"- Runs: {', '.join(f'{n} {s}' for s, n in status.items())}.",
    ]


READING = (
    "How to read the tables: steps to a level are interpolated linearly between the two validations that "
    "bracket the first crossing; the bracket's width relative to its step is given per level (flagged "
    f'"wide" above {WIDE_BRACKET:.0%}), and the speed-up is judged once more without interpolation: each '
    "partner run at the validation before its crossing against each residual run at the validation at or after "
    'its own, which no placement within a bracket can beat. "never": the run did not reach '
    "the level. The speed-up is the partner's steps over the residual network's, seed by seed, analysed as "
    "log-ratios (geometric mean); above 1 the residual network got there sooner. Each comparison gives the "
    "mean with its two-sided 95 % Student t-interval over the paired seeds, the exact sign-flip "
    "(permutation) p-value, and the smallest effect the design detects with 80 % power. A verdict says "
    '"faster"/"lower" (or "slower"/"higher") only where the interval excludes no difference **and** p '
    '< 0.05; otherwise "not shown". Fewer than 3 seeds give no interval. Where some runs of one side never '
    'reached a level, they count at their whole budget: the ratio is then a one-sided bound ("at least"), '
    "judged by the one-sided t-bound and sign-flip test; censored runs on both sides give no verdict."
)


def paper_md(pairs: list[PairResult], baselines: list[ModelResult]) -> list[str]:
    rows = []
    for _, m in roles(pairs, baselines):
        paper = PAPER_TABLE2.get(m.network)
        rows.append([f"`{m.name}`", fmt(paper[0], 1) if paper else "-", spread_cell(m.final_top1)])
    claims = []
    for pair in pairs:
        speed = "; ".join(f"{lv.level:g} %: {lv.steps.verdict}" for lv in pair.levels)
        claims.append(
            [
                f"`{pair.residual.name}` vs `{pair.partner.name}`",
                "residual connections speed up training (Figs 21-26)",
                speed,
            ]
        )
        if (pair.partner.network, pair.residual.network) in PAPER_PAIRS:
            claims.append(
                [
                    f"`{pair.residual.name}` vs `{pair.partner.name}`",
                    "similar final error (Table 2)",
                    f"final error difference {interval_cell(pair.final_error, ' points')}: {pair.final_error.verdict}",
                ]
            )
    return [
        md_table(["entry", "paper top-1 error % (ImageNet, Table 2)", "ours: final top-1 error %"], rows),
        "",
        "The paper's numbers are for full-width networks trained on ImageNet for well over 100 epochs; ours "
        "are for the networks, data and budget above, so only the direction of a difference compares. The "
        "paper never trained its networks without their shortcuts, so those pairs have no claim beside them.",
        "",
        md_table(["pair", "paper's claim", "our runs"], claims),
        "",
    ]
