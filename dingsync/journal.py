"""``<state>.journal``: the events of a run, appended and fsynced one at a time.

Appending keeps a large state from being rewritten once per remote write. The journal
begins with a ``begin`` line naming the lineage and serial of the state file it extends:
that is how loading tells a journal still to be folded (same serial) from one that a save
already folded but had no time to remove (older serial). Every acknowledged event ends
with a newline, so bytes after the last one are a torn write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from stat import S_ISREG
from typing import Any
from typing import NamedTuple

from dingsync import events
from dingsync.atomicfile import NEW_FILE_MODE
from dingsync.atomicfile import fsync_directory
from dingsync.atomicfile import write_all
from dingsync.errors import StateError

# The journal is read whole: one larger than this is no journal a run wrote but, say, a link
# to /dev/zero, which would exhaust the memory even of a plan.
JOURNAL_LIMIT = 256 << 20


class Contents(NamedTuple):
    header: dict[str, Any] | None  # None: empty, or only a torn first line
    events: list[tuple[int, dict[str, Any]]]  # (line number, event)
    good_length: int  # bytes of the intact prefix


class Journal:
    """One state's journal file. Callers serialise appends (the store holds a lock)."""

    def __init__(self, path: Path, state_format: int) -> None:
        self.path = path
        self._format = state_format
        # True once this journal was checked (or started) for the current base.
        self.ready = False
        # Tests only: end the process right after this many events, like a kill.
        self._exit_after = _test_exit_after()
        self._written = 0

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> Contents | None:
        """What the journal holds, or None when there is none; damage raises StateError."""
        try:
            raw = self._read_bounded()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read journal {self.path}: {exc.strerror}") from exc
        return self._parse(raw)

    def _read_bounded(self) -> bytes:
        """The whole journal; refused when it is no regular file or larger than runs write."""
        # Looked at before opening: opening a FIFO would wait for a writer forever.
        info = self.path.stat()
        too_large = f"is larger than {JOURNAL_LIMIT >> 20} MiB, more than any run writes"
        if not S_ISREG(info.st_mode):
            raise self._odd("is not a regular file")
        if info.st_size > JOURNAL_LIMIT:
            raise self._odd(too_large)
        with self.path.open("rb") as fh:
            raw = fh.read(JOURNAL_LIMIT + 1)  # one byte more shows a file that grew meanwhile
        if len(raw) > JOURNAL_LIMIT:
            raise self._odd(too_large)
        return raw

    def _parse(self, raw: bytes) -> Contents:
        """The header, the numbered events and the length of the good prefix.

        A torn or garbled last line is dropped; a bad line followed by good ones is damage.
        """
        terminated = raw.split(b"\n")[:-1]
        header: dict[str, Any] | None = None
        found: list[tuple[int, dict[str, Any]]] = []
        good_length = 0
        for index, line in enumerate(terminated):
            event = decode(line)
            if event is None or (event["op"] == "begin") != (header is None):
                if index == len(terminated) - 1:
                    break
                raise self.damaged(index + 1, "not a journal event")
            if header is None:
                header = self._check_header(event, index + 1)
            else:
                found.append((index + 1, event))
            good_length += len(line) + 1
        return Contents(header, found, good_length)

    def _check_header(self, event: dict[str, Any], number: int) -> dict[str, Any]:
        fmt = event.get("format")
        if isinstance(fmt, int) and fmt > self._format:
            raise StateError(
                f"journal {self.path} was written by a newer dingsync (format {fmt}); "
                f"this version reads format {self._format} — upgrade dingsync"
            )
        if not isinstance(event.get("lineage"), str) or not isinstance(event.get("serial"), int):
            raise self.damaged(number, "header lacks lineage or serial")
        return event

    def damaged(self, number: int, what: str) -> StateError:
        return StateError(f"journal {self.path} is damaged at line {number}: {what}")

    def _odd(self, what: str) -> StateError:
        return StateError(f"journal {self.path} {what}; move it away if dingsync did not write it")

    # -- writing ---------------------------------------------------------------------------

    def append(self, event: Mapping[str, Any], base: tuple[str, int]) -> None:
        """Append one event to the journal of the state file at ``base`` (lineage, serial)
        and fsync it; return once it is durable."""
        events.check(event)  # a malformed event would make every later load fail
        line = encode(event)
        try:
            self._append_line(line, base)
        except OSError as exc:
            raise StateError(f"cannot write journal {self.path}: {exc}") from exc
        self._written += 1
        if self._written == self._exit_after:
            os._exit(137)  # the exit status of a SIGKILL

    def _append_line(self, line: bytes, base: tuple[str, int]) -> None:
        header = self._prepare(base)
        if header is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if header is not None else 0)
        try:
            fd = os.open(self.path, flags, NEW_FILE_MODE)
        except FileNotFoundError:
            # Another writer's save removed the journal (a forced unlock): start a new one
            # with its header rather than a file of events no load could place.
            self.ready = False
            self._append_line(line, base)
            return
        try:
            # Header and first event in one write: a torn header never hides an event.
            write_all(fd, (header or b"") + line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if header is not None:
            fsync_directory(self.path.parent)
        self.ready = True

    def _prepare(self, base: tuple[str, int]) -> bytes | None:
        """Make the journal ready for appending; return a header line if it must start anew."""
        if self.ready:
            return None
        lineage, serial = base
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = None
        if raw is not None:
            header, _, good_length = self._parse(raw)
            if header is not None and (header["lineage"], header["serial"]) == (lineage, serial):
                if good_length < len(raw):
                    # Cut a torn last line, or the next event would be glued onto it.
                    os.truncate(self.path, good_length)
                return None
            # Already folded into the state file (see StateStore.load): start a new one.
            self.path.unlink()
        begin = {"op": "begin", "format": self._format, "lineage": lineage, "serial": serial}
        return encode(begin)

    def remove(self) -> None:
        """The state file now holds everything the journal said."""
        self.path.unlink(missing_ok=True)
        self.ready = False


def encode(event: Mapping[str, Any]) -> bytes:
    return (json.dumps(event, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def decode(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(event, dict) or event.get("op") not in events.OPS:
        return None
    return event


def _test_exit_after() -> int | None:
    """DINGSYNC_TEST_EXIT_AFTER_EVENTS: a deterministic kill point for the crash tests."""
    value = os.environ.get("DINGSYNC_TEST_EXIT_AFTER_EVENTS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None
