"""The run directory: the one writer and the one reader of ``config.json``, ``metrics.jsonl``/``.csv`` and
``steps.jsonl`` (the layout is described in :mod:`inception_resnet.training.trainer`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from typing import Any


def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The configuration a run directory recorded (``config.json``'s ``config``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a training run directory?")
    return dict(json.loads(path.read_text())["config"])



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
        kept = []
        if self.steps_jsonl.is_file():
            for line in self.steps_jsonl.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    row = json.loads(line)
                    if row.get("step", 0) <= last_step:
                        kept.append(line)
        self.steps_jsonl.write_text("".join(line + "\n" for line in kept))

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

