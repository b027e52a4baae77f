"""Every change to the state during a run goes through the Ledger, and is durable on return.

Workers of the applier call it from several threads; one lock orders the mutations and
the writes, so the file on disk always describes a prefix of what happened remotely.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from datetime import timezone

from dingsync.model import PendingCreate
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
        self._lock = threading.Lock()
        self.writes = 0

    def _persist(self) -> None:
        self._store.save(self.state)
        self.writes += 1

    def known_record_ids(self) -> set[str]:
        with self._lock:
            return {r.record_id for r in self.state.records.values()} | set(self.state.retiring)

    def record(self, address: str) -> StateRecord:
        with self._lock:
            return self.state.records[address]

    def begin_create(self, pending: PendingCreate) -> None:
        """Record the intent before the request leaves, so a crash cannot lose it."""
        with self._lock:
            self.state.pending[pending.address] = pending
            address = pending.address
            self.state.generations[address] = max(
                pending.generation, self.state.generations.get(address, -1)
            )
            self._persist()

    def abandon_create(self, address: str) -> None:
        """DingTalk certainly refused the create: nothing exists remotely for this intent."""
        with self._lock:
            if self.state.pending.pop(address, None) is not None:
                self._persist()

    def finish_create(
        self, pending: PendingCreate, record_id: str, status: Status = "open"
    ) -> StateRecord:
        """Move a pending create into records; the record it replaces starts retiring."""
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
        with self._lock:
            old = self.state.records.get(pending.address)
            if (
                old is not None
                and old.record_id != record_id
                and old.status == "open"
                and not old.missing
            ):
                self.state.retiring[old.record_id] = old
            self.state.records[pending.address] = record
            self.state.pending.pop(pending.address, None)
            self._persist()
        return record

    def mark_completed(self, record: StateRecord, by: str) -> None:
        """A record is done: completed by dingsync, or observed done (by the assignee)."""
        with self._lock:
            self.state.retiring.pop(record.record_id, None)
            current = self.state.records.get(record.address)
            if current is not None and current.record_id == record.record_id:
                self.state.records[record.address] = replace(
                    current, status="done", completed_by=by, missing=False, updated_at=utc_now()
                )
            self._persist()

    def record_observations(self, completed: list[StateRecord], missing: list[StateRecord]) -> None:
        """Write what a refresh observed, in one write."""
        if not completed and not missing:
            return
        now = utc_now()
        with self._lock:
            for record in completed:
                current = self.state.records.get(record.address)
                if current is not None and current.record_id == record.record_id:
                    self.state.records[record.address] = replace(
                        current, status="done", completed_by="assignee", updated_at=now
                    )
            for record in missing:
                current = self.state.records.get(record.address)
                if current is not None and current.record_id == record.record_id:
                    self.state.records[record.address] = replace(
                        current, missing=True, updated_at=now
                    )
            self._persist()

    def adopt(self, record: StateRecord) -> None:
        """Take an existing remote record under management (``dingsync import``)."""
        with self._lock:
            self.state.records[record.address] = record
            self.state.generations[record.address] = max(
                record.generation, self.state.generations.get(record.address, -1)
            )
            self._persist()

    def forget(self, address: str) -> StateRecord | None:
        """Stop managing an address (``state rm``); the remote record is left alone."""
        with self._lock:
            record = self.state.records.pop(address, None)
            if record is not None:
                self._persist()
            return record
