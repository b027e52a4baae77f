"""The Ledger owns the state of a run: every change goes through it, durable on return.

Each change is one event (``dingsync.events``): appended to the journal and fsynced
through the store, then applied to the state in memory, before the call returns, so a
crash at any instant loses nothing. ``flush()`` saves the state file at the end of the run
(and ``StateStore.load`` folds a leftover journal at the next start). Appending keeps a
large state from being rewritten once per remote write.

Workers of the applier call the Ledger from several threads; one lock orders the
read-modify-write steps, so the journal always describes a prefix of what happened remotely.
"""

from __future__ import annotations

import threading
from datetime import datetime
from datetime import timezone

from dingsync import events
from dingsync.errors import StateError
from dingsync.events import Event
from dingsync.events import apply_event
from dingsync.model import Content
from dingsync.model import PendingCreate
from dingsync.model import Remote
from dingsync.model import State
from dingsync.model import StateRecord
from dingsync.model import Status
from dingsync.state import StateStore


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Ledger:
    def __init__(self, state: State, store: StateStore) -> None:
        self.state = state
        self._store = store
        self._lock = threading.RLock()
        # A journal left by an interrupted run is written into the state file by this one.
        self._dirty = store.folded_journal

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        # Also after a failure: whatever was journaled is folded into the state file.
        self.flush()

    def _commit(self, event: Event) -> None:
        """Make ``event`` durable, then apply it to the state in memory."""
        with self._lock:
            self._store.append(event)
            apply_event(self.state, event)
            self._dirty = True

    def _record(self, record: StateRecord) -> None:
        self._commit(events.record(record))

    def flush(self) -> None:
        """Fold what this run journaled into the state file (temp file, fsync, rename)."""
        with self._lock:
            if self._dirty:
                self._store.save(self.state)
                self._dirty = False

    def known_record_ids(self) -> set[str]:
        with self._lock:
            return {r.record_id for r in self.state.records.values()} | set(self.state.retiring)

    def begin_create(self, pending: PendingCreate) -> None:
        """Record the intent before the request leaves, so a crash cannot lose it."""
        with self._lock:
            earlier = self.state.pending.get(pending.address)
            if earlier is not None and earlier.biz_id != pending.biz_id:
                # A second intent would take a new biz_id: if the first one landed after
                # all, the user would get the to-do twice.
                raise StateError(
                    f"{pending.address}: an earlier create ({earlier.biz_id}) is not settled"
                )
            self._commit(events.pending(pending))

    def abandon_create(self, address: str) -> None:
        """DingTalk certainly refused the create: nothing exists remotely for this intent."""
        with self._lock:
            if address in self.state.pending:
                self._commit(events.abandon(address))

    def finish_create(
        self, pending: PendingCreate, record_id: str, status: Status = "open"
    ) -> tuple[StateRecord, StateRecord | None]:
        """Move a pending create into records; the record it replaces starts retiring.

        Returns the new record and the retired one (still to be completed), if any.
        """
        now = utc_now()
        record = StateRecord(
            key=pending.key,
            userid=pending.userid,
            record_id=record_id,
            biz_id=pending.biz_id,
            generation=pending.generation,
            content=pending.content,
            fingerprint=pending.fingerprint,
            status=status,
            create_time_ms=pending.create_time_ms,
            created_at=now,
            updated_at=now,
            completed_by="assignee" if status == "done" else None,
        )
        retired = None
        with self._lock:
            old = self.state.records.get(pending.address)
            if (
                old is not None
                and old.record_id != record_id
                and old.status == "open"
                and not old.missing
            ):
                # Retire first: a crash between the two events must not lose the old record,
                # which still has to be completed.
                self._commit(events.retire(old))
                retired = old
            self._record(record)
        return record, retired

    def begin_complete(self, record: StateRecord) -> None:
        """dingsync is about to complete ``record``: an open record with ``completed_by``
        "dingsync" is a completion sent whose outcome is not known yet."""
        self._set_completer(record, "dingsync")

    def abandon_complete(self, record: StateRecord) -> None:
        """DingTalk certainly refused the completion: the record is simply open."""
        self._set_completer(record, None)

    def begin_reopen(self, record: StateRecord) -> None:
        """dingsync is about to reopen ``record``: held as open with a completion of
        dingsync's in flight, so that a refresh tells what happened (open: it landed; done:
        it did not, and dingsync reopens it again), whatever the answer's fate."""
        with self._lock:
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                self._record(current._replace(status="open", completed_by="dingsync"))

    def abandon_reopen(self, record: StateRecord) -> None:
        """DingTalk certainly refused the reopen: the record is done, by dingsync."""
        with self._lock:
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                self._record(current._replace(status="done", completed_by="dingsync"))

    def _set_completer(self, record: StateRecord, by: str | None) -> None:
        with self._lock:
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                if current.status == "open" and current.completed_by != by:
                    self._record(current._replace(completed_by=by))

    def mark_completed(self, record: StateRecord, by: str) -> None:
        """A record is done: completed by dingsync, or observed done (by the assignee)."""
        with self._lock:
            if record.record_id in self.state.retiring:
                self._commit(events.retired(record.record_id))
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                self._record(
                    current._replace(
                        status="done",
                        completed_by=by,
                        missing=False,
                        updated_at=utc_now(),
                    )
                )

    def record_edit(self, record: StateRecord, content: Content, reopened: bool = False) -> None:
        """An update (or a reopen) of ``record`` to ``content`` succeeded."""
        with self._lock:
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                changed = current._replace(
                    content=content, fingerprint=content.fingerprint(), updated_at=utc_now()
                )
                if reopened:
                    changed = changed._replace(status="open", completed_by=None, missing=False)
                self._record(changed)

    def record_remote_content(self, record: StateRecord, content: Content) -> None:
        """A refresh saw ``record`` edited on DingTalk: the state holds what is there now,
        so that the plan updates it back to the file."""
        self.record_edit(record, content)

    def mark_deleted(self, record: StateRecord) -> None:
        """A to-do is deleted: the address is forgotten (its generations are kept)."""
        with self._lock:
            if record.record_id in self.state.retiring:
                self._commit(events.retired(record.record_id))
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                self._commit(events.forget(record.address))

    def remember_union_ids(self, union_ids: dict[str, str]) -> None:
        """userid → unionId mappings learnt this run (v1.0): kept so plan stays offline
        and each userid is resolved once for the life of the state."""
        with self._lock:
            new = {u: i for u, i in union_ids.items() if self.state.union_ids.get(u) != i}
            if new:
                self._commit(events.union_ids(new))

    def record_observations(
        self,
        completed: list[StateRecord],
        missing: list[StateRecord],
        found_again: list[StateRecord] | None = None,
        still_open: list[StateRecord] | None = None,
    ) -> None:
        """Write what a refresh observed: status and presence only, nothing else.

        ``still_open``: records DingTalk shows open. A completion of one that dingsync sent
        without hearing back did not land; its mark goes, so that a later completion is
        the assignee's.
        """
        now = utc_now()
        with self._lock:
            for record in still_open or []:
                current = self.state.records.get(record.address)
                if current is not None and current.record_id == record.record_id:
                    if current.status == "open" and current.completed_by == "dingsync":
                        self._record(current._replace(completed_by=None, updated_at=now))
            for record in found_again or []:
                current = self.state.records.get(record.address)
                if current is not None and current.record_id == record.record_id:
                    self._record(current._replace(missing=False, updated_at=now))
            for record in completed:
                current = self.state.records.get(record.address)
                if current is not None and current.record_id == record.record_id:
                    # A completion dingsync sent but never heard back from is its own.
                    by = "dingsync" if current.completed_by == "dingsync" else "assignee"
                    self._record(current._replace(status="done", completed_by=by, updated_at=now))
            for record in missing:
                current = self.state.records.get(record.address)
                if current is not None and current.record_id == record.record_id:
                    if not current.missing:
                        self._record(current._replace(missing=True, updated_at=now))

    def adopt(self, record: StateRecord) -> None:
        """Take an existing remote record under management (``dingsync import``)."""
        with self._lock:
            self._record(record)

    def bind(self, remote: Remote) -> None:
        """The state's records live in ``remote`` from now on."""
        with self._lock:
            self._commit(events.remote(remote))

    def forget(self, address: str) -> StateRecord | None:
        """Stop managing an address (``state rm``); the remote record is left alone."""
        with self._lock:
            record = self.state.records.get(address)
            if record is not None:
                self._commit(events.forget(address))
            return record
