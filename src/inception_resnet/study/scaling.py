"""``study scaling``: do wide Inception-ResNets die without residual scaling? (the paper's section 3.3)

:func:`run_scaling` trains ``config.model`` (with at least ``wide_stages`` residual stages of more than
``min_filters`` filters) for every learning rate of ``config.lrs``, residual scale and seed. While each run
trains, :class:`~inception_resnet.study.probe.DeathProbe` measures at every logged step the dead channels
entering the final pooling, the zero fraction and the residual stream after every block, and the validation
error at intervals. The study writes::

    report.md        the answer (deaths at the paper's rate, per scale), the living controls of every death,
                     every run's validation error, what reproduces and what does not
    scaling.png      per learning rate: dead-channel share, residual-stream norm, training loss and
                     validation error against the step, one line per scale and seed
    stream.png       per learning rate: the residual stream's norm after every block at the last step
    scaling.csv      one row per run; steps.csv: every logged step of every run (the figures' data)
    summary.json, study.json, runs/<key>/ as in ``study compare``
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig, TrainSummary, train
from .config import ScalingConfig, section_to_dict
from .death import DeathReport, detect_rows_death, rate_label, rate_per_32, read_steps
from .figures import plot_scaling, plot_stream
from .pool import run_pool
from .probe import DeathProbe
from .report import PAPER, environment_lines, fmt, md_table, write_csv, write_json
from .runs import RunRecord, RunSpec, TrainFn, collect_records, is_main_process, run_entry
from .stats import Spread, final_value, spread

PAPER_ITERATIONS = 20_000  # "a few tens of thousands" of iterations (section 3.3): the low end, for comparison


def run_key(lr: float | None, scale: float, seed: int) -> str:
    """A run's directory name: ``lr<lr>-scale<s>-seed<k>`` (``scale<s>-seed<k>`` without a rate grid)."""
    return (f"lr{lr:g}-" if lr is not None else "") + f"scale{scale:g}-seed{seed}"


def plan_scaling(config: ScalingConfig, out_dir: str | os.PathLike) -> list[RunSpec]:
    """One run per (seed, lr, scale), seed by seed, so that a study cut short holds every setting of a seed."""
    runs_dir = Path(out_dir) / "runs"
    specs = []
    for seed in config.seeds:
        for lr in config.rates:
            for scale in config.scales:
                key = run_key(lr, scale, seed)
                settings = {**config.train, "model": config.model, "residual_scale": float(scale), "seed": seed}
                if lr is not None:
                    settings["lr"] = float(lr)
                group = (f"lr {lr:g}, " if lr is not None else "") + f"scale {scale:g}"
                specs.append(RunSpec(key, config.model, seed, group, settings, runs_dir / key))
    return specs


def residual_widths(model: str, settings: dict[str, Any]) -> list[int]:
    """The channel counts of the model's residual stages (each distinct width of its residual blocks)."""
    import torch

    from ..models.layers import ScaledResidual
    from ..weights.factory import create_model

    config = TrainConfig.from_dict({**settings, "model": model})
    with torch.device("meta"):
        net = create_model(model, num_classes=10, in_chans=config.in_chans, **config.model_kwargs())
    widths: list[int] = []
    for module in net.modules():
        if isinstance(module, ScaledResidual) and module.out_channels not in widths:
            widths.append(module.out_channels)
    return widths


def check_width(config: ScalingConfig) -> list[int]:
    """The residual widths; a ValueError when fewer than ``wide_stages`` stages exceed ``min_filters``."""
    widths = residual_widths(config.model, {**config.train, "residual_scale": 1.0})
    if not widths:
        raise ValueError(f"{config.model} has no residual blocks; the scaling study needs an Inception-ResNet")
    wide = [w for w in widths if w > config.min_filters] if config.min_filters else widths
    if len(wide) < config.wide_stages:
        raise ValueError(
            f"{config.model} at these settings has {len(wide)} residual stage(s) of more than min_filters="
            f"{config.min_filters} filters (stages: {widths}), fewer than wide_stages={config.wide_stages} (the "
            "paper saw deaths above 1000 filters); raise train.width_multiplier, or lower min_filters or "
            "wide_stages knowingly"
        )
    return widths


@dataclass
class ProbedTrain:
    """The study's training function: :func:`~inception_resnet.training.train` with the death probe
    (picklable, for runs in other processes)."""

    probe: DeathProbe

    def __call__(self, config: TrainConfig) -> TrainSummary:
        return train(config, step_probe=self.probe)


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
        return {"key": self.key, "lr": self.lr, "lr_per_32": self.lr_per_32, "scale": self.scale, "seed": self.seed,
                "status": self.status, "message": self.message, "dead": self.death.dead,
                "death_step": self.death.step, "death_reason": self.death.reason, "label": self.label,
                "trained_normally": self.trained, "logged_steps": len(self.steps),
                "last_step": self.steps[-1]["step"] if self.steps else None, "total_steps": self.total_steps,
                "final_loss": self.final_loss, "final_val_top1_error": self.final_top1, **self.measures}


@dataclass
class ScalingResult:
    """What :func:`run_scaling` produced."""

    out_dir: Path
    runs: list[ScalingRun]
    widths: list[int]
    records: list[RunRecord]
    report: Path | None

    def dead_share(self, scale: float, lr: float | None = None) -> tuple[int, int]:
        """(dead runs, finished runs) at ``scale`` (and ``lr``, when given)."""
        finished = [r for r in self.runs if r.scale == scale and r.finished and (lr is None or r.lr == lr)]
        return sum(r.death.dead for r in finished), len(finished)


def _series(steps: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(s[key]) for s in steps if isinstance(s.get(key), (int, float))]


def run_measures(steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each probe measure at initialisation (step 0), its highest value during training and its last one."""
    out: dict[str, Any] = {}
    trained = [s for s in steps if s.get("step", 0) > 0]
    for key in ("dead_channels", "probe_zero_fraction", "zero_fraction", "stream_rms_last", "stream_rms_max"):
        start = _series([s for s in steps if s.get("step", 0) == 0], key)
        values = _series(trained, key)
        out[f"init_{key}"] = start[0] if start else None
        out[f"max_{key}"] = max(values) if values else None
        out[f"final_{key}"] = values[-1] if values else None
    return out


def val_curve(record: RunRecord, steps: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, validation top-1 error) from the probe's measurements and the trainer's per-epoch ones."""
    points = {int(s["step"]): float(s["val_top1_error"]) for s in steps
              if isinstance(s.get("val_top1_error"), (int, float))}
    points.update({int(r["step"]): float(r["val_top1_error"]) for r in record.rows
                   if isinstance(r.get("val_top1_error"), (int, float)) and "step" in r})
    return sorted(points.items())


def final_val_top1(record: RunRecord, steps: Sequence[dict[str, Any]]) -> float | None:
    """The validation top-1 error at the end: the trainer's last epoch, else the probe's last measurement."""
    value = final_value(record.rows, "val_top1_error")
    if value is None:
        values = _series(steps, "val_top1_error")
        value = values[-1] if values else None
    return value


def summarize_run(record: RunRecord, config: ScalingConfig) -> ScalingRun:
    steps = read_steps(record.spec.run_dir) if record.status != "not run" else []
    death = detect_rows_death(steps, config.death) if steps else DeathReport(False, None, record.status)
    resolved = TrainConfig.from_dict(record.spec.settings).resolved()
    per_32 = rate_per_32(resolved.lr, resolved.batch_size, resolved.reference_batch_size, resolved.scale_lr)
    trained_losses = [s for s in steps if isinstance(s.get("loss"), (int, float))]
    last = trained_losses[-1] if trained_losses else {}
    top1 = final_val_top1(record, steps)
    run = ScalingRun(
        key=record.spec.key, lr=record.spec.settings.get("lr") if config.lrs is not None else None,
        lr_per_32=per_32, scale=float(record.spec.settings["residual_scale"]), seed=record.spec.seed,
        status=record.status, message=record.message, death=death,
        label=rate_label(death.dead, per_32, config.paper_lr, config.rate_factor) if record.finished else "not run",
        steps=steps, total_steps=record.derived.get("total_steps"),
        final_loss=last.get("loss_window", last.get("loss")), final_top1=top1, measures=run_measures(steps),
        val=val_curve(record, steps),
    )
    run.trained = (record.status == "completed" and not death.dead and top1 is not None
                   and top1 <= config.trained_top1)
    return run


def run_scaling(
    config: ScalingConfig,
    out_dir: str | os.PathLike,
    *,
    preset: str = "custom",
    command: str | None = None,
    train_fn: TrainFn | None = None,
    log: Callable[[str], None] | None = print,
    report_only: bool = False,
) -> ScalingResult:
    """Train the runs not done yet (all unless ``report_only``), detect deaths, write the report.

    ``train_fn`` replaces the study's training function (:class:`ProbedTrain`: training with the probe).
    """
    config.validate()
    widths = check_width(config)
    out = Path(out_dir)
    specs = plan_scaling(config, out)
    env = environment(command or "")  # the command the caller gives, else none
    study = {"study": "scaling", "preset": preset, "config": section_to_dict(config), "residual_widths": widths,
             "environment": env}
    fn = train_fn or ProbedTrain(DeathProbe(config.probe_images, config.val_every_steps))
    if config.jobs > 1 and not report_only:
        if is_main_process():
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "study.json", study)
        records = run_pool(specs, jobs=config.jobs, train_fn=fn, time_limit_s=config.time_limit_s, log=log)
    else:
        records = collect_records(specs, out, study, report_only=report_only, train_fn=fn,
                                  time_limit_s=config.time_limit_s, log=log)
    runs = [summarize_run(r, config) for r in records]
    result = ScalingResult(out, runs, widths, records, None)
    if is_main_process():
        result.report = write_scaling_report(config, result, preset)
    return result


# -- the report ----------------------------------------------------------------------------------------------
def _rate_text(run_or_rate: ScalingRun | float) -> str:
    per_32 = run_or_rate.lr_per_32 if isinstance(run_or_rate, ScalingRun) else run_or_rate
    return f"{per_32:.4g}"


def _range(values: Spread | None, digits: int = 3, suffix: str = "") -> str:
    if values is None:
        return "-"
    if values.n == 1 or values.min == values.max:
        return f"{values.mean:.{digits}f}{suffix}"
    return f"{values.mean:.{digits}f}{suffix} ({values.min:.{digits}f}..{values.max:.{digits}f})"


def setting_table(config: ScalingConfig, result: ScalingResult) -> list[dict[str, Any]]:
    """One row per (learning rate, scale): deaths, dead channels, residual stream, validation error."""
    rows = []
    for per_32 in sorted({r.lr_per_32 for r in result.runs}):
        for scale in config.scales:
            mine = [r for r in result.runs if r.scale == scale and r.lr_per_32 == per_32]
            done = [r for r in mine if r.finished]
            dead = [r for r in done if r.death.dead]
            rows.append({
                "lr_per_32": per_32, "lr": mine[0].lr if mine else None, "scale": scale, "runs": len(done),
                "not_run": len(mine) - len(done), "dead": len(dead), "death_steps": [r.death.step for r in dead],
                "rate_induced": sum("rate-induced" in r.label for r in dead),
                "diverged": sum(r.status == "diverged" for r in done),
                "trained": sum(r.trained for r in done),
                "final_dead_channels": spread(r.measures.get("final_dead_channels") for r in done),
                "max_dead_channels": spread(r.measures.get("max_dead_channels") for r in done),
                "final_stream": spread(r.measures.get("final_stream_rms_last") for r in done),
                "max_stream": spread(r.measures.get("max_stream_rms_max") for r in done),
                "top1": spread(r.final_top1 for r in done),
            })
    return rows


def living_controls(dead: ScalingRun, runs: Sequence[ScalingRun]) -> dict[str, list[ScalingRun]]:
    """The runs that trained normally beside a dead one: the same settings with another seed, the same
    rate with another scale, the same scale with another rate."""
    trained = [r for r in runs if r.trained and r is not dead]
    return {
        "same rate and scale, other seed": [r for r in trained if r.lr_per_32 == dead.lr_per_32
                                            and r.scale == dead.scale],
        "same rate, other scale": [r for r in trained if r.lr_per_32 == dead.lr_per_32 and r.scale != dead.scale],
        "same scale, other rate": [r for r in trained if r.scale == dead.scale and r.lr_per_32 != dead.lr_per_32],
    }


def _compare(a: Spread | None, b: Spread | None) -> str:
    """Where the range of ``a`` lies against that of ``b``: above, below, or overlapping (seed spread)."""
    if a is None or b is None:
        return "not measured"
    if a.min > b.max:
        return "above"
    if a.max < b.min:
        return "below"
    return "overlapping"


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
    where = f"at the paper's rate ({_rate_text(at_paper)} per 32 images)" if abs(at_paper - config.paper_lr) < 1e-9 \
        else f"at the rate closest to the paper's ({_rate_text(at_paper)} per 32 images; the paper's is " \
             f"{config.paper_lr:g})"
    if unscaled:
        verb = "died" if dead_unscaled else "did not die"
        out.append(f"**Death, {where}**: {dead_unscaled} of {len(unscaled)} unscaled run(s) (scale 1.0) died "
                   f"within {steps if steps else '?'} steps; {dead_scaled} of {len(scaled)} run(s) with a scale of "
                   f"0.3 or less died. The paper's unscaled wide networks died; here they {verb}"
                   + (" — the paper's deaths came after \"a few tens of thousands\" of iterations, "
                      f"about {PAPER_ITERATIONS // max(steps or 1, 1)}x this budget or more, so this neither "
                      "confirms nor refutes them." if not dead_unscaled else "."))
    dead_runs = [r for r in done if r.death.dead]
    if dead_runs:
        by_rate = {}
        for r in dead_runs:
            by_rate.setdefault(r.lr_per_32, []).append(r)
        parts = [f"{_rate_text(rate)}: {len(items)} (scales {', '.join(sorted({f'{r.scale:g}' for r in items}))})"
                 for rate, items in sorted(by_rate.items())]
        induced = sum("rate-induced" in r.label for r in dead_runs)
        out.append(f"**Deaths per rate** (per 32 images): {'; '.join(parts)}. {induced} of {len(dead_runs)} "
                   f"came at {config.rate_factor:g}x the paper's rate or more (rate-induced: the paper says its "
                   "deaths did not come from the rate).")
        scaled_dead = [r for r in dead_runs if r.scale <= 0.3]
        if scaled_dead:
            out.append(f"**Scaling did not always prevent death**: {len(scaled_dead)} run(s) with a scale of 0.3 "
                       "or less died (" + ", ".join(r.key for r in scaled_dead) + "), unlike the paper.")
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
        out.append(f"**At {_rate_text(row_rate)} per 32 images, the unscaled runs against the scaled ones**: "
                   f"their highest dead-channel share lies {channel}; their residual stream at the last step "
                   f"lies {stream}; their final validation error lies {top1}. (Above or below: every unscaled run "
                   "beyond every run of that scale; overlapping: within the seed spread.)")
    trained = sum(r.trained for r in done)
    out.append(f"**Living runs**: {trained} of {len(done)} finished run(s) trained normally (not dead, final "
               f"validation top-1 error at most {config.trained_top1:g} %).")
    return out


def write_scaling_report(config: ScalingConfig, result: ScalingResult, preset: str) -> Path:
    out = result.out_dir
    rows = setting_table(config, result)
    per_run = [r.to_dict() for r in result.runs]
    write_csv(out / "scaling.csv", per_run)
    step_rows = [{"key": r.key, "lr_per_32": r.lr_per_32, "scale": r.scale, "seed": r.seed,
                  **{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in s.items()}}
                 for r in result.runs for s in r.steps]
    if step_rows:
        write_csv(out / "steps.csv", step_rows)
    study = json.loads((out / "study.json").read_text()) if (out / "study.json").is_file() else {}
    env = study.get("environment") or environment("")
    summary_rows = [{k: (v.to_dict() if isinstance(v, Spread) else v) for k, v in row.items()} for row in rows]
    write_json(out / "summary.json", {"preset": preset, "residual_widths": result.widths, "settings": summary_rows,
                                      "runs": [{**entry, **run_entry(record)}
                                               for entry, record in zip(per_run, result.records, strict=True)]})
    figures = []
    curves = [{"lr_per_32": r.lr_per_32, "scale": r.scale, "seed": r.seed, "steps": r.steps, "val": r.val,
               "death_step": r.death.step} for r in result.runs if r.steps]
    if curves:
        plot_scaling(curves, out / "scaling.png", title=f"{config.model}: dead channels, residual stream, loss and "
                     "validation error (x: a death)")
        figures.append("scaling.png")
        if any(s.get("stream_rms") for c in curves for s in c["steps"]):
            plot_stream(curves, out / "stream.png", title=f"{config.model}: the residual stream after every block "
                        "at the last logged step")
            figures.append("stream.png")
    resolved = TrainConfig.from_dict({**config.train, "model": config.model}).resolved()
    derived = next((r.derived for r in result.records if r.derived), {})
    total_steps = derived.get("total_steps")
    images = total_steps * resolved.batch_size if total_steps is not None else None
    rates = sorted({r.lr_per_32 for r in result.runs})
    wide = [w for w in result.widths if w > config.min_filters]
    lines = [f"# Residual scaling and dying networks: `{preset}` preset", "",
             f"Section 3.3 of {PAPER}: Inception-ResNets with more than 1000 filters \"died\" early in training "
             "(after \"a few tens of thousands of iterations\" the layer before the average pooling produced only "
             "zeros); lowering the learning rate or adding BatchNorm did not prevent it, scaling the residuals by "
             "0.1-0.3 before the addition did. Here the network is trained for each learning rate, residual scale "
             "and seed, and its pooling input and residual stream are measured as it trains.", ""]
    lines += environment_lines(env) + ["", "## What was run", ""]
    lines += [
        f"- Network: `{config.model}`, blocks {resolved.model_options.get('blocks', 'as defined (full depth)')}, "
        f"width multiplier {resolved.width_multiplier or 1.0}: residual stages of "
        f"{', '.join(map(str, result.widths))} filters ({len(wide)} above {config.min_filters}).",
        f"- Data: {resolved.data or 'fashion-mnist'}, {derived.get('train_images', '?')} training images, "
        f"{derived.get('val_images', resolved.max_val_images or '?')} validation images, input "
        f"{derived.get('input_size', resolved.input_size)}; {resolved.epochs} epoch(s) of batch "
        f"{resolved.batch_size}: {total_steps if total_steps is not None else '?'} steps "
        f"({images if images else '?'} images) per run.",
        f"- Budget against the paper: {total_steps if total_steps is not None else '?'} steps per run, against "
        f"the paper's deaths after \"a few tens of thousands\" of iterations (batch 32 per replica): "
        + (f"{100 * total_steps / PAPER_ITERATIONS:.1f} % of {PAPER_ITERATIONS:,} iterations." if total_steps
           else "unknown."),
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
        + (f"Validation error every {config.val_every_steps} steps and at the end." if config.val_every_steps
           else "Validation error after every epoch."),
        f"- Dead: from some logged step to the end, {config.death.measure.replace('_', ' ')} at least "
        f"{config.death.threshold:g} (at {config.death.min_points} or more logged points) and the training loss "
        f"no longer falling (by more than {100 * config.death.loss_tolerance:g} % of its value there). A death "
        f"at {config.rate_factor:g}x the paper's rate or more is labelled *rate-induced*. A non-finite loss ends "
        f"a run as *diverged*. A run *trained normally* when it did not die and ended at a validation top-1 "
        f"error of at most {config.trained_top1:g} %.", ""]
    lines += ["## The answer", ""] + [f"- {text}" for text in findings(config, result, rows)] + [""]
    lines += ["## Per learning rate and scale", "",
              "Values: mean over seeds (range). Dead channels: share of the pooling input's channels zero on every "
              "probe image. Stream: root-mean-square of the residual stream after the last block.", ""]
    lines += [md_table(["lr per 32", "scale", "runs", "dead", "died at step", "rate-induced", "diverged",
                        "trained normally", "dead channels, last", "dead channels, highest", "stream, last",
                        "stream, highest (any block)", "final val top-1 %"],
                       [[_rate_text(r["lr_per_32"]), f"{r['scale']:g}", r["runs"], r["dead"],
                         ", ".join(map(str, r["death_steps"])) or "-", r["rate_induced"], r["diverged"], r["trained"],
                         _range(r["final_dead_channels"]), _range(r["max_dead_channels"]),
                         _range(r["final_stream"], 2), _range(r["max_stream"], 2), _range(r["top1"], 1)]
                        for r in rows]), ""]
    dead_runs = [r for r in result.runs if r.death.dead]
    lines += ["## Every death and its living controls", ""]
    if not dead_runs:
        lines += ["No run died.", ""]
    for run in dead_runs:
        lines += [f"- `{run.key}` ({run.label}; lr {_rate_text(run)} per 32 images, scale {run.scale:g}, seed "
                  f"{run.seed}): died at step {run.death.step}, final validation top-1 error {fmt(run.final_top1, 1)} "
                  "%. Controls that trained normally:"]
        for kind, items in living_controls(run, result.runs).items():
            text = ", ".join(f"`{c.key}` ({fmt(c.final_top1, 1)} %)" for c in items) or "none"
            lines.append(f"  - {kind}: {text}")
    if dead_runs:
        lines.append("")
    for name in figures:
        lines += [f"![{name[:-4]}]({name})", ""]
    lines += ["## Every run", "",
              md_table(["run", "lr per 32", "scale", "seed", "status", "verdict", "last step", "last loss",
                        "final val top-1 %", "dead channels (last / highest)", "zero fraction, probe (last)",
                        "zero fraction, training batch (last)", "stream, last block (first / last / highest)"],
                       [[f"`{r.key}`", _rate_text(r), f"{r.scale:g}", r.seed, r.status, r.label,
                         r.steps[-1]["step"] if r.steps else "-", fmt(r.final_loss, 3), fmt(r.final_top1, 1),
                         f"{fmt(r.measures.get('final_dead_channels'), 3)} / "
                         f"{fmt(r.measures.get('max_dead_channels'), 3)}",
                         fmt(r.measures.get("final_probe_zero_fraction"), 3),
                         fmt(r.measures.get("final_zero_fraction"), 3),
                         f"{fmt(r.measures.get('init_stream_rms_last'), 2)} / "
                         f"{fmt(r.measures.get('final_stream_rms_last'), 2)} / "
                         f"{fmt(r.measures.get('max_stream_rms_last'), 2)}"] for r in result.runs]), "",
              "Detector's reasons: " + "; ".join(f"`{r.key}`: {r.death.reason}" for r in result.runs if r.finished)
              + ".", ""]
    lines += ["## Beside the paper", "",
              "The paper reports the phenomenon qualitatively (no share of dead runs, no step counts): networks of "
              "more than 1000 filters died after a few tens of thousands of iterations; a lower learning rate, extra "
              "BatchNorm or a low-learning-rate warm-up did not help; scaling the residuals by 0.1-0.3 did, without "
              "hurting accuracy. It trained on ImageNet at 299x299 with many replicas; this study trains on "
              f"{resolved.data or 'fashion-mnist'} at {derived.get('input_size', resolved.input_size)}x"
              f"{derived.get('input_size', resolved.input_size)}, so a difference can come from the data, the "
              "input size and the budget as much as from the network.", "",
              "## Files", "",
              "- `scaling.csv`: one row per run; `steps.csv`: every logged step of every run (the figures' data; "
              "`stream_rms` lists the blocks in forward order).",
              "- `study.json`: the exact configuration and environment; `summary.json`: per setting and per run "
              "(with each run's settings and derived values); `runs/<run>/` (where kept): the training runs.", ""]
    not_run = [r.spec.key for r in result.records if r.status == "not run"]
    if not_run:
        lines += [f"**Incomplete**: {len(not_run)} run(s) not run ({', '.join(not_run)}); start the same command "
                  "again to train them (finished runs are skipped).", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
