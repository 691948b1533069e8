"""The study's figures, drawn with matplotlib's Agg backend (no display needed).

* :func:`plot_pair`: a pair's (or the baselines') learning curves: validation top-1 error against the
  optimiser step and against training time, top-5 error and training loss against the step. For each
  entry the mean over seeds is a line with a marker at every validation (the first at step 0, the
  measured untrained network) and the range over seeds (min..max) a shaded band; the error levels fixed
  in advance are dashed horizontal lines.
* :func:`plot_sweep`: the learning-rate sweep: final held-out error against the learning rate per entry.
* :func:`plot_scaling`: one column per residual scale; training loss and the zero fraction entering the
  final pooling against the step, one line per seed, a dashed vertical line where a run died.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .stats import Curve, Rows, curve_stats


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


def _loss_points(rows: Rows) -> list[tuple[float, float]]:
    return [(float(r["step"]), float(r["train_loss"])) for r in rows
            if r.get("step") is not None and r.get("train_loss") is not None]


def plot_pair(
    models: Mapping[str, tuple[Sequence[Curve], Sequence[Rows]]],
    out_png: str | os.PathLike,
    *,
    levels: Sequence[float] = (),
    weights: str = "raw",
    title: str | None = None,
) -> Path:
    """Draw the entries' curves (``{name: (curves, per-epoch rows)}``, one of each per seed) to ``out_png``."""
    figure, axes = _figure(2, 2, (13, 9))
    panels = ((axes[0][0], "top1", "step", "validation top-1 error (%)"),
              (axes[0][1], "top1", "seconds", "validation top-1 error (%)"),
              (axes[1][0], "top5", "step", "validation top-5 error (%)"))
    drawn = False
    for index, (model, (curves, runs)) in enumerate(models.items()):
        colour = f"C{index % 10}"
        curves = [c for c in curves if c.steps]
        if not curves:
            continue
        label = f"{model} (mean of {len(curves)} seed{'s' if len(curves) > 1 else ''})"
        for axis, values, x_axis, _ in panels:
            stats = curve_stats(curves, values, x_axis)
            if not stats.x:
                continue
            axis.plot(stats.x, stats.mean, "-o", color=colour, markersize=3, label=label)
            if len(curves) > 1:
                axis.fill_between(stats.x, stats.low, stats.high, color=colour, alpha=0.2, linewidth=0)
            drawn = True
        for rows in runs:
            points = _loss_points(rows)
            if points:
                axes[1][1].plot(*zip(*points, strict=True), "-", color=colour, alpha=0.6, linewidth=1)
    if not drawn:
        raise ValueError("no run of these entries has validation errors: nothing to draw")
    for axis, values, _, _ in panels:
        if values == "top1":
            for level in levels:
                axis.axhline(level, color="grey", linestyle="--", linewidth=0.8)
                axis.annotate(f"{level:g} %", (1.0, level), xycoords=("axes fraction", "data"), fontsize=8,
                              color="grey", ha="right", va="bottom")
    for axis, _, x_axis, ylabel in panels:
        axis.set_xlabel("optimiser step (0: untrained)" if x_axis == "step" else
                        "training time (s, validation excluded)")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    axes[1][1].set_xlabel("optimiser step (end of each epoch)")
    axes[1][1].set_ylabel("training loss (label-smoothed), one line per seed")
    axes[1][1].grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(3, len(handles)))
    weights_text = "raw weights" if weights == "raw" else "moving-average (EMA) weights"
    figure.suptitle((title or " vs ".join(models)) + f" - {weights_text}; band: range over seeds; dashed: the "
                    "error levels fixed in advance")
    return _save(figure, out_png)


def plot_sweep(
    errors: Mapping[str, Mapping[float, float | None]],
    out_png: str | os.PathLike,
    *,
    chosen: Mapping[str, float] | None = None,
    title: str | None = None,
) -> Path:
    """Final held-out top-1 error against the learning rate (log axis), one line per entry; chosen rates circled."""
    figure, axes = _figure(1, 1, (7, 5))
    axis = axes[0][0]
    for index, (model, by_lr) in enumerate(errors.items()):
        points = sorted((lr, err) for lr, err in by_lr.items() if err is not None)
        if not points:
            continue
        colour = f"C{index % 10}"
        axis.plot(*zip(*points, strict=True), "-o", color=colour, label=model)
        best = (chosen or {}).get(model)
        if best is not None and by_lr.get(best) is not None:
            axis.plot([best], [by_lr[best]], "o", markersize=14, markerfacecolor="none", color=colour)
    axis.set_xscale("log")
    axis.set_xlabel("learning rate (per reference batch)")
    axis.set_ylabel("final held-out top-1 error (%)")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.suptitle(title or "learning-rate sweep (circled: chosen)")
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
