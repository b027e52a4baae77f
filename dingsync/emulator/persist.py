"""Keeping the emulator's data in a JSON file across restarts.

Writes are atomic (a temp file in the same folder, fsync, ``os.replace``) so that a crash
never leaves half a file. A background thread coalesces bursts of changes into one write
about every half second; ``stop`` writes whatever is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dingsync.errors import DingsyncError

SAVE_DELAY = 0.5  # seconds a change may wait before it reaches the file


class EmulatorDataError(DingsyncError):
    """The emulator's data file cannot be read or written."""


def load(path: Path) -> dict[str, Any] | None:
    """The saved data, or None when there is no file yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmulatorDataError(f"cannot read emulator data {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise EmulatorDataError(f"emulator data {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EmulatorDataError(f"emulator data {path} is not a JSON object")
    return data


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class Saver:
    """Writes ``snapshot()`` to ``path`` soon after ``notify()``, off the request threads."""

    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def notify(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="emulator-saver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background writer and save what is still unsaved."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._dirty.set()
            thread.join()
        self.save()

    def save(self) -> None:
        with self._write_lock:
            self._dirty.clear()
            data = self._snapshot()
            try:
                write_atomically(self.path, data)
            except OSError as exc:
                self._dirty.set()  # still unsaved: try again on the next change or stop
                message = f"cannot write emulator data {self.path}: {exc.strerror}"
                raise EmulatorDataError(message) from None

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            # Let a burst of changes accumulate; a stop request cuts the wait short.
            if self._stopping.wait(SAVE_DELAY):
                return
            # A failed save stays dirty: the next change or stop() saves again, and stop()
            # reports the error to the one who stops the emulator.
            with contextlib.suppress(EmulatorDataError):
                self.save()
