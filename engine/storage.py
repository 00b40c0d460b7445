"""What the warehouse needs from the file system beyond reading and writing files.

* :func:`storage_error` turns an :class:`OSError` caused by the storage (disk full,
  quota, permission denied, read-only file system) into a
  :class:`~whatchanged.engine.errors.StorageError` that names the path and the remedy;
  any other ``OSError`` is left alone (a bug or a race, not the user's to fix).
* :func:`dir_lock` takes an advisory ``flock`` on a folder.  A writer holds one on its
  staging folder ``.tmp/<txid>/`` from creation to clean-up, so a sweep can tell a live
  writer's leftovers from a dead one's without guessing from ages; commits hold one on
  ``_commits/`` while they check for a concurrent commit and publish (see
  :meth:`whatchanged.engine.warehouse.Warehouse.commit`).  ``flock`` locks belong to the
  open file, so two threads of one process exclude each other too, and the kernel drops
  them when the process dies (even by SIGKILL).
* :func:`write_atomic`, the one way a file is replaced whole: a temporary
  ``.<name>.<token>.<pid>.tmp`` beside it, then a rename (readers see the old file or the
  new one, never half of one); :func:`temp_name` gives such a name.
* :func:`pid_alive` for the ``.<name>….<pid>.tmp`` files of the caches.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

from whatchanged.engine.errors import StorageError

try:  # POSIX; elsewhere locks are no-ops (a single writer at a time is then the user's job)
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

#: errno → (what happened, what to do)
STORAGE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space, or use another --home"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or raise the quota, or use another --home"),
    errno.EACCES: (
        "permission denied",
        "give this user write access to the warehouse folder (or run as its owner)",
    ),
    errno.EPERM: (
        "operation not permitted",
        "give this user write access to the warehouse folder (or run as its owner)",
    ),
    errno.EROFS: ("read-only file system", "remount it read-write, or use another --home"),
}
_ERRNO_IN_TEXT = re.compile(r"errno\s*(\d+)|\[Errno (\d+)\]", re.IGNORECASE)


def _errno_of(exc: BaseException) -> int | None:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    # pyarrow's IO errors carry the errno only in their text ("… [errno 28] No space left …")
    for found in _ERRNO_IN_TEXT.finditer(str(exc)):
        return int(found.group(1) or found.group(2))
    return None


def storage_error(exc: BaseException, fallback: Path | str) -> StorageError | None:
    """``exc`` as a :class:`StorageError` naming the path, or None when the storage is not to blame."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError):
        return None
    code = _errno_of(exc)
    if code not in STORAGE_ERRNOS:
        return None
    reason, advice = STORAGE_ERRNOS[code]
    path = getattr(exc, "filename", None) or fallback
    return StorageError(str(path), reason, advice)


@contextlib.contextmanager
def dir_lock(folder: Path, *, blocking: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``folder`` while the block runs; yields whether it was
    taken (always True when ``blocking``)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        taken = True
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                taken = False
        yield taken
    finally:
        os.close(fd)


def held_by_other(folder: Path) -> bool:
    """Whether another open file (a live writer) holds the lock on ``folder``."""
    try:
        with dir_lock(folder, blocking=False) as taken:
            return not taken
    except FileNotFoundError:
        return False


def temp_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this process and call, that
    :func:`stale_temp_files` recognises (``.<name>.<token>.<pid>.tmp``)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(3)}.{os.getpid()}.tmp")


def write_atomic(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) through a temporary file and a rename;
    ``fsync`` flushes it to the disk first (outputs a user keeps; caches need not)."""
    write_all_atomic({path: data}, fsync=fsync)


def write_all_atomic(files: Mapping[Path, bytes | str], *, fsync: bool = False) -> None:
    """:func:`write_atomic` for several files written as one: every temporary file is written
    (and flushed) before the first rename, so a failure leaves the old files in place."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            tmp = temp_name(path)
            staged.append((tmp, path))
            with open(tmp, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")


def stale_temp_files(folder: Path) -> list[Path]:
    """The ``.<name>.<pid>.tmp`` files under ``folder`` whose writer no longer runs
    (what an interrupted ``analyze`` or detection cache leaves behind)."""
    found: list[Path] = []
    if not folder.is_dir():
        return found
    for path in folder.rglob(".*.tmp"):
        m = _TEMP_NAME.match(path.name)
        if m and not pid_alive(int(m.group(1))):
            found.append(path)
    return found
