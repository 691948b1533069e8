"""Writing output files safely: checked before the work starts, written whole or not at all, failures named.

The writers for checkpoints, exports, evaluation results and weights use it (some study and benchmark
reports still write directly):

* :func:`check_output_file` / :func:`check_output_dir` run before long work starts: the folder exists, is a
  folder, can be written (a probe file is created and removed, which also catches read-only mounts and
  cases where permission bits say yes but the file system says no), and optionally holds enough free space.
* :func:`write_bytes_atomic` / :func:`write_text_atomic` / :func:`atomic_output` write under a temporary
  name in the same folder and move the file into place only once it is complete; on failure the temporary
  file is removed and the error names the file and the cause in words (disk full, read-only file system,
  permission denied, ...), as :class:`OSError` with the original ``errno``.

This module sits at the bottom of the package's layers (it imports nothing of ours).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "it is a folder",
    errno.EFBIG: "the file is too large for the file system",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.EIO: "an input/output error of the device",
}
ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EROFS: "choose a writable location",
    errno.EACCES: "choose a location you can write to",
    errno.EPERM: "choose a location you can write to",
}


def cause(error: OSError) -> str:
    """The cause of a failed write in words (``no space left on the device``...), else the system's text."""
    if error.errno in CAUSES:
        return CAUSES[error.errno]
    return error.strerror or str(error)


def write_error(error: OSError, what: str, path: str | os.PathLike) -> OSError:
    """An OSError (same ``errno``) saying which file could not be written, why, and what to do."""
    advice = ADVICE.get(error.errno or 0, "")
    text = f"cannot write {what} {path}: {cause(error)}" + (f"; {advice}" if advice else "")
    return os_error(error.errno, text)


def os_error(code: int | None, text: str) -> OSError:
    """An OSError whose message is ``text`` alone (no ``[Errno N]`` prefix) and whose ``errno`` is ``code``."""
    made = OSError(text)
    made.errno = code
    return made


def human_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``: sizes in messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # unreachable


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Raise an OSError (ENOSPC) when ``folder``'s file system has less than ``needed`` bytes free."""
    if needed <= 0:
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the file system does not say; the write itself will report a full disk
    if free < needed:
        raise os_error(
            errno.ENOSPC,
            f"not enough free space for {what} in {folder}: about {human_bytes(needed)} needed, "
            f"{human_bytes(free)} free; free some space or write elsewhere",
        )


def probe_writable(folder: Path, what: str) -> None:
    """Create and remove a file in ``folder``; an OSError naming the cause when that is not possible."""
    try:
        handle, name = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
    except OSError as error:
        raise write_error(error, what + " in", folder) from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_output_dir(folder: str | os.PathLike, what: str, *, create: bool = False, needed: int = 0) -> Path:
    """``folder`` as a Path once it is known to be a writable folder (created first when ``create``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{what} {folder} is a file, not a folder; choose a folder")
    if not folder.exists():
        if not create:
            raise FileNotFoundError(f"the folder {folder} for {what} does not exist; create it first")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_error(error, what, folder) from None
    probe_writable(folder, what)
    check_free_space(folder, needed, what)
    return folder


def check_output_file(path: str | os.PathLike, what: str, *, needed: int = 0) -> Path:
    """Fail before any work when ``path`` could not be written afterwards (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give a file name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"the folder of {what} {path} does not exist; create {folder} first")
    probe_writable(folder, what)
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write {what} {path}: permission denied; choose another file")
    check_free_space(folder, needed, what)
    return path


def temporary_path(path: Path) -> Path:
    """The hidden name a write to ``path`` goes through (unique per process)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, what: str, *, needed: int = 0) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    An OSError while writing (or moving into place) is re-raised naming ``path`` and the cause.
    """
    path = Path(path)
    check_free_space(path.parent if str(path.parent) else ".", needed, what)
    tmp = temporary_path(path)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise write_error(error, what, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, what: str = "file") -> Path:
    """Write ``data`` to ``path`` whole or not at all (free space checked first); returns the path."""
    with atomic_output(path, what, needed=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, what: str = "file") -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all; returns the path."""
    return write_bytes_atomic(path, text.encode("utf8"), what)
