"""Files replaced whole, never half-written: readers see the old bytes or the new.

Used for the state file, its backup and ``<state>.unsaved``; the journal appends instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path

NEW_FILE_MODE = 0o644

FileIdentity = tuple[int, int, int, int]


def identity(path: Path) -> FileIdentity | None:
    """Device, inode, size and change time of ``path``; None when there is no file.

    Every save renames a new file into place, so another writer's save always shows as
    another identity, however the serials compare.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def atomic_write(
    path: Path,
    data: Iterable[bytes],
    mode: int,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Replace ``path`` with ``data``: readers see the old bytes or the new, never a mix.

    ``before_replace`` runs once the new bytes are durable in the temp file, just before
    the rename.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(name)
    try:
        try:
            os.fchmod(fd, mode & 0o777)  # mkstemp creates 0600
            for chunk in data:
                write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_replace is not None:
            before_replace()
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX; a no-op elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
