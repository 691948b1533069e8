"""Small writers shared by the study reports: Markdown tables, number formatting, CSV/JSON files, headers."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PAPER = "Szegedy, Ioffe, Vanhoucke, Alemi 2016, \"Inception-v4, Inception-ResNet and the Impact of Residual " \
        "Connections on Learning\""


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A number for a table, ``-`` when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows (dicts) to a CSV file with the union of their keys as columns, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    out = Path(path)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return out


def write_json(path: str | os.PathLike, data: Any) -> Path:
    out = Path(path)
    out.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def environment_lines(env: dict[str, Any]) -> list[str]:
    """The report header's bullet list: date, machine, device, versions, command."""
    device = f"GPU: {env['gpu']} (x{env.get('gpu_count', 1)}), CUDA {env.get('cuda')}" if env.get("gpu") else \
        f"CPU only: {env.get('cpu')}, {env.get('cpu_count')} logical cores"
    lines = [
        f"- Date: {env.get('date', '?')}",
        f"- Machine: {device}; {env.get('platform', '')}",
        f"- Versions: inception-resnet {env.get('inception_resnet')}, torch {env.get('torch')}, torchvision "
        f"{env.get('torchvision')}, Python {env.get('python')}",
    ]
    if env.get("command"):
        lines.append(f"- Command: `{env['command']}`")
    return lines
