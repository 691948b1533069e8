"""The study's figures, drawn with matplotlib's Agg backend (no display needed).

* :func:`plot_pair`: the curves the paper draws for a pair (training loss, validation top-1 and top-5
  error) against epochs (top row) and training time (bottom row): for each model the mean over seeds
  as a line and the range over seeds (min..max) as a shaded band.
* :func:`plot_scaling`: one column per residual scale; training loss and the zero fraction entering the
  final pooling against the step, one line per seed, a dashed vertical line where a run died.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .stats import METRICS, Rows, curve_stats

AXES = (("epoch", "epoch"), ("seconds", "training time (s, validation excluded)"))


def _figure(rows: int, columns: int, size: tuple[float, float]) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False)


def _save(figure: Any, out_png: str | os.PathLike) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out


def plot_pair(
    runs_by_model: Mapping[str, Sequence[Rows]],
    out_png: str | os.PathLike,
    *,
    weights: str = "raw",
    title: str | None = None,
) -> Path:
    """Draw a pair's curves (mean and min..max band over seeds) to ``out_png``; returns its path."""
    keys = METRICS[weights]
    panels = (("train_loss", "training loss"), (keys["top1"], "validation top-1 error (%)"),
              (keys["top5"], "validation top-5 error (%)"))
    figure, axes = _figure(2, len(panels), (15, 8.5))
    drawn = False
    for index, (model, runs) in enumerate(runs_by_model.items()):
        colour = f"C{index % 10}"
        runs = [rows for rows in runs if rows]
        if not runs:
            continue
        for column, (key, _) in enumerate(panels):
            for row, (axis_kind, _) in enumerate(AXES):
                stats = curve_stats(runs, key, axis_kind)
                if not stats.x:
                    continue
                axis = axes[row][column]
                axis.plot(stats.x, stats.mean, "-o", color=colour, markersize=3,
                          label=f"{model} (mean of {len(runs)} seed{'s' if len(runs) > 1 else ''})")
                if len(runs) > 1:
                    axis.fill_between(stats.x, stats.low, stats.high, color=colour, alpha=0.2, linewidth=0)
                drawn = True
    for column, (_, label) in enumerate(panels):
        for row, (_, xlabel) in enumerate(AXES):
            axes[row][column].set_xlabel(xlabel)
            axes[row][column].set_ylabel(label)
            axes[row][column].grid(True, alpha=0.3)
    if not drawn:
        raise ValueError("no run of this pair has per-epoch metrics: nothing to draw")
    handles, labels = axes[0][1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)))
    weights_text = "raw weights" if weights == "raw" else "moving-average (EMA) weights"
    figure.suptitle((title or " vs ".join(runs_by_model)) + f" — {weights_text}; band: range over seeds")
    return _save(figure, out_png)


def plot_scaling(
    runs_by_scale: Mapping[float, Sequence[Mapping[str, Any]]],
    out_png: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Draw the scaling study: per scale, each seed's loss and zero fraction against the step.

    ``runs_by_scale`` maps a scale to dicts with ``seed``, ``steps`` (rows of ``steps.jsonl``) and
    ``death_step`` (None when the run did not die).
    """
    scales = list(runs_by_scale)
    if not scales:
        raise ValueError("no scaling runs to draw")
    figure, axes = _figure(2, len(scales), (4.2 * len(scales) + 1, 7.5))
    for column, scale in enumerate(scales):
        top, bottom = axes[0][column], axes[1][column]
        for index, run in enumerate(runs_by_scale[scale]):
            steps = run.get("steps") or []
            colour = f"C{index % 10}"
            xs = [r["step"] for r in steps]
            loss_key = "loss_window" if steps and "loss_window" in steps[0] else "loss"
            top.plot(xs, [r.get(loss_key) for r in steps], color=colour, linewidth=1, label=f"seed {run['seed']}")
            bottom.plot(xs, [r.get("zero_fraction") for r in steps], color=colour, linewidth=1)
            if run.get("death_step") is not None:
                for axis in (top, bottom):
                    axis.axvline(run["death_step"], color=colour, linestyle="--", linewidth=1)
        top.set_title(f"residual scale {scale:g}")
        top.set_ylabel("training loss")
        bottom.set_ylabel("zero fraction entering the final pooling")
        bottom.set_ylim(-0.02, 1.02)
        for axis in (top, bottom):
            axis.set_xlabel("step")
            axis.grid(True, alpha=0.3)
        if runs_by_scale[scale]:
            top.legend(fontsize=8)
    figure.suptitle(title or "residual scaling: loss and dead units per scale (dashed: the step a run died)")
    return _save(figure, out_png)
