"""Training curves of one or more runs, drawn to a PNG with matplotlib (no display needed).

:func:`plot_run` takes run directories (or their ``metrics.csv`` / ``metrics.jsonl`` files) and draws a
2 x 3 grid: training loss, validation top-1 error and top-5 error, against the epoch (top row) and
against the wall-clock time of the run (bottom row; in seconds, minutes or hours by the longest run). Each
run has one colour; the raw weights are solid lines, the averaged (EMA) weights dashed. A run directory's
``steps.jsonl`` (the loss every ``log_every_steps`` steps) draws the loss, and its ``validation.jsonl`` (with
``validate_every_steps``) the errors, step by step, so that a run of one or two epochs gives curves rather
than single points. The top-5 panels are left out when every run has fewer than 10 classes (top-5 of a
handful of classes says little). :func:`read_metrics` returns the rows for other uses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .rundir import RunSource, read_derived, read_metrics, read_steps, read_validations

PANELS = (
    ("train_loss", None, "training loss"),
    ("val_top1_error", "ema_val_top1_error", "validation top-1 error (%)"),
    ("val_top5_error", "ema_val_top5_error", "validation top-5 error (%)"),
)


def _label_for(source: RunSource) -> str:
    path = Path(source)
    return path.name if path.is_dir() else path.parent.name


def plot_run(
    runs: RunSource | Sequence[RunSource],
    out_png: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Draw the curves of one run or several (see the module docstring) to ``out_png``; returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    sources = [runs] if isinstance(runs, (str, os.PathLike)) else list(runs)
    if not sources:
        raise ValueError("give at least one run directory or metrics file to plot")
    if labels is not None and len(labels) != len(sources):
        raise ValueError(f"{len(labels)} labels for {len(sources)} runs; give one label per run")
    names = list(labels) if labels is not None else [_label_for(s) for s in sources]
    tables = [read_metrics(source) for source in sources]
    directories = [Path(source).is_dir() for source in sources]
    step_rows = [read_steps(s) if is_dir else [] for s, is_dir in zip(sources, directories, strict=True)]
    val_rows = [read_validations(s) if is_dir else [] for s, is_dir in zip(sources, directories, strict=True)]
    classes = [
        read_derived(s).get("num_classes") if is_dir else None for s, is_dir in zip(sources, directories, strict=True)
    ]
    panels = PANELS if any(count is None or count >= 10 for count in classes) else PANELS[:2]

    figure = Figure(figsize=(5 * len(panels), 8.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, len(panels), squeeze=False)
    colours = [f"C{i % 10}" for i in range(len(tables))]
    unit, scale = time_unit(max((row.get("elapsed") or 0.0) for rows in tables for row in rows))
    for rows, steps, validations, name, colour in zip(tables, step_rows, val_rows, names, colours, strict=True):
        per_epoch = _steps_per_epoch(rows)
        for column, (raw_key, ema_key, _) in enumerate(panels):
            finer = steps if raw_key == "train_loss" else validations
            key = "loss" if raw_key == "train_loss" else raw_key
            source = rows
            if per_epoch and sum(row.get(key) is not None for row in finer) >= 2:  # step by step
                source = [{**row, "epoch": row["step"] / per_epoch, raw_key: row.get(key)} for row in finer]
            epochs = [row.get("epoch") for row in source]
            times = [(row.get("elapsed") or 0.0) / scale for row in source]
            marker = "o" if source is rows else ""
            for x_values, axis in ((epochs, axes[0][column]), (times, axes[1][column])):
                _draw(axis, x_values, source, raw_key, colour, "-", name, marker)
                if ema_key is not None:
                    _draw(axis, x_values, source, ema_key, colour, "--", f"{name} (EMA)", marker)
    for column, (_, _, ylabel) in enumerate(panels):
        axes[0][column].set_xlabel("epoch")
        axes[0][column].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1][column].set_xlabel(f"wall-clock time ({unit})")
        for row in (0, 1):
            axes[row][column].set_ylabel(ylabel)
            axes[row][column].grid(True, alpha=0.3)
    handles, legend_labels = axes[0][1].get_legend_handles_labels()
    if not handles:
        handles, legend_labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, legend_labels, loc="outside lower center", ncols=min(4, len(handles)))
    figure.suptitle(title or ("training curves: " + ", ".join(names)))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out


def time_unit(longest_seconds: float) -> tuple[str, float]:
    """The unit the time axis reads best in: seconds, minutes or hours (name, seconds per unit)."""
    if longest_seconds < 120:
        return "seconds", 1.0
    if longest_seconds < 2 * 3600:
        return "minutes", 60.0
    return "hours", 3600.0


def _steps_per_epoch(rows: list[dict[str, Any]]) -> float | None:
    """Optimiser steps per epoch, from the per-epoch rows (their ``step`` at the end of each epoch)."""
    last = next((row for row in reversed(rows) if row.get("step") and row.get("epoch")), None)
    return last["step"] / last["epoch"] if last else None


def _draw(
    axis, x_values: list, rows: list[dict[str, Any]], key: str, colour: str, style: str, label: str, marker: str = "o"
) -> None:
    points = [
        (x, row.get(key)) for x, row in zip(x_values, rows, strict=True) if x is not None and row.get(key) is not None
    ]
    if points:
        xs, ys = zip(*points, strict=True)
        axis.plot(
            xs,
            ys,
            style,
            color=colour,
            marker=(marker or "o") if len(points) == 1 else marker,
            markersize=3,
            label=label,
        )
