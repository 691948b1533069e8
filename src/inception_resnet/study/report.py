"""Small writers shared by the study reports: Markdown tables, number formatting, CSV/JSON files, headers.

Every file goes through :func:`inception_resnet.files.write_text_atomic`: a reader (or a study stopped
half-way) sees the old file or the new one, never a part.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..environment import environment_lines  # noqa: F401  (used by the study's reports)
from ..files import write_text_atomic
from ..markdown import table as md_table  # noqa: F401  (the study's name for it)

PAPER = (
    'Szegedy, Ioffe, Vanhoucke, Alemi 2016, "Inception-v4, Inception-ResNet and the Impact of Residual '
    'Connections on Learning"'
)


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    """A number for a table, ``-`` when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}{suffix}"


def write_csv(path: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """Rows (dicts) to a CSV file with the union of their keys as columns, in first-seen order."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue(), "study table")


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=_jsonable) + "\n", "study data")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """A text file of a study (a report, the verdict lines), written whole or not at all."""
    return write_text_atomic(path, text, "study report")


def write_report(out: str | os.PathLike, lines: list[str], not_run: Sequence[str]) -> Path:
    """Write ``out/report.md`` from ``lines``; ``not_run`` (the keys of runs not trained yet) adds a note at the end."""
    if not_run:
        lines = [
            *lines,
            f"**Incomplete**: {len(not_run)} run(s) not run ({', '.join(not_run)}); start the same "
            "command again to train them (finished runs are skipped).",
            "",
        ]
    return write_text(Path(out) / "report.md", "\n".join(lines))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
