"""``<state>.lock``: one state-changing dingsync at a time per state file.

The lock is a file created with ``O_CREAT | O_EXCL``, which is atomic on local file
systems: of two processes, exactly one creates it. It names its holder (pid, host,
command, time) so that the one who waits, or the user, can tell who holds it and whether
that process is gone.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime
from datetime import timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from dingsync import __version__
from dingsync.errors import LockError

POLL_INTERVAL = 0.2  # seconds between attempts while waiting with a timeout


def lock_path(state_path: str | Path) -> Path:
    state_path = Path(state_path)
    return state_path.with_name(state_path.name + ".lock")


class StateLock:
    """Hold ``<state>.lock`` for the duration of a ``with`` block.

    ``timeout`` is how long to wait for another holder to let go (0: fail at once).
    """

    def __init__(
        self,
        state_path: str | Path,
        command: str,
        timeout: float = 0.0,
        poll_interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state_path = Path(state_path)
        self.path = lock_path(state_path)
        self.command = command
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        # The exact bytes this instance wrote while it holds the lock; None when not held.
        self._content: bytes | None = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; ``LockError`` if it stays held."""
        if self._content is not None:
            raise RuntimeError(f"{self.path} is already held by this StateLock")
        deadline = self._clock() + self.timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LockError(f"cannot create the folder of {self.path}: {exc.strerror}") from exc
        while not self._try_create():
            info = self.read(self.state_path)
            if info is None:
                continue  # released between our attempt and the read: try again now
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise LockError(self.held_message(info))
            self._sleep(min(self.poll_interval, remaining))

    def _try_create(self) -> bool:
        content = self._holder_content()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise LockError(f"cannot create lock file {self.path}: {exc.strerror}") from exc
        try:
            # One write, so that a reader sees the whole holder or (briefly) an empty file.
            written = os.write(fd, content)
            if written != len(content):
                raise OSError(errno.ENOSPC, "the lock file was written only in part")
        except OSError as exc:
            # A full disk: an empty lock left behind would block every later run.
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise LockError(f"cannot write lock file {self.path}: {exc.strerror}") from exc
        os.close(fd)
        self._content = content
        return True

    def _holder_content(self) -> bytes:
        holder: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dingsync_version": __version__,
        }
        started = _process_start(os.getpid())
        if started is not None:
            holder["pid_start"] = started
        return (json.dumps(holder, sort_keys=True) + "\n").encode("utf-8")

    def release(self) -> None:
        """Remove the lock file, but only if it is still the one this instance created.

        Someone may have run ``force-unlock`` and another run may hold a new lock by now;
        removing that one would let two runs write the state at once.
        """
        content, self._content = self._content, None
        if content is None:
            return
        try:
            if self.path.read_bytes() == content:
                self.path.unlink()
        except FileNotFoundError:
            pass

    @staticmethod
    def read(state_path: str | Path) -> dict[str, Any] | None:
        """The holder of the lock of ``state_path``, or None when it is not locked.

        An empty or unreadable lock file gives ``{}``: locked, by no one we can name (it is
        being written, or its writer died in the middle).
        """
        try:
            raw = lock_path(state_path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            info = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    @staticmethod
    def is_stale(info: dict[str, Any]) -> bool:
        """True when the holder ran on this host and its process no longer exists.

        Where the lock names the holder's start time (Linux), a process now running under
        the same pid but started at another time is a different one: the pid was reused.
        A lock from another host is never called stale: its process cannot be checked
        from here.
        """
        pid = info.get("pid")
        if info.get("host") != socket.gethostname():
            return False
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return False  # os.kill(0, ...) would signal our own process group
        if not _process_exists(pid):
            return True
        recorded = info.get("pid_start")
        if not isinstance(recorded, int) or isinstance(recorded, bool):
            return False
        current = _process_start(pid)
        return current is not None and current != recorded

    @staticmethod
    def is_alive(info: dict[str, Any]) -> bool:
        """True when the holder runs on this host and its process is still running."""
        pid = info.get("pid")
        if info.get("host") != socket.gethostname():
            return False
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return False
        return not StateLock.is_stale(info)

    @staticmethod
    def force_remove(state_path: str | Path) -> bool:
        """Remove the lock whoever holds it; True if there was one."""
        try:
            lock_path(state_path).unlink()
        except FileNotFoundError:
            return False
        return True

    @staticmethod
    def describe(info: dict[str, Any]) -> str:
        """``pid 1234 on host ci-7 (apply, since 2026-11-28T12:00:00Z)``."""
        if not info:
            return "an unknown process (the lock file names no holder)"
        return (
            f"pid {info.get('pid', '?')} on host {info.get('host', '?')} "
            f"({info.get('command', '?')}, since {info.get('created_at', '?')})"
        )

    @classmethod
    def held_message(cls, info: dict[str, Any]) -> str:
        """The one-line error for a lock held by ``info``."""
        holder = f"state is locked by {cls.describe(info)}"
        if cls.is_stale(info):
            return (
                f"{holder}, but the process is gone (stale lock); "
                "run 'dingsync force-unlock' to remove it"
            )
        return (
            f"{holder}; wait with --lock-timeout SECONDS, "
            "or run 'dingsync force-unlock' if that process is gone"
        )


def _process_exists(pid: int) -> bool:
    if os.name == "nt":
        # On Windows os.kill(pid, 0) terminates the process; assume it is alive.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux's /proc); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')'; the start
    # time is field 22, the 20th after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None
