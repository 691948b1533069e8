"""Training a study's runs several at a time, each in its own process (``jobs`` > 1).

On a CPU a run on one thread uses a core better than a run on two threads (small feature maps leave
little work to split), so on a machine of ``N`` cores ``N`` one-thread runs at once finish a grid sooner
than one ``N``-thread run after another. :func:`run_pool` keeps ``jobs`` runs going (fresh ``spawn``
processes, so no state leaks between runs), in plan order; each run is an ordinary
:func:`~inception_resnet.study.runs.execute` call, so finished runs are skipped and interrupted ones resume.
With ``jobs`` 1, or under torchrun, it is :func:`~inception_resnet.study.runs.run_all`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from ..training import train
from .runs import RunRecord, RunSpec, TrainFn, execute, existing_record, is_main_process, run_all


def run_pool(
    specs: list[RunSpec],
    *,
    jobs: int = 1,
    train_fn: TrainFn = train,
    time_limit_s: float | None = None,
    log: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> list[RunRecord]:
    """Execute the runs, ``jobs`` at a time; once ``time_limit_s`` has passed, no new run starts.

    ``train_fn`` must be picklable (a module-level function or an instance of a module-level class).
    A run that fails stops the study with its error once the runs in flight have ended.
    """
    if jobs <= 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return run_all(specs, train_fn=train_fn, time_limit_s=time_limit_s, log=log, clock=clock)
    total = len(specs)
    records: dict[int, RunRecord] = {}
    waiting: list[int] = []
    for index, spec in enumerate(specs):
        done = existing_record(spec)
        if done is not None:
            records[index] = done
            _say(log, f"[{index + 1}/{total}] {spec.key}: done before ({done.status}), skipped")
        else:
            waiting.append(index)
    started = clock()
    running: dict[Future, tuple[int, float]] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        while waiting or running:
            while waiting and len(running) < jobs:
                index = waiting.pop(0)
                spec = specs[index]
                if time_limit_s is not None and clock() - started > time_limit_s:
                    records[index] = RunRecord(spec, "not run", f"time limit of {time_limit_s:.0f} s reached")
                    _say(log, f"[{index + 1}/{total}] {spec.key}: not run (time limit {time_limit_s:.0f} s reached)")
                    continue
                _say(log, f"[{index + 1}/{total}] {spec.key}: training ({spec.group})")
                running[pool.submit(execute, spec, train_fn)] = (index, clock())
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index, tick = running.pop(future)
                record = future.result()
                records[index] = record
                _say(log, f"[{index + 1}/{total}] {specs[index].key}: {record.status} in {clock() - tick:.0f} s")
    return [records[i] for i in range(total)]


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None and is_main_process():
        log(message)
