"""The study's figures, drawn with matplotlib's Agg backend (no display needed).

* :func:`plot_pair`: a pair's (or the baselines') learning curves: validation top-1 error against the
  optimiser step and against training time, top-5 error and training loss against the step. For each
  entry the mean over seeds is a line with a marker at every validation (the first at step 0, the
  measured untrained network) and the range over seeds (min..max) a shaded band; the error levels fixed
  in advance are dashed horizontal lines.
* :func:`plot_sweep`: the learning-rate sweep: final held-out error against the learning rate per entry.
* :func:`plot_scaling`: one column per learning rate; the dead-channel share at the pooling input, the
  residual stream's norm, the training loss and the validation error against the step, one colour per
  residual scale and one line style per seed, a cross where a run died.
* :func:`plot_stream`: the residual stream's norm after every block, at the first and the last step.
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
    return [
        (float(r["step"]), float(r["train_loss"]))
        for r in rows
        if r.get("step") is not None and r.get("train_loss") is not None
    ]


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
    panels = (
        (axes[0][0], "top1", "step", "validation top-1 error (%)"),
        (axes[0][1], "top1", "seconds", "validation top-1 error (%)"),
        (axes[1][0], "top5", "step", "validation top-5 error (%)"),
    )
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
                axis.annotate(
                    f"{level:g} %",
                    (1.0, level),
                    xycoords=("axes fraction", "data"),
                    fontsize=8,
                    color="grey",
                    ha="right",
                    va="bottom",
                )
    for axis, _, x_axis, ylabel in panels:
        axis.set_xlabel(
            "optimiser step (0: untrained)" if x_axis == "step" else "training time (s, validation excluded)"
        )
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
    axes[1][1].set_xlabel("optimiser step (end of each epoch)")
    axes[1][1].set_ylabel("training loss (label-smoothed), one line per seed")
    axes[1][1].grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(3, len(handles)))
    weights_text = "raw weights" if weights == "raw" else "moving-average (EMA) weights"
    figure.suptitle(
        (title or " vs ".join(models)) + f" - {weights_text}; band: range over seeds; dashed: the "
        "error levels fixed in advance"
    )
    return _save(figure, out_png)


def plot_sweep(
    errors: Mapping[str, Mapping[float, float | None]],
    out_png: str | os.PathLike,
    *,
    chosen: Mapping[str, float] | None = None,
    title: str | None = None,
    ylabel: str = "final held-out top-1 error (%)",
) -> Path:
    """The sweep's measure (``ylabel``) against the learning rate (log axis), one line per entry; chosen rates
    circled."""
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
    axis.set_ylabel(ylabel)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.suptitle(title or "learning-rate sweep (circled: chosen)")
    return _save(figure, out_png)


SEED_STYLES = ("-", "--", ":", "-.")
SCALING_PANELS = (
    ("dead_channels", "dead channels at the pooling input (share)", "linear"),
    ("stream_rms_last", "residual stream after the last block (RMS)", "log"),
    ("loss_window", "training loss", "linear"),
    ("val_top1_error", "validation top-1 error (%)", "linear"),
)


def _by_rate(curves: Sequence[Mapping[str, Any]]) -> dict[float, list[Mapping[str, Any]]]:
    rates: dict[float, list[Mapping[str, Any]]] = {}
    for curve in curves:
        rates.setdefault(float(curve["lr_per_32"]), []).append(curve)
    return dict(sorted(rates.items()))


def _xy(steps: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    fallback = "loss" if key == "loss_window" else key
    points = [(s["step"], s.get(key, s.get(fallback))) for s in steps]
    points = [(x, y) for x, y in points if isinstance(y, (int, float))]
    return [x for x, _ in points], [y for _, y in points]


def plot_scaling(
    curves: Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Draw the scaling study: one column per learning rate; dead-channel share, residual-stream norm,
    training loss and validation error against the step; one colour per residual scale, one line style
    per seed, a cross where a run died.

    ``curves`` are dicts with ``lr_per_32``, ``scale``, ``seed``, ``steps`` (rows of ``steps.jsonl``),
    optionally ``val`` ((step, validation top-1 error) pairs, else read from ``steps``) and ``death_step``
    (None when the run did not die).
    """
    if not curves:
        raise ValueError("no scaling runs to draw")
    rates = _by_rate(curves)
    scales = sorted({float(c["scale"]) for c in curves}, reverse=True)
    seeds = sorted({int(c["seed"]) for c in curves})
    width = max(4.6 * len(rates) + 1, 8.5)  # one rate: still wide enough for the title and the legend
    figure, axes = _figure(len(SCALING_PANELS), len(rates), (width, 3.0 * len(SCALING_PANELS) + 1))
    for column, (rate, items) in enumerate(rates.items()):
        for curve in items:
            colour = f"C{scales.index(float(curve['scale'])) % 10}"
            style = SEED_STYLES[seeds.index(int(curve["seed"])) % len(SEED_STYLES)]
            steps = curve.get("steps") or []
            for row, (key, _, _) in enumerate(SCALING_PANELS):
                if key == "val_top1_error" and curve.get("val"):
                    xs, ys = [x for x, _ in curve["val"]], [y for _, y in curve["val"]]
                else:
                    xs, ys = _xy(steps, key)
                if not xs:
                    continue
                axis = axes[row][column]
                axis.plot(
                    xs,
                    ys,
                    style,
                    color=colour,
                    linewidth=1.2,
                    marker="." if len(xs) < 3 else None,
                    label=f"scale {float(curve['scale']):g}, seed {curve['seed']}",
                )
                if curve.get("death_step") is not None:
                    at = [y for x, y in zip(xs, ys, strict=True) if x >= curve["death_step"]]
                    if at:
                        axis.plot([curve["death_step"]], [at[0]], "x", color=colour, markersize=9, mew=2)
        axes[0][column].set_title(f"lr {rate:.4g} per 32 images")
        for row, (key, label, yscale) in enumerate(SCALING_PANELS):
            axis = axes[row][column]
            axis.set_xlabel("step")
            axis.set_ylabel(label)
            axis.grid(True, alpha=0.3)
            if yscale == "log" and axis.has_data():
                axis.set_yscale("log")
            if key == "dead_channels":
                axis.set_ylim(-0.02, 1.02)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
    figure.suptitle(title or "residual scaling: dead channels, residual stream, loss and error per rate")
    return _save(figure, out_png)


def plot_stream(
    curves: Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike,
    *,
    stages: Sequence[tuple[str, int]] = (),
    title: str | None = None,
) -> Path:
    """The residual stream's root-mean-square after every block (x: block, in forward order) at each run's
    first and last measured step; one column per learning rate, one colour per scale (dotted: the first
    step, solid: the last), one line per seed. ``stages`` ((name, blocks) in forward order) draws the
    boundaries between the residual stages."""
    rates = _by_rate(curves)
    scales = sorted({float(c["scale"]) for c in curves}, reverse=True)
    figure, axes = _figure(1, len(rates), (4.6 * len(rates) + 1, 4.5))
    drawn = False
    for column, (rate, items) in enumerate(rates.items()):
        axis = axes[0][column]
        for curve in items:
            measured = [s for s in curve.get("steps") or [] if s.get("stream_rms")]
            if not measured:
                continue
            colour = f"C{scales.index(float(curve['scale'])) % 10}"
            first, last = measured[0], measured[-1]
            axis.plot(range(1, len(first["stream_rms"]) + 1), first["stream_rms"], ":", color=colour, linewidth=1)
            axis.plot(
                range(1, len(last["stream_rms"]) + 1),
                last["stream_rms"],
                "-",
                color=colour,
                linewidth=1.2,
                label=f"scale {float(curve['scale']):g}, seed {curve['seed']} (step {last['step']})",
            )
            drawn = True
        axis.set_title(f"lr {rate:.4g} per 32 images")
        edge = 0
        for name, count in stages:
            axis.axvline(edge + 0.5, color="grey", linewidth=0.8, alpha=0.6)
            axis.text(
                edge + 0.5 + count / 2,
                0.01,
                name,
                transform=axis.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
                color="grey",
            )
            edge += count
        axis.set_xlabel("residual block (forward order)")
        axis.set_ylabel("residual stream after the block (RMS)")
        axis.grid(True, alpha=0.3)
        if axis.has_data():
            axis.set_yscale("log")
            axis.legend(fontsize=7)
    if not drawn:
        raise ValueError("no run logged the residual stream: nothing to draw")
    figure.suptitle(title or "residual stream after every block (dotted: first measured step; solid: last)")
    return _save(figure, out_png)
