"""Markdown tables, the one writer used by evaluation results, benchmark files, study reports and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], *, pad: bool = False) -> str:
    """A GitHub Markdown table; ``pad=True`` aligns the columns for reading in a terminal."""
    header = [str(h) for h in headers]
    body = [[str(c) for c in row] for row in rows]
    for row in body:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells for {len(header)} columns: {row}")
    if pad:
        widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    else:
        widths = [0] * len(header)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) if pad else "---" for w in widths) + "|"
    return "\n".join([line(header), rule, *[line(r) for r in body]])
