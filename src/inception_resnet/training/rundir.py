"""The run directory: the one writer and the one reader of ``config.json``, ``metrics.jsonl``/``.csv`` and
``steps.jsonl`` (the layout is described in :mod:`inception_resnet.training.trainer`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

RunSource = str | os.PathLike


def read_config_document(run_dir: RunSource) -> dict[str, Any] | None:
    """``config.json`` of a run directory (``config`` and ``derived``), or None when there is none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()))


def load_run_config(run_dir: RunSource) -> dict[str, Any]:
    """The configuration a run directory recorded (``config.json``'s ``config``)."""
    document = read_config_document(run_dir)
    if document is None:
        raise FileNotFoundError(f"{Path(run_dir) / 'config.json'} not found: is {run_dir} a training run directory?")
    return dict(document["config"])


def read_derived(run_dir: RunSource) -> dict[str, Any]:
    """What the run's ``config.json`` derived (classes, input size, parameters...), or ``{}``."""
    document = read_config_document(run_dir)
    return dict(document.get("derived", {})) if document else {}


def metrics_file(source: RunSource) -> Path:
    """The metrics file of a run directory (``metrics.jsonl`` preferred), or ``source`` if it is a file."""
    path = Path(source)
    if path.is_dir():
        for name in ("metrics.jsonl", "metrics.csv"):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds no metrics.jsonl or metrics.csv: is it a training run directory?")
    if not path.is_file():
        raise FileNotFoundError(f"no run directory or metrics file at {path}")
    return path


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_metrics(source: RunSource) -> list[dict[str, Any]]:
    """The per-epoch rows of a run (from its directory, ``metrics.csv`` or ``metrics.jsonl``), numbers as floats."""
    path = metrics_file(source)
    if path.suffix == ".jsonl":
        raw = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.suffix == ".csv":
        with open(path, newline="") as handle:
            raw = list(csv.DictReader(handle))
    else:
        raise ValueError(f"{path}: expected a .csv or .jsonl metrics file")
    rows = [{key: _number(value) for key, value in row.items()} for row in raw]
    if not rows:
        raise ValueError(f"{path} has no epochs yet: nothing to plot")
    return rows


def read_steps(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``steps.jsonl`` in step order (empty when none were logged)."""
    path = Path(run_dir) / "steps.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill; the checkpointed part is intact
    by_step = {r.get("step", 0): r for r in rows}  # a step logged twice (a run restarted from scratch): the last
    return [by_step[step] for step in sorted(by_step)]


def write_run_config(run_dir: Path, config: dict[str, Any], derived: dict[str, Any]) -> None:
    """Write ``config.json``: the resolved configuration and what was derived from it (atomically)."""
    document = {"config": config, "derived": derived}
    path = Path(run_dir) / "config.json"
    tmp = path.with_name(".config.json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


class RunLog:
    """The run directory's metric files (rank 0 only): metrics.csv/jsonl, steps.jsonl, TensorBoard."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                pass
            else:
                self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    @property
    def metrics_jsonl(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    @property
    def steps_jsonl(self) -> Path:
        return self.run_dir / "steps.jsonl"

    def restart(self, history: list[dict[str, Any]], last_step: int) -> None:
        """Rewrite the files to what the checkpoint knows (drops rows a killed run wrote after it)."""
        if not self.enabled:
            return
        self._write_rows(history)
        kept = [row for row in read_steps(self.run_dir) if row.get("step", 0) <= last_step]
        self.steps_jsonl.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        self.metrics_jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        with open(self.run_dir / "metrics.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def epoch(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        self._write_rows(history)
        if self.writer is not None:
            row = history[-1]
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)) and value is not None:
                    self.writer.add_scalar(f"epoch/{key}", value, row["epoch"])
            self.writer.flush()

    def step(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.steps_jsonl, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key in ("loss", "grad_norm", "lr", "zero_fraction"):
                if row.get(key) is not None:
                    self.writer.add_scalar(f"step/{key}", row[key], row["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

