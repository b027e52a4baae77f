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
from dingsync.planner import Create
from dingsync.planner import Plan
from dingsync.recovery import adopt
from dingsync.recovery import find_remote
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
        pool = ThreadPoolExecutor(max_workers=self.parallelism)
        try:
            futures: list[Future[None]] = [
                pool.submit(self._run_guarded, change, result) for change in changes
            ]
            for future in futures:
                future.result()  # a worker never raises by design: if one does, it is a bug
        except BaseException:
            # Ctrl-C or a bug: start nothing new, and let the calls in flight finish and
            # be recorded before the state is saved and the lock released.
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
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
        if change.pending is not None and not isinstance(change, Create):
            # The interrupted create is no longer wanted as it was: close it by its biz_id
            # (in case it did land unseen) and drop the intent.
            self._cancel(change.pending)
            if isinstance(change, Complete):
                return f"interrupted create {change.pending.biz_id} cancelled"
        if isinstance(change, Complete):
            return self._complete(change.current)
        if isinstance(change, Create) and change.pending is not None:
            record, retired = settle(self.ledger, self.backend, change.pending)
        else:
            record, retired = self._create(change.desired)
        if retired is not None:
            # The record this one supersedes: completed only once its successor exists.
            self._complete(retired)
        return record.record_id

    def _cancel(self, pending: PendingCreate) -> None:
        self.backend.complete(pending.userid, pending.biz_id)
        self.ledger.abandon_create(pending.address)

    def _complete(self, record: StateRecord) -> str:
        known = self.backend.complete(record.userid, record.record_id)
        self.ledger.mark_completed(record, by="dingsync")
        if not known:
            self.reporter.note(
                f"{record.address}: DingTalk does not know record {record.record_id} any more; "
                "treated as done"
            )
        return record.record_id

    def _create(self, desired: DesiredRecord) -> tuple[StateRecord, StateRecord | None]:
        state = self.ledger.state
        generation = state.next_generation(desired.address)
        # A create_time from the file is shifted by the generation (milliseconds): every
        # record of one address then has its own, so a lookup can never adopt an older one.
        create_time_ms = (
            desired.create_time_ms + generation
            if desired.create_time_ms is not None
            else self._clock_ms()
        )
        pending = PendingCreate(
            key=desired.key,
            userid=desired.userid,
            biz_id=biz_id_for(state.lineage, desired.address, generation),
            generation=generation,
            content=desired.content,
            fingerprint=desired.content.fingerprint(),
            create_time_ms=create_time_ms,
            sent_at=utc_now(),
            replaces=state.records[desired.address].record_id
            if desired.address in state.records
            else None,
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
            return settle(self.ledger, self.backend, pending)
        except DuplicateError as exc:
            return self._duplicate(pending, exc)
        except ApiError as exc:
            if not exc.fatal:
                self.ledger.abandon_create(pending.address)
            raise
        return self.ledger.finish_create(pending, record_id)

    def _duplicate(
        self, pending: PendingCreate, exc: DuplicateError
    ) -> tuple[StateRecord, StateRecord | None]:
        """854001 on a first send: an earlier attempt with this biz_id may have landed
        (a retried answer, a restored state); otherwise it is the same-day content rule."""
        remote = find_remote(self.backend, [pending], self.ledger.known_record_ids())
        found = remote.get(pending.address)
        if found is not None:
            return adopt(self.ledger, pending, found)
        self.ledger.abandon_create(pending.address)
        raise DingsyncError(
            f"{exc}; DingTalk accepts one to-do with the same title and form per user per "
            "day (change the title or form, or apply again tomorrow)"
        ) from None
