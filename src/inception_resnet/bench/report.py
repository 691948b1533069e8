"""Benchmark reports: results as a Markdown table, a JSON document, and the files that hold both."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..environment import environment_lines
from ..markdown import table

# -- reports ----------------------------------------------------------------------------------------------
from .harness import Result


def _fmt(value: float | None, digits: int = 1, scale: float = 1.0) -> str:
    return "" if value is None else f"{value * scale:,.{digits}f}"


def _sig(value: float | None) -> str:
    """Three significant digits, without exponent for the usual ranges."""
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _fallback(result: Result) -> str:
    """The plan of a precision candidate that could not run its precision on this CPU (else nothing)."""
    plan = str(result.extra.get("plan") or "")
    return plan if "was asked for" in plan else ""


def to_markdown(results: list[Result]) -> str:
    """A markdown table of results, one row per candidate, grouped by workload."""
    header = [
        "workload",
        "candidate",
        "img/s",
        "ms/batch (min-max)",
        "TFLOP/s",
        "MFU %",
        "peak GiB",
        "x baseline",
        "max abs diff",
        "setup s",
        "note",
    ]
    rows = []
    for r in results:
        spread = f"{_fmt(r.ms_per_batch, 2)} ({_fmt(r.ms_min, 2)}-{_fmt(r.ms_max, 2)})" if r.ms_per_batch else ""
        ratio = f"{r.ratio:.2f}x {r.baseline}" if r.ratio is not None else ""
        diff = f"{r.max_abs_diff:.1e}" if r.max_abs_diff is not None else ""
        rows.append(
            [
                r.workload,
                f"`{r.candidate}`",
                _fmt(r.img_s),
                spread,
                _sig(r.tflops),
                _fmt(r.mfu, 1, 100.0),
                _fmt(r.peak_mem_gib, 2),
                ratio,
                diff,
                _fmt(r.setup_s),
                r.error or _fallback(r),
            ]
        )
    return table(header, rows)


def document(results: list[Result], env: dict[str, Any]) -> dict[str, Any]:
    """The JSON results document: environment and rows."""
    return {"environment": env, "results": [asdict(r) for r in results]}


def markdown_document(results: list[Result], env: dict[str, Any], title: str = "Benchmark") -> str:
    """Environment as a list, then the table: the format of the files under ``docs/results/``."""
    return "\n".join([f"# {title}", "", *environment_lines(env), "", to_markdown(results), ""])


def write_results(out: str | os.PathLike, stem: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write ``<stem>.md`` and ``<stem>.json`` into the folder ``out`` (created); returns the markdown path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    path = folder / f"{stem}.md"
    path.write_text(markdown)
    return path


def publish(lines: list[str], out: str | os.PathLike | None, stem: str, data: dict[str, Any]) -> str:
    """A benchmark script's markdown from ``lines``: printed, and with ``out`` written beside ``data`` as
    ``<stem>-<date>.md`` and ``.json`` (:func:`write_results`); returns the markdown."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        write_results(out, f"{stem}-{time.strftime('%Y-%m-%d')}", text, data)
    return text
