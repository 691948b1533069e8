"""The study's figures, drawn with matplotlib's Agg backend (no display needed).

* :func:`plot_pair`: the curves the paper draws for a pair (training loss, validation top-1 and top-5
  error) against epochs (top row) and training time (bottom row): for each model the mean over seeds
  as a line and the range over seeds (min..max) as a shaded band.
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
    figure, axes = _figure(len(SCALING_PANELS), len(rates), (4.6 * len(rates) + 1, 3.0 * len(SCALING_PANELS) + 1))
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
                axis.plot(xs, ys, style, color=colour, linewidth=1.2, marker="." if len(xs) < 3 else None,
                          label=f"scale {float(curve['scale']):g}, seed {curve['seed']}")
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
            axis.plot(range(1, len(last["stream_rms"]) + 1), last["stream_rms"], "-", color=colour, linewidth=1.2,
                      label=f"scale {float(curve['scale']):g}, seed {curve['seed']} (step {last['step']})")
            drawn = True
        axis.set_title(f"lr {rate:.4g} per 32 images")
        edge = 0
        for name, count in stages:
            axis.axvline(edge + 0.5, color="grey", linewidth=0.8, alpha=0.6)
            axis.text(edge + 0.5 + count / 2, 0.01, name, transform=axis.get_xaxis_transform(), ha="center",
                      va="bottom", fontsize=7, color="grey")
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
