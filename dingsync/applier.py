"""Carry out a plan against a backend, recording every result in the state as it arrives.

One failing record does not stop the others; an error marked ``fatal`` (credentials, the
monthly quota, an IP block) stops the run, because every further call would fail too.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

from dingsync.backend import Backend
from dingsync.backend import MovePast
from dingsync.errors import ApiError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import TransportError
from dingsync.ledger import Ledger
from dingsync.ledger import utc_now
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import StateRecord
from dingsync.planner import Change
from dingsync.planner import Complete
from dingsync.planner import Create
from dingsync.planner import Delete
from dingsync.planner import Plan
from dingsync.planner import Reopen
from dingsync.planner import Update
from dingsync.recovery import KeyTakenError
from dingsync.recovery import adopt
from dingsync.recovery import settle
from dingsync.reporter import Reporter

# How many generations a create moves past when its keys were used by forgotten records.
MAX_KEY_ATTEMPTS = 5


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # Completions held back because the to-do that takes over from the old one failed.
    skipped: dict[str, str] = field(default_factory=dict)
    # Existing to-dos taken over instead of created (filled in before the plan is made).
    adopted: list[str] = field(default_factory=list)
    fatal: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.fatal is None

    def done_list(self, action: str) -> list[str]:
        """The addresses ``action`` (create, update, ...) succeeded for."""
        lists: dict[str, list[str]] = {
            "create": self.created,
            "update": self.updated,
            "replace": self.replaced,
            "reopen": self.reopened,
            "complete": self.completed,
            "delete": self.deleted,
        }
        return lists[action]


class Applier:
    def __init__(
        self,
        ledger: Ledger,
        backend: Backend,
        reporter: Reporter,
        parallelism: int = 4,
        clock_ms: Callable[[], int] | None = None,
        namespace: str = "tasks",
    ) -> None:
        self.ledger = ledger
        self.backend = backend
        self.reporter = reporter
        self.parallelism = max(1, parallelism)
        self.namespace = namespace
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._stop = threading.Event()
        self._result_lock = threading.Lock()
        # Never left without the task: the completion of a renamed key's old to-do waits
        # for the create that takes over from it (record_id -> the create's address).
        self._successor: dict[str, str] = {}
        self._finished: dict[str, threading.Event] = {}
        self._created: set[str] = set()
        # Creates that found their to-do already on DingTalk (its key was taken by it).
        self._found_there: set[str] = set()
        # Creates of this run whose answer was lost: what holds their key may be their own.
        self._unanswered: set[str] = set()

    def apply(self, plan: Plan, result: ApplyResult | None = None) -> ApplyResult:
        result = result or ApplyResult()
        followers = self._pair_renames(plan)
        queue = _Queue(_interleaved(plan, followers), followers, self._stop)
        self.reporter.started(len(plan.changes), "apply")
        workers = min(self.parallelism, max(1, len(plan.changes)))
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            futures: list[Future[None]] = [
                pool.submit(self._work, queue, result) for _ in range(workers)
            ]
            for future in futures:
                future.result()  # a worker never raises by design: if one does, it is a bug
        except BaseException:
            # Ctrl-C or a bug: start nothing new, and let the calls in flight finish and
            # be recorded before the state is saved and the lock released.
            queue.halt()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            self.reporter.finished("apply")
        return result

    def _work(self, queue: _Queue, result: ApplyResult) -> None:
        """One worker: carry out changes in the queue's order until none is left."""
        while (change := queue.next()) is not None:
            try:
                self._run_one(change, result)
            finally:
                if isinstance(change, Create):
                    finished = self._finished.get(change.address)
                    if finished is not None:
                        finished.set()
                    queue.finished(change.address)

    def _pair_renames(self, plan: Plan) -> dict[str, list[Complete | Delete]]:
        """Pair each removed to-do with a create of the same userid, title and form.

        That is a renamed task key: the old to-do must stay open until the new one exists
        (DingTalk refuses the new one the same day, 854001, while the old one is open).
        Returns the completions that wait, by the address of the create they wait for.
        """
        creates = {
            (c.desired.userid, c.desired.content.title, c.desired.content.form): c.address
            for c in plan.creates
        }
        followers: dict[str, list[Complete | Delete]] = {}
        retirements: tuple[Complete | Delete, ...] = (*plan.completes, *plan.deletes)
        for complete in retirements:
            if complete.reason != "removed":
                continue
            current = complete.current
            successor = creates.get((current.userid, current.content.title, current.content.form))
            if successor is not None:
                self._successor[current.record_id] = successor
                self._finished.setdefault(successor, threading.Event())
                followers.setdefault(successor, []).append(complete)
        return followers

    def _held_back(self, change: Change) -> str | None:
        """Why a completion must not run: the to-do that takes over from it failed."""
        if not isinstance(change, (Complete, Delete)):
            return None
        successor = self._successor.get(change.current.record_id)
        if successor is None:
            return None
        # Queued only once its create has finished (``_Queue``): this never waits.
        self._finished[successor].wait()
        if successor in self._created:
            return None
        return f"kept open: {successor}, which takes over from it, was not created"

    def _run_one(self, change: Change, result: ApplyResult) -> None:
        if self._stop.is_set():
            return
        held_back = self._held_back(change)
        if held_back is not None:
            with self._result_lock:
                result.skipped[change.address] = held_back
            self.reporter.note(f"{change.address}: completion skipped, {held_back}")
            self.reporter.advanced("apply")
            return
        try:
            detail = self._run(change)
        except DingsyncError as exc:
            message = str(exc)
            with self._result_lock:
                if exc.fatal:
                    result.fatal = result.fatal or message
                    self._stop.set()
                else:
                    result.failed[change.address] = message
            self.reporter.failed(change.action, change.address, message)
        else:
            with self._result_lock:
                if isinstance(change, Create) and change.address in self._found_there:
                    # Not created: it was there (a lost state); counted as adopted.
                    result.adopted.append(change.address)
                    detail += ", already on DingTalk: adopted"
                else:
                    result.done_list(change.action).append(change.address)
                if isinstance(change, Create):
                    self._created.add(change.address)
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
        if isinstance(change, Delete):
            return self._delete(change.current)
        if isinstance(change, (Update, Reopen)):
            return self._edit(change)
        if isinstance(change, Create) and change.pending is not None:
            record, retired = self._settle(change.desired, change.pending, attempt=1)
        else:
            record, retired = self._create(change.desired)
        if retired is not None:
            # The record this one supersedes: retired only once its successor exists.
            if self.backend.capabilities.deletes:
                self._delete(retired)
            else:
                self._complete(retired)
        return record.record_id

    def _edit(self, change: Update | Reopen) -> str:
        record, content = change.current, change.desired.content
        if isinstance(change, Reopen):
            self.ledger.begin_reopen(record)
            try:
                found = self.backend.reopen(record, content)
            except TransportError as exc:
                if not exc.maybe_committed:
                    self.ledger.abandon_reopen(record)
                raise
            except ApiError:
                self.ledger.abandon_reopen(record)
                raise
        else:
            found = self.backend.update(record, content)
        if not found:
            self.ledger.record_observations([], [record])
            raise DingsyncError(
                f"DingTalk does not know to-do {record.record_id} any more (deleted on "
                "DingTalk?); recorded as missing, so the next apply creates it again"
            )
        self.ledger.record_edit(record, content, reopened=isinstance(change, Reopen))
        return record.record_id

    def _delete(self, record: StateRecord) -> str:
        known = self.backend.delete(record)
        self.ledger.mark_deleted(record)
        if not known:
            self.reporter.note(
                f"{record.address}: DingTalk does not know to-do {record.record_id} any more; "
                "treated as deleted"
            )
        return record.record_id

    def _cancel(self, pending: PendingCreate) -> None:
        # Closing by the key closes whatever holds it. If a to-do of this address whose
        # key is unknown (adopted) may hold it, that could be the to-do the file still
        # wants; the lookup at the start of the run did not find the interrupted create,
        # so dropping the intent is enough.
        if not self._key_may_be_held(pending):
            self.backend.cancel(pending)
        self.ledger.abandon_create(pending.address)

    def _key_may_be_held(self, pending: PendingCreate) -> bool:
        """Whether a record the state knows for this address may carry ``pending``'s key."""
        state = self.ledger.state
        ours = [r for r in state.retiring.values() if r.address == pending.address]
        current = state.records.get(pending.address)
        if current is not None:
            ours.append(current)
        return any(r.biz_id in ("", pending.biz_id) for r in ours)

    def _settle(
        self, desired: DesiredRecord, pending: PendingCreate, attempt: int
    ) -> tuple[StateRecord, StateRecord | None]:
        """Settle an interrupted create; if its key turns out to be held by a to-do of
        this address's own forgotten history, move past it as ``_duplicate`` does."""
        try:
            return settle(self.ledger, self.backend, pending)
        except KeyTakenError:
            own = (
                pending.address in self.ledger.state.records
                or self.backend.capabilities.key_per_address
            )
            if not own or attempt >= MAX_KEY_ATTEMPTS:
                raise
            self.ledger.abandon_create(pending.address)
            return self._create(desired, attempt + 1)
        except DingsyncError as exc:
            if exc.fatal or pending.address not in self.ledger.state.pending:
                raise
            raise DingsyncError(
                f"the create may have reached DingTalk (its answer was lost), and looking it "
                f"up failed: {exc}; it stays pending, and the next apply finds or resends it "
                f"with the same key"
            ) from exc

    def _complete(self, record: StateRecord) -> str:
        # Noted first: if the answer is lost, the next refresh sees the to-do done and must
        # not take it for the assignee's doing (a reopen in the file would not be sent).
        self.ledger.begin_complete(record)
        try:
            known = self.backend.complete(record)
        except TransportError as exc:
            if not exc.maybe_committed:
                self.ledger.abandon_complete(record)
                raise
            # The answer was lost: ask, where one call tells, so that no doubt is left.
            known = self._settle_completion(record, exc)
        except ApiError:
            self.ledger.abandon_complete(record)
            raise
        self.ledger.mark_completed(record, by="dingsync")
        if not known:
            self.reporter.note(
                f"{record.address}: DingTalk does not know record {record.record_id} any more; "
                "treated as done"
            )
        return record.record_id

    def _settle_completion(self, record: StateRecord, lost: TransportError) -> bool:
        """Whether a completion whose answer was lost landed (True) or the to-do is gone
        (False); raises ``lost`` when it did not land, or when DingTalk cannot tell."""
        try:
            status = self.backend.status_of(record)
        except DingsyncError:
            status = None
        if status is None:
            raise lost  # stays marked: the next refresh tells
        if status == "open":
            self.ledger.abandon_complete(record)
            raise lost
        return status == "done"

    def _create(
        self, desired: DesiredRecord, attempt: int = 1
    ) -> tuple[StateRecord, StateRecord | None]:
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
            biz_id=self.backend.key_for(self.namespace, desired.address, generation),
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
            record_id = self.backend.create(pending)
        except TransportError as exc:
            if not exc.maybe_committed:
                self.ledger.abandon_create(pending.address)
                raise
            # The answer was lost: never send blindly; settle it like an interrupted run.
            self._unanswered.add(pending.address)
            return self._settle(desired, pending, attempt)
        except DuplicateError as exc:
            return self._duplicate(desired, pending, exc, attempt)
        except ApiError as exc:
            if not exc.fatal:
                self.ledger.abandon_create(pending.address)
            raise
        return self.ledger.finish_create(pending, record_id)

    def _duplicate(
        self, desired: DesiredRecord, pending: PendingCreate, exc: DuplicateError, attempt: int
    ) -> tuple[StateRecord, StateRecord | None]:
        """DingTalk already holds this create's key (or, for the legacy API, a to-do with
        this title and form from today). What holds it is adopted if it is this create;
        never is a to-do created beside it under a fresh key unless it provably belongs to
        this address's own history (``MovePast``)."""
        own = pending.address in self.ledger.state.records
        try:
            found = self.backend.resolve_duplicate(
                pending, exc, self.ledger.known_record_ids(), own
            )
        except DingsyncError:
            self.ledger.abandon_create(pending.address)
            raise
        if not isinstance(found, MovePast):
            if pending.address not in self._unanswered:
                self._found_there.add(pending.address)
            return adopt(self.ledger, pending, found)
        self.ledger.abandon_create(pending.address)
        if attempt >= MAX_KEY_ATTEMPTS:
            raise DingsyncError(
                f"{exc}; the keys of {MAX_KEY_ATTEMPTS} generations of {pending.address} are "
                "all held by earlier to-dos; adopt the current one with 'dingsync import'"
            )
        return self._create(desired, attempt + 1)


def _interleaved(plan: Plan, followers: dict[str, list[Complete | Delete]]) -> list[Change]:
    """The plan's changes in the order they start, without the completions that wait.

    Each API has its own rate limit, so a plan is as fast as its busiest API allows only
    when the two are fed side by side: creates and replaces (workrecord/add first) are
    spread evenly among the completions (workrecord/update), each stream in plan order.
    """
    waiting = {id(c) for group in followers.values() for c in group}
    adds: list[Change] = [*plan.creates, *plan.replaces]
    others: tuple[Change, ...] = (*plan.updates, *plan.reopens, *plan.completes, *plan.deletes)
    updates: list[Change] = [c for c in others if id(c) not in waiting]
    if not adds or not updates:
        return [*adds, *updates]
    # Item i of a stream of n sits at (i + 0.5) / n of the run; a stable sort merges them.
    spread = [((i + 0.5) / len(adds), 0, c) for i, c in enumerate(adds)]
    spread += [((j + 0.5) / len(updates), 1, c) for j, c in enumerate(updates)]
    spread.sort(key=lambda item: (item[0], item[1]))
    return [change for _, _, change in spread]


class _Queue:
    """The changes still to start, shared by the workers.

    A completion paired with a create (a renamed key) joins the queue, at its head, only
    when that create has finished: it never occupies a worker while it waits, and it is
    not held back behind the rest of the plan either.
    """

    def __init__(
        self,
        order: list[Change],
        followers: dict[str, list[Complete | Delete]],
        stop: threading.Event,
    ) -> None:
        self._order: deque[Change] = deque(order)
        self._ready: deque[Change] = deque()
        self._followers = {address: list(group) for address, group in followers.items()}
        self._waiting = sum(len(group) for group in followers.values())
        self._stop = stop
        self._changed = threading.Condition()

    def next(self) -> Change | None:
        """The next change to start, or None when none is left (or the run stops).

        Waits only while nothing is ready and a running create still has a completion to
        release; that create finishes in another worker, so the wait always ends.
        """
        with self._changed:
            while not self._stop.is_set():
                if self._ready:
                    return self._ready.popleft()
                if self._order:
                    return self._order.popleft()
                if not self._waiting:
                    return None
                self._changed.wait()
            return None

    def finished(self, address: str) -> None:
        """A create finished (or failed, or was not started): release its completions."""
        with self._changed:
            group = self._followers.pop(address, [])
            self._ready.extend(group)
            self._waiting -= len(group)
            self._changed.notify_all()

    def halt(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
