"""The training runs of a study: planning them, running each once, skipping or resuming the ones done.

Every run is an ordinary training run (:func:`inception_resnet.training.train`) in ``OUT/runs/<key>``, with
``resume="auto"``: a run interrupted half-way continues from its last checkpoint. When a run ends the
study writes ``study_run.json`` beside its metrics; a run directory holding that file, for the same
settings, is not trained again. Settings that do not change the result (threads, progress bar, workers,
device) may differ between sessions; any other difference is an error naming the settings, so that a
report never mixes runs of two configurations. With ``parallel`` > 1, that many runs train at once, each
in its own process (spawned; its progress bar off), in the planned order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training import NonFiniteLossError, TrainConfig, TrainSummary, train
from ..training.rundir import read_config_document, read_derived, read_metrics, read_steps, read_validations
from .report import write_json

MARKER = "study_run.json"
NEUTRAL_SETTINGS = ("run_dir", "resume", "progress", "threads", "num_workers", "tensorboard", "device")

TrainFn = Callable[[TrainConfig], TrainSummary]


@dataclass
class RunSpec:
    """One planned run: its key (directory name), model, seed, group (pair or scale) and settings."""

    key: str
    model: str
    seed: int
    group: str
    settings: dict[str, Any]
    run_dir: Path


@dataclass
class RunRecord:
    """What became of a run: ``completed``, ``diverged`` (non-finite loss) or ``not run`` (time limit)."""

    spec: RunSpec
    status: str
    message: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict)
    trained_now: bool = False
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    _steps: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "diverged")

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The run's ``steps.jsonl`` rows (read once, when first asked for; empty when it has none)."""
        if self._steps is None:
            self._steps = read_steps(self.spec.run_dir) if self.spec.run_dir.is_dir() else []
        return self._steps


def run_entry(record: RunRecord) -> dict[str, Any]:
    """A run for a report's summary.json: key, status, the study's settings and what training derived."""
    return {
        "key": record.spec.key,
        "model": record.spec.model,
        "seed": record.spec.seed,
        "group": record.spec.group,
        "status": record.status,
        "message": record.message,
        "settings": comparable(record.spec.settings),
        "derived": {k: v for k, v in record.derived.items() if k != "classes"},
    }


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a run's result, JSON-normalised (tuples become lists)."""
    return json.loads(json.dumps({k: v for k, v in settings.items() if k not in NEUTRAL_SETTINGS}))


def differences(recorded: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """``name: recorded -> wanted`` for each wanted setting the recorded ones hold otherwise."""
    wanted = comparable(wanted)
    return [f"{k}: {recorded.get(k)!r} -> {v!r}" for k, v in wanted.items() if recorded.get(k) != v]


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MARKER
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def write_marker(spec: RunSpec, status: str, message: str, summary: dict[str, Any]) -> None:
    """Write the run's ``study_run.json`` (whole or not at all): its key, status, settings and summary."""
    if not is_main_process():
        return
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "key": spec.key,
        "status": status,
        "message": message,
        "settings": comparable(spec.settings),
        "summary": summary,
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(spec.run_dir / MARKER, document)


def load_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch rows of a run (empty when it has none)."""
    try:
        return read_metrics(run_dir)
    except (FileNotFoundError, ValueError):
        return []


def load_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of the run's ``validation.jsonl`` (step 0 and every N steps; empty when it has none)."""
    return read_validations(run_dir)


def load_derived(run_dir: Path) -> dict[str, Any]:
    """What the run's ``config.json`` derived (classes, input size, parameters...), or ``{}``."""
    return read_derived(run_dir)


def check_not_conflicting(spec: RunSpec) -> None:
    """Raise a ValueError when ``spec.run_dir`` holds a run of other settings."""
    document = read_config_document(spec.run_dir)  # every setting, resolved: a setting spelled out is no change
    recorded = document.get("config") if document else None
    if recorded is None:
        marker = read_marker(spec.run_dir)
        recorded = marker["settings"] if marker else None
    if recorded is None:
        return
    changed = differences(recorded, spec.settings)
    if changed:
        raise ValueError(
            f"{spec.run_dir} holds a run with other settings ({'; '.join(changed)}); the study would mix two "
            "configurations. Choose another --out directory, or delete that run directory to redo it"
        )


def existing_record(spec: RunSpec) -> RunRecord | None:
    """The record of a finished run of the same settings, or None when it still has to be trained."""
    check_not_conflicting(spec)
    marker = read_marker(spec.run_dir)
    if marker is None or marker.get("status") not in ("completed", "diverged"):
        return None
    return RunRecord(
        spec,
        marker["status"],
        marker.get("message", ""),
        load_rows(spec.run_dir),
        load_derived(spec.run_dir),
        evaluations=load_evaluations(spec.run_dir),
    )


def execute(spec: RunSpec, train_fn: TrainFn = train) -> RunRecord:
    """Train one run (resuming it when it was interrupted) unless it is already done; returns its record.

    A non-finite loss ends the run as ``diverged`` (recorded, not retried). A run stopped by a signal has
    checkpointed; the study then stops too (KeyboardInterrupt) and continues from there when started again.
    """
    done = existing_record(spec)
    if done is not None:
        return done
    config = TrainConfig.from_dict({**spec.settings, "run_dir": str(spec.run_dir), "resume": "auto"})
    try:
        summary = train_fn(config)
    except NonFiniteLossError as err:
        write_marker(spec, "diverged", str(err), {})
        return RunRecord(
            spec,
            "diverged",
            str(err),
            load_rows(spec.run_dir),
            load_derived(spec.run_dir),
            True,
            load_evaluations(spec.run_dir),
        )
    if summary.status != "completed":
        raise KeyboardInterrupt(f"run {spec.key} {summary.status}; start the study again to continue it")
    facts = {
        "seconds": summary.seconds,
        "images_per_second": summary.images_per_second,
        "global_step": summary.global_step,
        "epochs": summary.epochs_completed,
    }
    write_marker(spec, "completed", "", facts)
    return RunRecord(
        spec,
        "completed",
        "",
        list(summary.history) or load_rows(spec.run_dir),
        load_derived(spec.run_dir),
        True,
        list(summary.evaluations) or load_evaluations(spec.run_dir),
    )


def run_all(
    specs: list[RunSpec],
    *,
    train_fn: TrainFn = train,
    time_limit_s: float | None = None,
    log: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    parallel: int = 1,
) -> list[RunRecord]:
    """Execute the runs in order; once ``time_limit_s`` has passed, the runs not started are ``not run``.

    Under torchrun the time limit is ignored: each process would decide on its own clock, and processes
    that disagreed would wait for each other forever; so is ``parallel`` (torchrun already runs processes).
    """
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if time_limit_s is not None and distributed:
        _say(log, "time limit ignored under torchrun (the processes could disagree on it)")
        time_limit_s = None
    if parallel > 1 and not distributed:
        return run_parallel(specs, parallel, train_fn=train_fn, time_limit_s=time_limit_s, log=log, clock=clock)
    started = clock()
    records = []
    for index, spec in enumerate(specs, 1):
        done = existing_record(spec)
        if done is not None:
            records.append(done)
            _say(log, f"[{index}/{len(specs)}] {spec.key}: done before ({done.status}), skipped")
            continue
        spent = clock() - started
        if time_limit_s is not None and spent > time_limit_s:
            records.append(RunRecord(spec, "not run", f"time limit of {time_limit_s:.0f} s reached"))
            _say(log, f"[{index}/{len(specs)}] {spec.key}: not run (time limit {time_limit_s:.0f} s reached)")
            continue
        _say(log, f"[{index}/{len(specs)}] {spec.key}: training ({spec.group})")
        tick = clock()
        record = execute(spec, train_fn)
        records.append(record)
        _say(log, f"[{index}/{len(specs)}] {spec.key}: {record.status} in {clock() - tick:.0f} s")
    return records


def _execute_quietly(spec: RunSpec, train_fn: TrainFn) -> RunRecord:
    """:func:`execute` in a worker process: no progress bar (several runs share the terminal)."""
    quiet = RunSpec(spec.key, spec.model, spec.seed, spec.group, {**spec.settings, "progress": False}, spec.run_dir)
    record = execute(quiet, train_fn)
    record.spec = spec
    return record


def run_parallel(
    specs: list[RunSpec],
    workers: int,
    *,
    train_fn: TrainFn = train,
    time_limit_s: float | None = None,
    log: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[RunRecord]:
    """:func:`run_all` with ``workers`` runs at a time, each in a spawned process; records in planned order.

    ``train_fn`` must be picklable (a module-level function). A run is started only while the time limit
    has not passed; a run stopped by a signal stops the study (KeyboardInterrupt) once the others return.
    """
    started = clock()
    records: dict[int, RunRecord] = {}
    queue = []
    for index, spec in enumerate(specs):
        done = existing_record(spec)
        if done is not None:
            records[index] = done
            _say(log, f"[{index + 1}/{len(specs)}] {spec.key}: done before ({done.status}), skipped")
        else:
            queue.append(index)
    running: dict[Future, tuple[int, float]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        while queue or running:
            while queue and len(running) < workers:
                index = queue.pop(0)
                spec = specs[index]
                if time_limit_s is not None and clock() - started > time_limit_s:
                    records[index] = RunRecord(spec, "not run", f"time limit of {time_limit_s:.0f} s reached")
                    _say(
                        log, f"[{index + 1}/{len(specs)}] {spec.key}: not run (time limit {time_limit_s:.0f} s reached)"
                    )
                    continue
                _say(log, f"[{index + 1}/{len(specs)}] {spec.key}: training ({spec.group})")
                running[pool.submit(_execute_quietly, spec, train_fn)] = (index, clock())
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index, tick = running.pop(future)
                records[index] = future.result()
                _say(
                    log,
                    f"[{index + 1}/{len(specs)}] {specs[index].key}: {records[index].status} in {clock() - tick:.0f} s",
                )
    return [records[i] for i in range(len(specs))]


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None and is_main_process():
        log(message)


def collect_records(
    specs: list[RunSpec],
    out: Path,
    study: dict[str, Any],
    *,
    report_only: bool,
    train_fn: TrainFn,
    time_limit_s: float | None,
    log: Callable[[str], None] | None,
    parallel: int = 1,
) -> list[RunRecord]:
    """Record the study in ``out/study.json`` (rank 0), then train the runs not done yet; with ``report_only``,
    train nothing and collect the runs that exist (the others are marked "not run").

    Nothing is written before every run directory is known to hold no run of other settings, and
    ``report_only`` without a single finished run is an error (nothing is created)."""
    for spec in specs:  # refuse before study.json changes: it names the command that made the runs
        check_not_conflicting(spec)
    if report_only:
        records = [existing_record(s) or RunRecord(s, "not run", "not trained yet") for s in specs]
        if all(r.status == "not run" for r in records):
            raise ValueError(
                f"--report-only: {out} holds no finished run of this study; run the same command "
                "without --report-only to train them first"
            )
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        if not report_only or not (out / "study.json").is_file():
            write_json(out / "study.json", study)
    if report_only:
        return records
    return run_all(specs, train_fn=train_fn, time_limit_s=time_limit_s, log=log, parallel=parallel)
