"""Pure planning: desired records + state -> the changes that bring DingTalk in line.

To-dos cannot be edited, so a content change is a replace (create the new record, then
complete the old one), and a removal is a completion. Nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from typing import Literal
from typing import NamedTuple

from dingsync.chinatime import CHINA
from dingsync.chinatime import china_day
from dingsync.model import CONTENT_FIELDS
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import State
from dingsync.model import StateRecord
from dingsync.model import TaskFile

# octoDNS-style guard: refuse to replace or complete a large share of what is managed.
SAFETY_MIN_RECORDS = 10
SAFETY_MAX_SHARE = 0.30


class FieldChange(NamedTuple):
    field: str
    before: Any
    after: Any


class Create(NamedTuple):
    desired: DesiredRecord
    # new | missing (gone remotely) | reopened (file says open again) | resume (interrupted)
    reason: str = "new"
    # For "resume": the interrupted create, sent again with its own biz_id if still absent.
    pending: PendingCreate | None = None
    action: Literal["create"] = "create"

    @property
    def address(self) -> str:
        return self.desired.address


class Replace(NamedTuple):
    desired: DesiredRecord
    current: StateRecord
    changes: tuple[FieldChange, ...]
    # Set when ``current`` is an interrupted create whose content the file has changed since.
    pending: PendingCreate | None = None
    action: Literal["replace"] = "replace"

    @property
    def address(self) -> str:
        return self.desired.address


class Complete(NamedTuple):
    current: StateRecord
    # removed (not in the file) | done (status: done) | replaced (old record of a replace)
    # | interrupted (a create that never settled and is no longer wanted)
    reason: str = "removed"
    # Set for "interrupted": completed by its biz_id, which DingTalk's update accepts.
    pending: PendingCreate | None = None
    action: Literal["complete"] = "complete"

    @property
    def address(self) -> str:
        return self.current.address


Change = Create | Replace | Complete


class Plan(NamedTuple):
    creates: tuple[Create, ...] = ()
    replaces: tuple[Replace, ...] = ()
    completes: tuple[Complete, ...] = ()
    managed: int = 0  # open records in state: the base of the safety share
    unchanged: int = 0
    notes: tuple[str, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        return (*self.creates, *self.replaces, *self.completes)

    @property
    def has_changes(self) -> bool:
        return bool(self.creates or self.replaces or self.completes)

    def summary(self) -> str:
        if not self.has_changes:
            return "No changes."
        return (
            f"Plan: {len(self.creates)} to create, {len(self.replaces)} to replace, "
            f"{len(self.completes)} to complete."
        )

    def destructive_count(self) -> int:
        """Replacements and completions of managed records that are open now, and
        recreates of records gone missing (a wrong endpoint makes every record look so)."""
        replaced = sum(1 for r in self.replaces if r.pending is None)
        recreated = sum(1 for c in self.creates if c.reason == "missing")
        completed = sum(1 for c in self.completes if c.reason in ("removed", "done"))
        return replaced + recreated + completed

    def unsafe_reason(self) -> str | None:
        """Why this plan needs --force, or None when it is within the safety threshold."""
        touched = self.destructive_count()
        base = self.managed + sum(1 for c in self.creates if c.reason == "missing")
        if base < SAFETY_MIN_RECORDS or touched <= SAFETY_MAX_SHARE * base:
            return None
        share = 100.0 * touched / base
        return (
            f"the plan would replace, complete or recreate {touched} of {base} managed "
            f"records ({share:.0f}%, more than {SAFETY_MAX_SHARE:.0%}); review it and rerun "
            "with --force"
        )


def diff_content(before: Content, after: Content) -> tuple[FieldChange, ...]:
    old, new = before.to_dict(), after.to_dict()
    return tuple(
        FieldChange(f, old.get(f), new.get(f)) for f in CONTENT_FIELDS if old.get(f) != new.get(f)
    )


def _plan_desired(desired: DesiredRecord, current: StateRecord | None) -> Change | None:
    if current is None:
        # A task that is done before dingsync ever sent it needs no to-do at all.
        return None if desired.status == "done" else Create(desired)
    if desired.status == "done":
        if current.status == "open" and not current.missing:
            return Complete(current, reason="done")
        return None
    if current.missing:
        return Create(desired, reason="missing")
    if current.status == "done":
        # A record the assignee finished stays finished; one that dingsync closed because
        # the file said done (or dropped the task) is assigned again when the file reopens it.
        if current.completed_by == "dingsync":
            return Create(desired, reason="reopened")
        return None
    changes = diff_content(current.content, desired.content)
    if changes:
        return Replace(desired, current, changes)
    return None


def as_record(pending: PendingCreate) -> StateRecord:
    """An interrupted create seen as the record it may have become.

    Its biz_id stands in for the record_id: DingTalk's update accepts either.
    """
    return StateRecord(
        key=pending.key,
        userid=pending.userid,
        record_id=pending.biz_id,
        biz_id=pending.biz_id,
        generation=pending.generation,
        content=pending.content,
        fingerprint=pending.fingerprint,
        status="open",
        create_time_ms=pending.create_time_ms,
        created_at=pending.sent_at,
        updated_at=pending.sent_at,
    )


def _plan_pending(desired: DesiredRecord | None, pending: PendingCreate) -> Change:
    """An interrupted create that the lists did not show: resume it only if still wanted.

    Never a fresh create over it: that would take a new biz_id, and if the interrupted
    one did land after all, the user would get the to-do twice.
    """
    wanted_open = desired is not None and desired.status == "open"
    # Compared by value, not by fingerprint: a fingerprint written by another version of
    # dingsync may be computed differently.
    if desired is not None and wanted_open and desired.content == pending.content:
        return Create(desired, reason="resume", pending=pending)
    ghost = as_record(pending)
    if desired is None or not wanted_open:
        return Complete(ghost, reason="interrupted", pending=pending)
    return Replace(desired, ghost, diff_content(pending.content, desired.content), pending=pending)


class _Buckets:
    def __init__(self) -> None:
        self.creates: list[Create] = []
        self.replaces: list[Replace] = []
        self.completes: list[Complete] = []
        self.unchanged = 0

    def add(self, change: Change | None) -> None:
        if change is None:
            self.unchanged += 1
        elif isinstance(change, Create):
            self.creates.append(change)
        elif isinstance(change, Replace):
            self.replaces.append(change)
        else:
            self.completes.append(change)


def make_plan(task_file: TaskFile, state: State, today: str | None = None) -> Plan:
    """Compare the desired records with the state; every address lands in one bucket.

    ``today`` (China time, ``YYYY-MM-DD``, see ``china_day``) lets the plan warn of
    replaces that DingTalk will refuse today; without it there is no such note.
    """
    buckets = _Buckets()
    desired_by_address = task_file.by_address()
    for address, desired in desired_by_address.items():
        current = state.records.get(address)
        pending = state.pending.get(address)
        if pending is None:
            buckets.add(_plan_desired(desired, current))
            continue
        change = _plan_pending(desired, pending)
        buckets.add(change)
        # A resumed or replaced interrupted create retires the record it supersedes when it
        # lands; a cancelled one leaves that record to its own fate (status: done).
        if isinstance(change, Complete) and current is not None:
            follow_up = _plan_desired(desired, current)
            if follow_up is not None:
                buckets.add(follow_up)
    for address, current in state.records.items():
        if address not in desired_by_address and current.status == "open" and not current.missing:
            buckets.add(Complete(current, reason="removed"))
    for address, pending in state.pending.items():
        if address not in desired_by_address:
            buckets.add(_plan_pending(None, pending))
    for old in state.retiring.values():
        buckets.add(Complete(old, reason="replaced"))
    creates, replaces, completes = buckets.creates, buckets.replaces, buckets.completes
    unchanged = buckets.unchanged
    managed = sum(1 for r in state.records.values() if r.status == "open" and not r.missing)
    notes = tuple(
        f"{address}: a create was interrupted; it is looked up first and sent again "
        "(with its own biz_id) only if DingTalk does not have it"
        for address in sorted(state.pending)
    )
    if today is not None:
        notes += tuple(_refused_today(creates, replaces, state, today))
    return Plan(
        creates=tuple(sorted(creates, key=lambda c: c.address)),
        replaces=tuple(sorted(replaces, key=lambda c: c.address)),
        completes=tuple(sorted(completes, key=lambda c: (c.address, c.current.record_id))),
        managed=managed,
        unchanged=unchanged,
        notes=notes,
    )


# DingTalk keeps one to-do of the same title and form per user and China-time day, done
# or not (docs/dingtalk-workrecord.md §3.7).


def _refused_today(
    creates: list[Create], replaces: list[Replace], state: State, today: str
) -> list[str]:
    """Notes for records to be sent that a record the user got today already matches in
    title and form: DingTalk refuses them (854001) until tomorrow, China time."""
    sent_today = {
        (r.userid, r.content.title, r.content.form)
        for r in (*state.records.values(), *state.retiring.values())
        if _created_on(r, today)
    }
    notes = []
    to_send: list[Create | Replace] = [*creates, *replaces]
    for change in sorted(to_send, key=lambda c: c.address):
        if change.pending is not None:
            continue  # an interrupted create is resent with its own biz_id, or found
        d = change.desired
        if (d.userid, d.content.title, d.content.form) in sent_today:
            notes.append(
                f"{change.address}: {d.userid} already got a to-do with this title and form "
                "today, so DingTalk will refuse it until tomorrow (China time); change the "
                "title or form to send it today"
            )
    return notes


def _created_on(record: StateRecord, day: str) -> bool:
    """Whether ``record`` reached DingTalk on ``day``, as far as the state can tell: both
    when dingsync recorded it and its create_time fall on that day. (An imported record
    was recorded on the day of the import, but keeps the create_time it had.)"""
    try:
        recorded = datetime.fromisoformat(str(record.created_at).replace("Z", "+00:00"))
        stamped = datetime.fromtimestamp(int(record.create_time_ms) / 1000, CHINA)
    except (ValueError, TypeError, OverflowError, OSError):
        return False
    return recorded.tzinfo is not None and china_day(recorded) == china_day(stamped) == day
