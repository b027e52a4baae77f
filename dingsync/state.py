"""The state file: which remote record each address became, written so that no crash loses it.

``StateStore`` loads and saves snapshots of ``<state>`` (keeping the previous one as
``<state>.backup``) and is the door to ``<state>.journal`` (``dingsync.journal``): the
ledger appends each change there as an event (``dingsync.events``) and applies it to the
state it owns. ``load()`` folds a leftover journal into the state it returns, and
``save()`` removes the journal once the new file is durable, so the state in memory after
``load()`` is always what the acknowledged writes described.
"""

from __future__ import annotations

import codecs
import glob
import os
import threading
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import BinaryIO
from typing import TypeVar

from dingsync import __version__
from dingsync.atomicfile import NEW_FILE_MODE
from dingsync.atomicfile import FileIdentity
from dingsync.atomicfile import atomic_write
from dingsync.atomicfile import identity
from dingsync.errors import StateError
from dingsync.events import apply_event
from dingsync.events import check as check_event
from dingsync.journal import Journal
from dingsync.jsonstream import Converter
from dingsync.jsonstream import JsonStreamError
from dingsync.jsonstream import Lazy
from dingsync.jsonstream import dump_pieces
from dingsync.jsonstream import load_object
from dingsync.model import Content
from dingsync.model import PendingCreate
from dingsync.model import Remote
from dingsync.model import State
from dingsync.model import StateRecord

FORMAT = 1

# The top-level keys of a format-1 state file, all required, no others allowed.
STATE_KEYS = frozenset(
    {
        "format",
        "lineage",
        "serial",
        "dingsync_version",
        "records",
        "pending",
        "retiring",
        "generations",
    }
)
# Keys a format-1 state file may lack: states written before states named their remote.
OPTIONAL_STATE_KEYS = frozenset({"remote", "union_ids"})

Document = dict[str, Any]

# MIGRATIONS[n] turns a format-n document into a format-(n + 1) one. Format 1 is the first
# published format, so there is nothing to migrate yet; the next format change adds
# MIGRATIONS[1] and bumps FORMAT.
MIGRATIONS: dict[int, Callable[[Document], Document]] = {}

_Entry = TypeVar("_Entry", StateRecord, PendingCreate)


class _TextPieces:
    """The UTF-8 text of a binary file, decoded a piece at a time as it is read."""

    PIECE = 1 << 20

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._read = 0  # bytes read so far
        self._start = 0  # file offset of the bytes the decoder saw last
        self.seen_content = False  # anything but whitespace so far

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self._fh.read(self.PIECE)
            pending, _ = self._decoder.getstate()  # the cut-off end of the last piece
            self._start = self._read - len(pending)
            self._read += len(raw)
            text = self._decoder.decode(raw, final=not raw)
            if not self.seen_content and text.lstrip(" \t\n\r"):  # JSON's whitespace
                self.seen_content = True
            if text:
                yield text
            if not raw:
                return

    def offset(self, exc: UnicodeDecodeError) -> int:
        """The file offset of the byte that ``exc`` (raised while iterating) is about."""
        return self._start + exc.start


class _Sharing:
    """Pools that let the entries read from one state share equal contents and strings.

    A state of 100,000 records repeats the same few timestamps, statuses and form titles
    in every entry, and a task assigned to many userids repeats its whole content; held
    once each, they take a fraction of the memory.
    """

    def __init__(self) -> None:
        self.contents: dict[Content, Content] = {}
        self._strings: dict[str, str] = {}

    def state_record(self, data: dict[str, Any]) -> StateRecord:
        self._share(data, ("status", "created_at", "updated_at", "completed_by"))
        return StateRecord.from_dict(data, self.contents)

    def pending_create(self, data: dict[str, Any]) -> PendingCreate:
        self._share(data, ("sent_at",))
        return PendingCreate.from_dict(data, self.contents)

    def _share(self, data: dict[str, Any], fields: tuple[str, ...]) -> None:
        if not isinstance(data, dict):
            return  # from_dict says what is wrong with it
        strings = self._strings
        for name in fields:
            value = data.get(name)
            if isinstance(value, str):
                data[name] = strings.setdefault(value, value)
        content = data.get("content")
        if not isinstance(content, dict):
            return
        for name in ("source_name", "originator_userid", "pc_url"):
            value = content.get(name)
            if isinstance(value, str):
                content[name] = strings.setdefault(value, value)
        form = content.get("form")
        for item in form if isinstance(form, list) else ():
            title = item.get("title") if isinstance(item, dict) else None
            if isinstance(title, str):
                item["title"] = strings.setdefault(title, title)


def default_state_path(task_file: str | Path, sandbox: bool) -> Path:
    """``state/<stem>.state.json`` (or ``.sandbox.state.json``), relative to the CWD."""
    stem = Path(task_file).stem
    suffix = ".sandbox.state.json" if sandbox else ".state.json"
    return Path("state") / f"{stem}{suffix}"


class StateStore:
    """Loads and saves one state file, its backup and its journal.

    The methods may be called from several threads (a parallel apply): each journal write
    and each save happens as one step.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.journal = Journal(self.journal_path, FORMAT)
        self._mutex = threading.RLock()
        self._load_failed = False
        # (lineage, serial) of the state file on disk, once this store has read or written it.
        self._base: tuple[str, int] | None = None
        # True when the last load() replayed events of an interrupted run's journal.
        self.folded_journal = False
        # True when the last load() found a state: the file, or a first run's journal.
        self.found = False
        # The state file as this store last read or wrote it (see ``atomicfile.identity``): a save
        # finding another file there refuses to overwrite it (compare-and-swap).
        self._seen: FileIdentity | None = None

    def exists(self) -> bool:
        return self.path.exists()

    # -- reading -------------------------------------------------------------------------

    def load(self) -> State:
        """Read the state file and fold a leftover journal into it.

        A missing file gives a new, empty state with a fresh lineage (written only by the
        first ``save``), unless a ``.backup`` is there: then it is refused. Any unreadable
        content raises ``StateError``, and ``save`` then refuses to run until a ``load``
        succeeds, so a damaged file is never overwritten.
        """
        with self._mutex:
            self._load_failed = True
            self._base = None
            self.journal.ready = False
            self.folded_journal = False
            self._seen = identity(self.path)
            state, on_disk = self._read_state_file()
            self._fold_journal(state, on_disk)
            self.found = on_disk or self.folded_journal
            self._base = (state.lineage, state.serial)
            self._load_failed = False
            return state

    def _read_state_file(self) -> tuple[State, bool]:
        try:
            with self.path.open("rb") as fh:
                return self._parse(fh), True
        except FileNotFoundError:
            if self.backup_path.exists():
                # A fresh lineage would mean fresh biz_ids: every record created again.
                raise StateError(
                    f"state file {self.path} is missing but {self.backup_path} is there; "
                    f"restore the state from it (or from git), or delete the backup to "
                    f"start a new state on purpose"
                ) from None
            return State(lineage=str(uuid.uuid4())), False
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from exc

    def _parse(self, fh: BinaryIO) -> State:
        text = _TextPieces(fh)
        # The sections of the current format become records while they are read, one entry
        # at a time: a large state never exists as one string or one tree of dicts. An older
        # format is read whole, because its migration works on the plain document.
        shared = _Sharing()
        converters: dict[str, Converter] = {
            "records": self._converter("records", shared.state_record, "address"),
            "pending": self._converter("pending", shared.pending_create, "address"),
            "retiring": self._converter("retiring", shared.state_record, "record_id"),
        }
        converted: set[str] = set()  # the sections whose value now in the document is built

        def choose(name: str, found: dict[str, Any]) -> Converter | None:
            # A repeated name replaces the earlier value (as in json.loads), so the set
            # follows the value read last.
            if found.get("format") != FORMAT or name not in converters:
                converted.discard(name)
                return None
            converted.add(name)
            return converters[name]

        try:
            doc = load_object(text, choose)
        except UnicodeDecodeError as exc:
            raise self._damaged(f"is not UTF-8 text (byte {text.offset(exc)})") from exc
        except JsonStreamError as exc:
            if not text.seen_content:
                raise self._damaged("is empty") from exc
            if exc.msg.startswith("Exceeds the limit"):  # Python's cap on integer digits
                raise self._damaged(f"holds a number too long to read ({exc})") from exc
            where = f"line {exc.lineno}, column {exc.colno}"
            raise self._damaged(
                f"is not valid JSON, perhaps truncated ({exc.msg} at {where})"
            ) from exc
        if not isinstance(doc, dict):
            raise self._damaged("does not hold a JSON object")
        if doc.get("format") != FORMAT and converted:
            # Sections were built for the current format, then another "format" followed.
            raise self._damaged("has more than one 'format' field")
        doc = self._migrate(doc)
        return self._state_from_document(doc, converted)

    def _converter(
        self, field: str, parse: Callable[[dict[str, Any]], _Entry], key_attr: str
    ) -> Callable[[str, Any], _Entry]:
        def convert(key: str, data: Any) -> _Entry:
            try:
                entry = parse(data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise self._damaged(f"has a malformed entry {field}[{key!r}] ({exc!r})") from exc
            # The key is derived from the entry; a mismatch means a hand edit went wrong.
            if getattr(entry, key_attr) != key:
                raise self._damaged(f"files entry {field}[{key!r}] under the wrong {key_attr}")
            return entry

        return convert

    def _migrate(self, doc: Document) -> Document:
        fmt = doc.get("format")
        if not isinstance(fmt, int) or isinstance(fmt, bool):
            raise self._damaged("has no integer 'format' field")
        if fmt > FORMAT:
            raise StateError(
                f"state file {self.path} was written by a newer dingsync (format {fmt}); "
                f"this version reads format {FORMAT} — upgrade dingsync"
            )
        while fmt < FORMAT:
            step = MIGRATIONS.get(fmt)
            if step is None:
                raise StateError(
                    f"state file {self.path} has format {fmt}, which this dingsync cannot "
                    f"migrate (it reads format {FORMAT})"
                )
            try:
                doc = step(doc)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise self._damaged(f"cannot be migrated from format {fmt}: {exc!r}") from exc
            fmt += 1
            doc["format"] = fmt
        return doc

    def _state_from_document(self, doc: Document, converted: set[str]) -> State:
        missing = sorted(STATE_KEYS - doc.keys())
        if missing:
            raise self._damaged(f"lacks field(s) {', '.join(missing)}")
        unknown = sorted(doc.keys() - STATE_KEYS - OPTIONAL_STATE_KEYS)
        if unknown:
            raise self._damaged(f"has unknown field(s) {', '.join(unknown)}")
        lineage, serial = doc["lineage"], doc["serial"]
        if not isinstance(lineage, str) or not lineage:
            raise self._damaged("has no lineage")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 0:
            raise self._damaged("has a serial that is not a non-negative integer")
        state = State(lineage=lineage, serial=serial)
        shared = _Sharing()
        state.records = self._entries(doc, "records", converted, shared.state_record, "address")
        state.pending = self._entries(doc, "pending", converted, shared.pending_create, "address")
        state.retiring = self._entries(doc, "retiring", converted, shared.state_record, "record_id")
        state.generations = self._generations(doc["generations"])
        state.remote = self._remote(doc.get("remote"))
        state.union_ids = self._union_ids(doc.get("union_ids", {}))
        return state

    def _union_ids(self, section: object) -> dict[str, str]:
        if not isinstance(section, dict) or not all(
            isinstance(v, str) and v for v in section.values()
        ):
            raise self._damaged("has a 'union_ids' field that is not an object of texts")
        return dict(section)

    def _remote(self, section: object) -> Remote | None:
        if section is None:
            return None
        try:
            if not isinstance(section, dict):
                raise TypeError("not an object")
            return Remote.from_dict(section)
        except (KeyError, TypeError) as exc:
            raise self._damaged(f"has a malformed 'remote' field ({exc})") from exc

    def _entries(
        self,
        doc: Document,
        field: str,
        converted: set[str],
        parse: Callable[[dict[str, Any]], _Entry],
        key_attr: str,
    ) -> dict[str, _Entry]:
        section = doc[field]
        if not isinstance(section, dict):
            raise self._damaged(f"has a '{field}' field that is not an object")
        if field in converted:
            return section  # its entries were built and checked while it was read
        convert = self._converter(field, parse, key_attr)
        entries: dict[str, _Entry] = {}
        # Popping frees each parsed dict as soon as its entry is built.
        while section:
            key, data = section.popitem()
            entries[key] = convert(key, data)
        # popitem() works from the end; keep the file's order, as the streamed sections do.
        return dict(reversed(entries.items()))

    def _generations(self, section: object) -> dict[str, int]:
        if not isinstance(section, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in section.values()
        ):
            raise self._damaged("has a 'generations' field that is not an object of integers")
        return dict(section)

    def _damaged(self, what: str) -> StateError:
        hint = f"; {self.backup_path} holds the previous state" if self.backup_path.exists() else ""
        return StateError(f"state file {self.path} {what}{hint}")

    # -- folding a leftover journal ------------------------------------------------------

    def _fold_journal(self, state: State, on_disk: bool) -> None:
        contents = self.journal.read()
        if contents is None or contents.header is None:
            return  # none, or only a torn first line: nothing was ever acknowledged
        header, events = contents.header, contents.events
        lineage, serial = header["lineage"], header["serial"]
        if not on_disk:
            if serial != 0:
                raise StateError(
                    f"journal {self.journal_path} extends serial {serial} of a state file "
                    f"that is missing; restore {self.path} (from {self.backup_path}?) first"
                )
            # The run that wrote it never saved: its lineage (and so its biz_ids) stands.
            state.lineage = lineage
        elif lineage != state.lineage:
            raise StateError(
                f"journal {self.journal_path} belongs to another state (lineage {lineage}, "
                f"not {state.lineage}); move it away if {self.path} is the state you want"
            )
        if serial < state.serial:
            return  # a save already folded it and stopped before removing it
        if serial > state.serial:
            raise StateError(
                f"journal {self.journal_path} extends serial {serial}, but {self.path} is at "
                f"serial {state.serial}; was the state file replaced by an older copy?"
            )
        for number, event in events:
            try:
                apply_event(state, event)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise self.journal.damaged(number, f"malformed event ({exc!r})") from exc
        self.folded_journal = bool(events)

    # -- the journal -----------------------------------------------------------------------

    def append(self, event: Mapping[str, Any]) -> None:
        """Make one event durable in the journal; return once it is.

        Needs a prior ``load()`` or ``save()``: the journal names the state file it extends.
        """
        with self._mutex:
            self._refuse_if_load_failed()
            if self._base is None:
                raise RuntimeError("load() or save() the state before writing to its journal")
            self.journal.append(event, self._base)

    # -- writing ---------------------------------------------------------------------------

    def save(self, state: State) -> None:
        """Write ``state`` with ``serial + 1`` atomically, then drop the folded journal.

        ``state.serial`` is increased only once the new file is durable.
        """
        with self._mutex:
            self._refuse_if_load_failed()
            if self._base is None and self.journal_path.exists():
                raise StateError(
                    f"journal {self.journal_path} holds changes not yet in the state; "
                    "load the state before saving it"
                )
            serial = state.serial + 1
            self._refuse_if_changed(state, serial)
            self._write(_utf8_batches(state_pieces(state, serial)))
            self._seen = identity(self.path)
            state.serial = serial
            self._base = (state.lineage, serial)
            # The file now holds everything the journal said; a crash before this unlink is
            # harmless because load() skips a journal of an older serial.
            self.journal.remove()

    def _refuse_if_changed(self, state: State, serial: int) -> None:
        """Compare-and-swap: never overwrite a state file another writer changed meanwhile.

        This run's state goes to ``<state>.unsaved`` instead, whole, so that nothing it
        did is lost; the user chooses which of the two to keep.
        """
        if identity(self.path) == self._seen:
            return
        unsaved = self.path.with_name(self.path.name + ".unsaved")
        try:
            atomic_write(unsaved, _utf8_batches(state_pieces(state, serial)), NEW_FILE_MODE)
            kept = f"this run's state is in {unsaved}"
        except OSError as exc:
            kept = f"this run's state could not be written to {unsaved} either ({exc})"
        raise StateError(
            f"state file {self.path} was changed by another writer since this run read it, "
            f"so it was not overwritten; {kept}: compare the two and keep the one you want "
            "(records left out of the state are found and adopted by the next apply)"
        )

    def _refuse_if_load_failed(self) -> None:
        if self._load_failed:
            raise StateError(
                f"state file {self.path} could not be read, so it will not be overwritten"
            )

    def _write(self, data: Iterable[bytes]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._remove_leftover_temp_files()
            keep_backup: Callable[[], None] | None = self._keep_backup
            try:
                # Keep the mode of an existing file: its owner may have chosen it.
                mode = self.path.stat().st_mode & 0o777
            except FileNotFoundError:
                mode, keep_backup = NEW_FILE_MODE, None
            # The backup moves on only once the new file is complete: a write that fails
            # (a full disk, text that cannot be encoded) leaves both files as they were.
            atomic_write(self.path, data, mode, before_replace=keep_backup)
        except (OSError, UnicodeEncodeError) as exc:
            raise StateError(f"cannot write state file {self.path}: {exc}") from exc

    def _remove_leftover_temp_files(self) -> None:
        """Delete the temp files of saves that a kill cut short (never the state itself).

        Writers of this state hold its lock, so no other save is using one now.
        """
        for leftover in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)

    def _keep_backup(self) -> None:
        """Make ``.backup`` the current file, so that it always holds a complete state."""
        temp = self.backup_path.with_name(f".{self.backup_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            os.link(self.path, temp)
        except OSError:
            # No hard links on this file system: copy instead, just as atomically, and a
            # piece at a time like every other read and write of the state.
            with self.path.open("rb") as current:
                pieces = iter(lambda: current.read(1 << 20), b"")
                atomic_write(self.backup_path, pieces, self.path.stat().st_mode)
            return
        try:
            os.replace(temp, self.backup_path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise


def state_pieces(state: State, serial: int | None = None) -> Iterator[str]:
    """The text of the state file for ``state`` (at ``serial``, default its own), in pieces.

    The same text as ``json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False)``
    plus a newline, made one entry at a time: a large state is never held as one string.
    """
    doc = {
        "format": FORMAT,
        "lineage": state.lineage,
        "serial": state.serial if serial is None else serial,
        "dingsync_version": __version__,
        "records": Lazy(state.records, StateRecord.to_dict),
        "pending": Lazy(state.pending, PendingCreate.to_dict),
        "retiring": Lazy(state.retiring, StateRecord.to_dict),
        "generations": Lazy(state.generations, int),
        "remote": None if state.remote is None else state.remote.to_dict(),
    }
    if state.union_ids:
        # v1.0 states only: a legacy state keeps its layout.
        doc["union_ids"] = dict(sorted(state.union_ids.items()))
    yield from dump_pieces(doc)
    yield "\n"


def _utf8_batches(pieces: Iterable[str], size: int = 1 << 20) -> Iterator[bytes]:
    """``pieces`` encoded as UTF-8, gathered into batches of about ``size`` characters."""
    batch: list[str] = []
    length = 0
    for piece in pieces:
        batch.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(batch).encode("utf-8")
            batch, length = [], 0
    if batch:
        yield "".join(batch).encode("utf-8")


class ScratchStore(StateStore):
    """A store that changes the state in memory only: ``plan --refresh`` looks up and
    adopts as apply would, and writes nothing."""

    def __init__(self, state: State) -> None:
        super().__init__(Path(os.devnull))
        self._base = (state.lineage, state.serial)

    def append(self, event: Mapping[str, Any]) -> None:
        check_event(event)  # the same check as a real append

    def save(self, state: State) -> None:
        pass
