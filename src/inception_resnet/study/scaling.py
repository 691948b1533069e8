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

import dataclasses
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..environment import environment
from ..training import TrainConfig, TrainSummary, train
from ..training.rundir import read_steps
from .config import SCALE_OPTION, ScalingConfig, section_to_dict
from .death import DeathReport, detect_rows_death, rate_label, rate_per_32
from .probe import DeathProbe, residual_blocks
from .results import ScalingResult, ScalingRun
from .runs import RunRecord, RunSpec, TrainFn, collect_records, is_main_process
from .scaling_report import write_scaling_report
from .stats import final_value


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
                settings = {**config.run_settings(scale), "seed": seed}
                if lr is not None:
                    settings["lr"] = float(lr)
                group = (f"lr {lr:g}, " if lr is not None else "") + f"scale {scale:g}"
                specs.append(RunSpec(key, config.model, seed, group, settings, runs_dir / key))
    return specs


def _meta_model(model: str, settings: dict[str, Any]) -> Any:
    """The model as ``settings`` build it, on the meta device (no memory, no computation)."""
    import torch

    from ..weights.factory import create_model

    config = TrainConfig.from_dict({**settings, "model": model})
    with torch.device("meta"):
        return create_model(model, num_classes=10, in_chans=config.in_chans, **config.model_options)


def residual_widths(model: str, settings: dict[str, Any]) -> list[int]:
    """The channel counts of the model's residual stages (each distinct width of its residual blocks)."""
    widths: list[int] = []
    for _, block in residual_blocks(_meta_model(model, settings)):
        if block.out_channels not in widths:
            widths.append(block.out_channels)
    return widths


def residual_stages(model: str, settings: dict[str, Any]) -> list[tuple[str, int]]:
    """The model's residual stages in forward order: (name of the stage's module, number of blocks)."""
    stages: list[tuple[str, int]] = []
    for name, _ in residual_blocks(_meta_model(model, settings)):
        stage = name.rsplit(".", 1)[0] if "." in name else name
        if stages and stages[-1][0] == stage:
            stages[-1] = (stage, stages[-1][1] + 1)
        else:
            stages.append((stage, 1))
    return stages


def check_width(config: ScalingConfig) -> list[int]:
    """The residual widths; a ValueError when fewer than ``wide_stages`` stages exceed ``min_filters``."""
    widths = residual_widths(config.model, config.run_settings(1.0))
    if not widths:
        raise ValueError(f"{config.model} has no residual blocks; the scaling study needs an Inception-ResNet")
    wide = [w for w in widths if w > config.min_filters] if config.min_filters else widths
    if len(wide) < config.wide_stages:
        raise ValueError(
            f"{config.model} at these settings has {len(wide)} residual stage(s) of more than min_filters="
            f"{config.min_filters} filters (stages: {widths}), fewer than wide_stages={config.wide_stages} (the "
            "paper saw deaths above 1000 filters); raise width_multiplier in train.model_options, or lower "
            "min_filters or wide_stages knowingly"
        )
    return widths


@dataclass
class ProbedTrain:
    """The study's training function: :func:`~inception_resnet.training.train` with the death probe
    (picklable, for runs in other processes). Without ``keep_checkpoints`` a run that completed loses its
    ``checkpoints/`` directory (a finished run is never resumed; its logs stay)."""

    probe: DeathProbe
    keep_checkpoints: bool = True

    def __call__(self, config: TrainConfig) -> TrainSummary:
        summary = train(config, step_probe=dataclasses.replace(self.probe))  # a fresh probe batch per run
        if not self.keep_checkpoints and summary.status == "completed" and is_main_process():
            shutil.rmtree(Path(summary.run_dir) / "checkpoints", ignore_errors=True)
            summary.last_checkpoint = summary.best_checkpoint = None
        return summary


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
    """(step, validation top-1 error) from the probe's measurements and the trainer's (per epoch, and per
    step where the record holds such evaluations)."""
    points = {}
    for rows in (steps, getattr(record, "evaluations", None) or [], record.rows):
        points.update(
            {
                int(r["step"]): float(r["val_top1_error"])
                for r in rows
                if isinstance(r.get("val_top1_error"), (int, float)) and "step" in r
            }
        )
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
    label = rate_label(death.dead or record.status == "diverged", per_32, config.paper_lr, config.rate_factor)
    if record.status == "diverged":
        label = label.replace("dead", "diverged", 1)
    run = ScalingRun(
        key=record.spec.key,
        lr=record.spec.settings.get("lr") if config.lrs is not None else None,
        lr_per_32=per_32,
        scale=float(record.spec.settings["model_options"][SCALE_OPTION]),
        seed=record.spec.seed,
        status=record.status,
        message=record.message,
        death=death,
        label=label if record.finished else "not run",
        steps=steps,
        total_steps=record.derived.get("total_steps"),
        final_loss=last.get("loss_window", last.get("loss")),
        final_top1=top1,
        measures=run_measures(steps),
        val=val_curve(record, steps),
    )
    run.trained = record.status == "completed" and not death.dead and top1 is not None and top1 <= config.trained_top1
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
    study = {
        "study": "scaling",
        "preset": preset,
        "config": section_to_dict(config),
        "residual_widths": widths,
        "environment": env,
    }
    fn = train_fn or ProbedTrain(DeathProbe(config.probe_images, config.val_every_steps), config.keep_checkpoints)
    records = collect_records(
        specs,
        out,
        study,
        report_only=report_only,
        train_fn=fn,
        time_limit_s=config.time_limit_s,
        log=log,
        parallel=config.parallel,
    )
    runs = [summarize_run(r, config) for r in records]
    stages = residual_stages(config.model, config.run_settings(1.0))
    result = ScalingResult(out, runs, widths, records, None, stages)
    if is_main_process():
        result.report = write_scaling_report(config, result, preset)
    return result
