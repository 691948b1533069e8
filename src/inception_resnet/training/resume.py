"""Taking the run directory for a run and deciding which checkpoint, if any, the run resumes from.

:meth:`RunDirectory.claim` creates and locks the directory (:class:`~.rundir.RunLock`), checks that it can be
written and decides, on rank 0, what to resume; every process gets the same decision or the same error.
A directory holding checkpoints is never silently started over (:meth:`RunDirectory.resume_decision`).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ..files import check_output_dir
from .checkpoint import CheckpointError, CheckpointManager, verify_checkpoint
from .config import TrainConfig
from .distributed import DistContext, barrier, broadcast_object, gather_objects, restart_count
from .rundir import RunDirectoryBusy, RunLock


class RunDirectory:
    """A run's directory: its path, its lock (rank 0), its checkpoints, and the checkpoints read and written.

    ``resume_path`` is the checkpoint the run resumed from (None for a fresh start); ``last_checkpoint`` the
    newest one this run wrote.
    """

    def __init__(self, config: TrainConfig, ctx: DistContext) -> None:
        run_dir = config.run_dir
        if run_dir is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            run_dir = broadcast_object(f"runs/{config.model}-{config.recipe}-{stamp}", ctx)
        self.path = Path(run_dir)
        self.keep_last = config.keep_last
        self.lock: RunLock | None = None
        self.checkpoints = CheckpointManager(self.path / "checkpoints", config.keep_last, clean_temporary=False)
        self.resume_path: str | None = None
        self.last_checkpoint: Path | None = None

    def claim(self, resume: str | None, ctx: DistContext, say: Callable[[str], None]) -> None:
        """Create and lock the directory, check it can be written, and decide what to resume (rank 0).

        Every process gets the same decision, or the same error: a directory owned by a live run
        (:class:`~.rundir.RunDirectoryBusy`), one that cannot be written, or a resume that would lose data.
        """
        # torchrun restarted the workers of some node after a failure (a fresh agent's workers count 0)
        restarted = max(gather_objects(restart_count(), ctx)) > 0
        decision: tuple[str | None, str | None, str | None] = (None, None, None)
        if ctx.is_main:
            decision = self.own(resume, restarted, say)
        kind, message, self.resume_path = broadcast_object(decision, ctx)  # one decision for every process
        if kind is not None:
            self.release()
            error = {"busy": RunDirectoryBusy, "write": OSError}.get(kind, ValueError)
            raise error(message)
        barrier(ctx)

    def own(
        self, resume: str | None, restarted: bool, say: Callable[[str], None]
    ) -> tuple[str | None, str | None, str | None]:
        """(error kind, error message, checkpoint to resume from): lock, probe and decide, on rank 0."""
        try:
            check_output_dir(self.path, "the run directory", create=True)
            self.lock = RunLock(self.path)
            note = self.lock.acquire()
            if note:
                say(f"run directory {self.path}: {note}")
            # stray temporary files of a killed run go only once the directory is ours
            self.checkpoints = CheckpointManager(self.path / "checkpoints", self.keep_last, clean_temporary=True)
            check_output_dir(self.checkpoints.directory, "checkpoints", create=True)
        except RunDirectoryBusy as error:
            return "busy", str(error), None
        except OSError as error:
            return "write", str(error), None
        error_text, path = self.resume_decision(resume, restarted)
        return ("resume" if error_text else None), error_text, path

    def release(self) -> None:
        """Give up the directory's lock (rank 0; nothing elsewhere)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def newest_checkpoint(self) -> Path | None:
        """The newest checkpoint of this run (written or resumed from); every one is finite."""
        return self.last_checkpoint or (Path(self.resume_path) if self.resume_path else None)

    def resume_decision(self, resume: str | None, restarted: bool = False) -> tuple[str | None, str | None]:
        """(an error to raise, the checkpoint to resume from), decided by rank 0.

        Never a silent fresh start over an earlier run: a directory holding checkpoints is continued only with
        ``resume``, ``"auto"`` with none of them intact is an error, and a checkpoint of another run is not
        resumed into a directory that holds checkpoints of its own (its ``best.pt`` would be overwritten).
        """
        if resume is None and (restarted or restart_count() > 0):
            resume = "auto"  # torchrun restarted the workers after a failure: continue, never start over
        manager = self.checkpoints
        earlier = manager.checkpoints() or manager.best_path.exists()
        if resume is None and earlier:
            return (
                f"the run directory {self.path} already holds checkpoints of an earlier run; pass "
                "--resume auto to continue it, or choose a new --run-dir"
            ), None
        if resume is None:
            return None, None
        if resume != "auto":
            source = Path(resume).resolve()
            if earlier and not source.is_relative_to(manager.directory.resolve()):
                return (
                    f"cannot resume {resume} in {self.path}: that directory holds checkpoints of another "
                    f"run, whose best.pt this run would overwrite; resume it in its own run directory "
                    f"({source.parent.parent}) or choose a new --run-dir"
                ), None
            return None, resume
        path, bad = manager.latest_valid()
        if path is None and (bad or manager.best_path.exists()):
            return self.no_intact_checkpoint(bad), None
        for bad_path, reason in bad:
            warnings.warn(f"skipping damaged checkpoint {bad_path}: {reason}", stacklevel=2)
            os.replace(bad_path, bad_path.with_name(bad_path.name + ".damaged"))
        return None, None if path is None else str(path)

    def no_intact_checkpoint(self, bad: list[tuple[Path, str]]) -> str:
        """The error of ``--resume auto`` when every rolling checkpoint is damaged (nothing is changed)."""
        lines = [
            f"--resume auto found no intact checkpoint in {self.checkpoints.directory}, so it stops rather "
            "than start over:"
        ]
        lines += [f"  {path.name}: {reason}" for path, reason in bad]
        best = self.checkpoints.best_path
        if best.exists():
            try:
                verify_checkpoint(best)
            except (CheckpointError, OSError) as error:
                lines.append(f"  best.pt: {error}")
            else:
                lines.append(
                    f"best.pt is intact (the best epoch's, not the newest): resume from it with --resume "
                    f"{best}, or start afresh with a new --run-dir"
                )
                return "\n".join(lines)
        lines.append("start afresh with a new --run-dir (this one is kept as it is)")
        return "\n".join(lines)
