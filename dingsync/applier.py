"""Carry out a plan against a backend, recording every result in the state as it arrives.

One failing record does not stop the others; an error marked ``fatal`` (credentials, the
monthly quota, an IP block) stops the run, because every further call would fail too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

from dingsync.backend import Backend
from dingsync.errors import ApiError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import TransportError
from dingsync.ledger import Ledger
from dingsync.ledger import utc_now
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import StateRecord
from dingsync.model import biz_id_for
from dingsync.planner import Change
from dingsync.planner import Complete
from dingsync.planner import Plan
from dingsync.planner import Replace
from dingsync.recovery import settle
from dingsync.reporter import Reporter


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    fatal: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.fatal is None


class _Stop(Exception):
    """Raised inside workers once a fatal error was seen, so queued work is skipped."""


class Applier:
    def __init__(
        self,
        ledger: Ledger,
        backend: Backend,
        reporter: Reporter,
        parallelism: int = 4,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.ledger = ledger
        self.backend = backend
        self.reporter = reporter
        self.parallelism = max(1, parallelism)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._stop = threading.Event()
        self._result_lock = threading.Lock()

    def apply(self, plan: Plan) -> ApplyResult:
        result = ApplyResult()
        changes = list(plan.changes)
        self.reporter.started(len(changes), "apply")
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            futures: list[Future[None]] = [
                pool.submit(self._run_guarded, change, result) for change in changes
            ]
        for future in futures:
            future.result()  # a worker never raises by design: if one does, it is a bug
        self.reporter.finished("apply")
        return result

    def _run_guarded(self, change: Change, result: ApplyResult) -> None:
        if self._stop.is_set():
            return
        try:
            detail = self._run(change)
        except DingsyncError as exc:
            message = str(exc)
            with self._result_lock:
                if getattr(exc, "fatal", False):
                    result.fatal = result.fatal or message
                    self._stop.set()
                else:
                    result.failed[change.address] = message
            self.reporter.failed(change.action, change.address, message)
        else:
            with self._result_lock:
                bucket = {
                    "create": result.created,
                    "replace": result.replaced,
                    "complete": result.completed,
                }[change.action]
                bucket.append(change.address)
            self.reporter.succeeded(change.action, change.address, detail)
        finally:
            self.reporter.advanced("apply")

    def _run(self, change: Change) -> str:
        if isinstance(change, Complete):
            return self._complete(change.current)
        if isinstance(change, Replace):
            new = self._create(change.desired, replaces=change.current)
            # The old record already moved to `retiring` with the new one's arrival; a
            # failure here leaves it there, and the next plan completes it.
            self._complete(change.current)
            return new.record_id
        return self._create(change.desired, replaces=None).record_id

    def _complete(self, record: StateRecord) -> str:
        known = self.backend.complete(record.userid, record.record_id)
        self.ledger.mark_completed(record, by="dingsync")
        if not known:
            self.reporter.note(
                f"{record.address}: DingTalk does not know record {record.record_id} any more; "
                "treated as done"
            )
        return record.record_id

    def _create(self, desired: DesiredRecord, replaces: StateRecord | None) -> StateRecord:
        state = self.ledger.state
        generation = state.next_generation(desired.address)
        pending = PendingCreate(
            key=desired.key,
            userid=desired.userid,
            biz_id=biz_id_for(state.lineage, desired.address, generation),
            generation=generation,
            content=desired.content,
            fingerprint=desired.content.fingerprint(),
            create_time_ms=desired.create_time_ms or self._clock_ms(),
            sent_at=utc_now(),
            replaces=replaces.record_id if replaces else None,
        )
        self.ledger.begin_create(pending)
        try:
            record_id = self.backend.create(
                pending.userid, pending.content, pending.biz_id, pending.create_time_ms
            )
        except TransportError as exc:
            if not exc.maybe_committed:
                self.ledger.abandon_create(pending.address)
                raise
            # The answer was lost: never send blindly; settle it like an interrupted run.
            return self._settle(pending)
        except DuplicateError as exc:
            # The biz_id is brand new, so this is the same-title-and-form-today rule.
            self.ledger.abandon_create(pending.address)
            raise DingsyncError(
                f"{exc}; DingTalk accepts one to-do with the same title and form per user per "
                "day (change the title or form, or apply again tomorrow)"
            ) from None
        except ApiError as exc:
            if not exc.fatal:
                self.ledger.abandon_create(pending.address)
            raise
        return self.ledger.finish_create(pending, record_id)

    def _settle(self, pending: PendingCreate) -> StateRecord:
        settle(self.ledger, self.backend, pending)
        return self.ledger.record(pending.address)
