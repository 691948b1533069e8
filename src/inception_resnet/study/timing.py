"""Training step times measured with each network alone on the machine, for seconds that mean seconds.

Study runs train two (or more) at a time to save wall time, so their own clocks measure the partner run's
interference as much as the network: per-epoch throughput swings with whatever shares the cores. The study
therefore times every distinct network once more, *after* all its runs and one at a time: a short ordinary
training run (same settings, threads, data pipeline and batch; no validation) whose per-step wall times
(``steps.jsonl``) give a median seconds per step. The networks are timed in ``TIMING_ROUNDS`` interleaved
rounds (A, B, C, A, B, C, ...), and a network's step time is the median of its rounds' medians, so that a
passing disturbance of the machine moves one round, not the result. Seconds to a level are then steps to it
times that step time.

Entries that differ only in learning rate or gradient clipping share one timing (the same work per step).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..training import train
from ..training.rundir import read_steps
from .runs import RunSpec, TrainFn, run_all

TIMED_STEPS = 40
TIMING_ROUNDS = 3
WARMUP_STEPS = 5
SHARED = ("lr", "seed", "clip_grad_norm", "run_dir", "resume", "progress")  # do not change the work of a step


def timing_key(settings: dict[str, Any]) -> str:
    """The name of a network's timing run: its model and a short hash of the settings that change a step."""
    kept = {k: v for k, v in sorted(settings.items()) if k not in SHARED}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{settings.get('model', 'model')}-{digest}"


def plan_timing(
    entries: dict[str, dict[str, Any]], out_dir: str | Path, *, steps: int = TIMED_STEPS, rounds: int = TIMING_ROUNDS
) -> list[RunSpec]:
    """Short runs of every distinct network among ``entries`` ({entry: training settings}), round after round,
    in ``out/timing/<network>-r<round>``."""
    networks: dict[str, dict[str, Any]] = {}
    for settings in entries.values():
        key = timing_key(settings)
        if key not in networks:
            batch = int(settings.get("batch_size") or 32)
            networks[key] = {
                **settings,
                "seed": 0,
                "epochs": 1,
                "max_train_images": batch * (steps + WARMUP_STEPS),
                "max_val_images": batch,
                "validate_every_steps": 0,
                "validate_spacing": 0.0,
                "validate_every_epochs": 1,
                "bn_recompute_images": 0,
                "log_every_steps": 1,
                "keep_last": 1,
            }
    return [
        RunSpec(
            f"{key}-r{index}", timed.get("model", key), 0, "timing", timed, Path(out_dir) / "timing" / f"{key}-r{index}"
        )
        for index in range(rounds)
        for key, timed in networks.items()
    ]


def seconds_per_step(run_dir: Path) -> tuple[float | None, int]:
    """The median wall time of a timing run's optimiser steps after the first ``WARMUP_STEPS`` (a quarter of
    the steps in a shorter run), and how many steps it is the median of."""
    rows = [r for r in read_steps(run_dir) if r.get("elapsed") is not None and r.get("step")]
    warmup = min(WARMUP_STEPS, max(1, len(rows) // 4))
    durations = [
        b["elapsed"] - a["elapsed"]
        for a, b in zip(rows, rows[1:], strict=False)
        if b["step"] == a["step"] + 1 and a["step"] >= warmup
    ]
    return (statistics.median(durations) if durations else None), len(durations)


def measure_step_times(
    entries: dict[str, dict[str, Any]],
    out_dir: str | Path,
    *,
    train_fn: TrainFn = train,
    log: Callable[[str], None] | None = None,
    report_only: bool = False,
    steps: int = TIMED_STEPS,
) -> dict[str, dict[str, Any]]:
    """Time every distinct network of ``entries`` alone (one run at a time, in interleaved rounds; done ones are
    kept) and return ``{entry: {"seconds_per_step", "timed_steps", "rounds", "round_seconds", "timing_run"}}``
    (None seconds where not timed yet)."""
    specs = plan_timing(entries, out_dir, steps=steps)
    if not report_only:
        run_all(specs, train_fn=train_fn, log=log, parallel=1)
    per_round: dict[str, list[tuple[float | None, int]]] = {}
    for spec in specs:
        key = spec.key.rsplit("-r", 1)[0]
        per_round.setdefault(key, []).append(seconds_per_step(spec.run_dir) if spec.run_dir.is_dir() else (None, 0))
    found = {}
    for key, results in per_round.items():
        medians = [seconds for seconds, _ in results if seconds is not None]
        found[key] = {
            "seconds_per_step": statistics.median(medians) if medians else None,
            "timed_steps": sum(count for _, count in results),
            "rounds": len(medians),
            "round_seconds": medians,
            "timing_run": key,
        }
    return {name: found[timing_key(s)] for name, s in entries.items()}


def scale(steps: Sequence[float | None], seconds_per_step: float | None) -> list[float | None]:
    """Steps to a level turned into seconds at ``seconds_per_step`` (None stays None)."""
    return [None if s is None or seconds_per_step is None else s * seconds_per_step for s in steps]
