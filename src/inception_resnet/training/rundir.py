"""The run directory: the one writer and the one reader of ``config.json``, ``metrics.jsonl``/``.csv``,
``steps.jsonl`` and ``validation.jsonl`` (the layout is described in :mod:`inception_resnet.training.trainer`),
and its owner's lock.

:class:`RunLock` makes a run directory belong to one run at a time: ``run.lock`` holds the owner's PID, host,
start time and torchrun job, and is locked with ``flock`` for as long as the run lives (the kernel drops the
lock when the process dies, however it dies). A second run on the same directory stops at once with a
:class:`RunDirectoryBusy` error naming the first. A lock left by a run that is gone is taken over: on the
same host when its process no longer holds it (or its PID is dead where ``flock`` is not supported), and from
any host when it was written by an earlier attempt of the same torchrun job (``TORCHELASTIC_RUN_ID``). A lock
from another host and another job is never taken over automatically: the message says which file to delete
once that run is known to be gone. Files are rewritten whole or not at all (:mod:`inception_resnet.files`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..files import write_text_atomic

try:
    import fcntl
except ImportError:  # not on Windows: the PID check alone
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "run.lock"


class RunDirectoryBusy(RuntimeError):
    """Another run owns the run directory (its lock is held); the message names it."""


class _Replaced(Exception):
    """The lock file was removed or replaced while being taken: open it again."""


def process_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def describe_owner(owner: dict[str, Any]) -> str:
    """``PID 123 on host h (started 2024-01-01 10:00:00, torchrun job j)`` from a lock record."""
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    job = f", torchrun job {owner['torchrun_job']}" if owner.get("torchrun_job") else ""
    return f"PID {owner.get('pid', '?')} on host {owner.get('host', '?')} (started {when}{job})"


class RunLock:
    """The exclusive ownership of a run directory (see the module docstring); rank 0 holds it."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = None

    def record(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "torchrun_job": os.environ.get("TORCHELASTIC_RUN_ID"),
        }

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over, raises RunDirectoryBusy if held."""
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                from ..files import write_error

                raise write_error(error, "the lock file of the run directory", self.path) from None
            try:
                note = self._take(fd)
            except _Replaced:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
            return note
        raise RunDirectoryBusy(f"could not take the lock {self.path}: other runs keep replacing it")

    def _take(self, fd: int) -> str | None:
        owner = self._read(fd)
        locked = self._flock(fd)
        if locked is False:
            raise RunDirectoryBusy(self.busy_message(owner))
        try:
            replaced = os.fstat(fd).st_ino != os.stat(self.path).st_ino  # the owner removed it as we opened it
        except FileNotFoundError:
            replaced = True
        if replaced:
            raise _Replaced
        owner = self._read(fd)
        note = None
        if owner:
            mine = self.record()
            same_host = owner.get("host") == mine["host"]
            same_job = bool(mine["torchrun_job"]) and owner.get("torchrun_job") == mine["torchrun_job"]
            if (
                locked is None
                and same_host
                and process_alive(int(owner.get("pid", 0) or 0))
                and owner.get("pid") != os.getpid()
            ):
                raise RunDirectoryBusy(self.busy_message(owner))
            if not (same_host or same_job):
                raise RunDirectoryBusy(
                    self.busy_message(owner) + f". It was taken on another host, so this run cannot tell whether "
                    f"that run is still alive: if it is gone, delete {self.path} and start again"
                )
            if owner.get("pid") != os.getpid():
                why = "an earlier attempt of this torchrun job" if same_job else "a run that is no longer running"
                note = f"took over the lock of {describe_owner(owner)}: {why}"
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(self.record()) + "\n").encode())
        os.fsync(fd)
        return note

    def _flock(self, fd: int) -> bool | None:
        """True when locked, False when another process holds it, None when the file system cannot lock."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as error:
            if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise
        return True

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        with contextlib.suppress(ValueError):
            owner = json.loads(b"".join(chunks).decode("utf8", "replace") or "{}")
            return owner if isinstance(owner, dict) else {}
        return {}

    def busy_message(self, owner: dict[str, Any]) -> str:
        who = describe_owner(owner) if owner else "another process"
        return (
            f"the run directory {self.run_dir} is in use by another run: {who} holds {self.path}; wait for "
            "it to finish (or stop it), or choose another --run-dir"
        )

    def release(self) -> None:
        """Give the directory up: the lock file is removed, then the lock dropped."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


RunSource = str | os.PathLike


def read_config_document(run_dir: RunSource) -> dict[str, Any] | None:
    """``config.json`` of a run directory (``config`` and ``derived``), or None when there is none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path} is damaged (not JSON text: {err}); restore it, or start afresh with a new --run-dir"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise ValueError(
            f"{path} is not a run's configuration (a JSON object with a 'config' object); restore it, "
            "or start afresh with a new --run-dir"
        )
    return document


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


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        raw = []
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else {}
            except json.JSONDecodeError as err:
                row = err
            if not isinstance(row, dict):
                raise ValueError(
                    f"{path}, line {number}: not a JSON object of metrics ({shorten(str(row))}); the "
                    "file is damaged: remove that line to read the others"
                )
            if row:
                raw.append(row)
    elif path.suffix == ".csv":
        with open(path, newline="") as handle:
            raw = list(csv.DictReader(handle))
    else:
        raise ValueError(f"{path}: expected a .csv or .jsonl metrics file")
    rows = [{key: _number(value) for key, value in row.items()} for row in raw]
    if not rows:
        raise ValueError(f"{path} has no epochs yet: nothing to plot")
    return rows


def read_steps(run_dir: str | os.PathLike, name: str = "steps.jsonl") -> list[dict[str, Any]]:
    """The rows of a run's ``steps.jsonl`` (or another per-step file) in step order (empty when none)."""
    path = Path(run_dir) / name
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


def read_validations(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``validation.jsonl`` (step 0, then every N steps; empty when it has none)."""
    return read_steps(run_dir, "validation.jsonl")


def write_run_config(run_dir: Path, config: dict[str, Any], derived: dict[str, Any]) -> None:
    """Write ``config.json``: the resolved configuration and what was derived from it (atomically)."""
    document = {"config": config, "derived": derived}
    write_text_atomic(Path(run_dir) / "config.json", json.dumps(document, indent=2) + "\n", "the run configuration")


class RunLog:
    """The run directory's metric files (rank 0 only): metrics.csv/jsonl, steps.jsonl, validation.jsonl,
    TensorBoard."""

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

    @property
    def validation_jsonl(self) -> Path:
        return self.run_dir / "validation.jsonl"

    def restart(
        self, history: list[dict[str, Any]], last_step: int, evaluations: list[dict[str, Any]] | None = None
    ) -> None:
        """Rewrite the files to what the checkpoint knows (drops rows a killed run wrote after it)."""
        if not self.enabled:
            return
        self._write_rows(history)
        if evaluations or self.validation_jsonl.is_file():
            write_text_atomic(
                self.validation_jsonl,
                "".join(json.dumps(row) + "\n" for row in evaluations or []),
                "the validation log",
            )
        kept = [json.dumps(row) for row in read_steps(self.run_dir) if row.get("step", 0) <= last_step]
        write_text_atomic(self.steps_jsonl, "".join(line + "\n" for line in kept), "the step log")

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        write_text_atomic(self.metrics_jsonl, "".join(json.dumps(row) + "\n" for row in rows), "the metrics")
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(self.run_dir / "metrics.csv", table.getvalue(), "the metrics")

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

    def validation(self, row: dict[str, Any]) -> None:
        """One row of validation.jsonl (``validate_every_steps``)."""
        if not self.enabled:
            return
        with open(self.validation_jsonl, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for key, value in row.items():
                if key.endswith(("_top1_error", "_loss")) and value is not None:
                    self.writer.add_scalar(f"validation/{key}", value, row["step"])

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
