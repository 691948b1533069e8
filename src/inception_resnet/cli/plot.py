"""``inception-resnet plot RUN [RUN ...] -o curves.png``: training curves of one or more runs."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw training curves (loss, val top-1/top-5 error vs epoch and time) of runs to a PNG",
        description="Draw the training curves of one or more runs (directories or metrics.csv/.jsonl files).",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directory or metrics file")
    parser.add_argument("-o", "--output", default="curves.png", help="PNG file to write (default: curves.png)")
    parser.add_argument(
        "--label",
        action="append",
        dest="labels",
        metavar="NAME",
        help="legend name per run, in order (default: the directory names)",
    )
    parser.add_argument("--title", default=None, help="figure title (default: none)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.plots import plot_run

    path = plot_run(args.runs, args.output, labels=args.labels, title=args.title)
    print(f"wrote {path}")
    return 0
