"""Checkpoints that survive being killed at any moment.

Writing (:func:`save_checkpoint`): ``torch.save`` into a hidden temporary file in the same directory, a
48-byte integrity footer appended (a magic tag, the payload length and its SHA-256), ``fsync``, then an atomic
``os.replace`` onto the final name and an ``fsync`` of the directory. A process killed mid-write leaves at
most a stray temporary file; the final name always holds either the previous complete file or the new one.

Reading (:func:`load_checkpoint`): the footer and checksum are verified before unpickling, so a truncated or
damaged file is reported as such (naming the newest intact checkpoint beside it) instead of failing deep in
``torch.load`` or, worse, loading silently wrong numbers. The payload is an ordinary ``torch.save`` zip file
and ``torch.load`` ignores the trailing footer, so the files also open with plain ``torch.load`` and with
:func:`inception_resnet.weights.load_weights` (which picks the averaged weights, ``model_ema``, first).

:class:`CheckpointManager` names checkpoints ``last-e<epoch>-s<step>.pt``, keeps the newest ``keep_last``
of them, and points ``best.pt`` (a hard link, or a copy where links are not supported) at the best one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import warnings
from pathlib import Path
from typing import Any

import torch

from ..files import check_free_space, write_error

FORMAT = "inception-resnet-checkpoint"
FORMAT_VERSION = 1
MAGIC = b"IRCKPT\x00\x01"
_FOOTER = struct.Struct("<8sQ32s")
_NAME = re.compile(r"^last-e(\d+)-s(\d+)\.pt$")
_CHUNK = 1 << 22


class CheckpointError(RuntimeError):
    """A checkpoint file is incomplete, damaged or not one of ours."""


class _HashingWriter:
    """File wrapper hashing and counting the bytes ``torch.save`` writes."""

    def __init__(self, file) -> None:  # noqa: ANN001 - any binary file object
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None  # the first write failure (torch.save reports it as its own error)

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self) -> None:
        self.file.flush()


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform / filesystem
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """The hidden file a write to ``path`` goes through (unique per process)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def state_nbytes(obj: Any) -> int:
    """The bytes of the tensors in a (nested) checkpoint state: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_nbytes(v) for v in obj)
    return 0


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` atomically to ``path`` (see the module docstring); returns the path.

    The free space is checked first; a failed write leaves no file behind and raises an OSError naming the
    checkpoint and the cause (no space left, read-only file system, permission denied...).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(error, "checkpoint", path) from None
    check_free_space(path.parent, state_nbytes(state) + (1 << 20), f"the checkpoint {path.name}")
    tmp = temporary_name(path)
    writer = None
    try:
        with open(tmp, "wb") as file:
            writer = _HashingWriter(file)
            torch.save(state, writer)
            file.write(_FOOTER.pack(MAGIC, writer.size, writer.digest.digest()))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        cause = writer.error if writer is not None and writer.error is not None else error
        if isinstance(cause, OSError):
            raise write_error(cause, "checkpoint", path) from None
        raise
    _fsync_directory(path.parent)
    return path


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` (or FileNotFoundError) unless ``path`` is complete and undamaged."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size < _FOOTER.size:
        raise CheckpointError(f"checkpoint {path} is incomplete ({size} bytes): it was cut off while being written")
    with open(path, "rb") as file:
        file.seek(size - _FOOTER.size)
        magic, payload_size, expected = _FOOTER.unpack(file.read(_FOOTER.size))
        if magic != MAGIC:
            raise CheckpointError(
                f"checkpoint {path} is incomplete or was not written by inception-resnet (no integrity footer): "
                "most likely the write was cut off"
            )
        if payload_size != size - _FOOTER.size:
            raise CheckpointError(f"checkpoint {path} is damaged: its length does not match its footer")
        file.seek(0)
        digest = hashlib.sha256()
        remaining = payload_size
        while remaining:
            chunk = file.read(min(_CHUNK, remaining))
            if not chunk:
                raise CheckpointError(f"checkpoint {path} is damaged: it is shorter than its footer says")
            digest.update(chunk)
            remaining -= len(chunk)
    if digest.digest() != expected:
        raise CheckpointError(f"checkpoint {path} is damaged: its SHA-256 checksum does not match its contents")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify and read a checkpoint; a bad file raises :class:`CheckpointError` naming an intact neighbour."""
    path = Path(path)
    try:
        verify_checkpoint(path)
    except CheckpointError as err:
        raise CheckpointError(f"{err}. {_fallback_hint(path)}") from None
    state = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an inception-resnet training checkpoint")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer inception-resnet (format {state['format_version']}); upgrade to read it"
        )
    return state


def _fallback_hint(path: Path) -> str:
    if path.parent.is_dir():
        manager = CheckpointManager(path.parent, clean_temporary=False)
        for other in reversed(manager.checkpoints()):
            if other.resolve() == path.resolve():
                continue
            try:
                verify_checkpoint(other)
            except (CheckpointError, OSError):
                continue
            return f"The checkpoint {other} is intact: resume from it (--resume {other})"
    return "No intact checkpoint was found beside it"


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The global step in a ``last-e<epoch>-s<step>.pt`` name, or None for other names."""
    match = _NAME.match(Path(path).name)
    return int(match.group(2)) if match else None


class CheckpointManager:
    """The ``checkpoints/`` directory of a run: rolling ``last-*`` files and ``best.pt``."""

    def __init__(self, directory: str | os.PathLike, keep_last: int = 3, *, clean_temporary: bool = True) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1 (the previous checkpoint must stay), got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        if clean_temporary and self.directory.is_dir():
            for stray in self.directory.glob(".*.tmp-*"):
                stray.unlink(missing_ok=True)

    @property
    def best_path(self) -> Path:
        return self.directory / "best.pt"

    def path_for(self, epoch: int, step: int) -> Path:
        return self.directory / f"last-e{epoch:04d}-s{step:09d}.pt"

    def checkpoints(self) -> list[Path]:
        """The ``last-*`` checkpoints, oldest step first."""
        if not self.directory.is_dir():
            return []
        found = [p for p in self.directory.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: checkpoint_step(p) or 0)

    def save(self, state: dict[str, Any], *, epoch: int, step: int, is_best: bool = False) -> Path:
        """Write a new checkpoint, update ``best.pt`` if asked, then drop the ones beyond ``keep_last``."""
        path = save_checkpoint(state, self.path_for(epoch, step))
        if is_best:
            self._point_best_at(path)
        for old in self.checkpoints()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def _point_best_at(self, path: Path) -> None:
        tmp = temporary_name(self.best_path)
        tmp.unlink(missing_ok=True)
        try:
            try:
                os.link(path, tmp)
            except OSError:
                shutil.copyfile(path, tmp)
                with open(tmp, "rb+") as file:
                    os.fsync(file.fileno())
            os.replace(tmp, self.best_path)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise write_error(error, "checkpoint", self.best_path) from None
        _fsync_directory(self.directory)

    def latest_valid(self) -> tuple[Path | None, list[tuple[Path, str]]]:
        """The newest intact checkpoint, and the newer ones that failed verification (with the reason)."""
        bad: list[tuple[Path, str]] = []
        for path in reversed(self.checkpoints()):
            try:
                verify_checkpoint(path)
            except (CheckpointError, OSError) as err:
                bad.append((path, str(err)))
                continue
            return path, bad
        return None, bad

    def set_aside_after(self, step: int) -> list[Path]:
        """Move checkpoints newer than ``step`` to ``superseded/`` (kept, never deleted); returns their new paths.

        Called when a run resumes from an older checkpoint, so that pruning cannot keep those instead.
        """
        moved = []
        for path in self.checkpoints():
            if (checkpoint_step(path) or 0) > step:
                target_dir = self.directory / "superseded"
                target_dir.mkdir(exist_ok=True)
                target = target_dir / path.name
                os.replace(path, target)
                moved.append(target)
                warnings.warn(
                    f"moved checkpoint {path.name} (newer than the one resumed from) to {target}", stacklevel=2
                )
        return moved
