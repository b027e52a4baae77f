"""Pure planning: desired records + state -> the changes that bring DingTalk in line.

What a change can be depends on the API's declared capabilities: legacy to-dos cannot be
edited, so every content change is a replace (create the new record, then complete the
old one) and a removal a completion; v1.0 to-dos are updated in place where the changed
fields allow it, reopened, and deleted where the file asks. Nothing here does I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from typing import Literal
from typing import NamedTuple

from dingsync.backend import Capabilities
from dingsync.backend import capabilities_of
from dingsync.chinatime import CHINA
from dingsync.chinatime import china_day
from dingsync.diff import FieldChange
from dingsync.diff import diff
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


class Update(NamedTuple):
    """Change in-place fields of an open to-do: the file changed, or DingTalk drifted."""

    desired: DesiredRecord
    current: StateRecord
    changes: tuple[FieldChange, ...]
    pending: None = None
    action: Literal["update"] = "update"

    @property
    def address(self) -> str:
        return self.desired.address


class Reopen(NamedTuple):
    """Open again a to-do that dingsync completed, with the file's in-place fields."""

    desired: DesiredRecord
    current: StateRecord
    changes: tuple[FieldChange, ...] = ()
    pending: None = None
    action: Literal["reopen"] = "reopen"

    @property
    def address(self) -> str:
        return self.desired.address


class Delete(NamedTuple):
    """Delete a to-do: removed from a file with ``on_removal: delete``, or the old one of a
    replace where the API deletes."""

    current: StateRecord
    reason: str = "removed"  # removed | replaced
    pending: None = None
    action: Literal["delete"] = "delete"

    @property
    def address(self) -> str:
        return self.current.address


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


Change = Create | Update | Replace | Reopen | Complete | Delete
# The order of the plan and of its summary line.
ACTIONS = ("create", "update", "replace", "reopen", "complete", "delete")


class Plan(NamedTuple):
    creates: tuple[Create, ...] = ()
    replaces: tuple[Replace, ...] = ()
    completes: tuple[Complete, ...] = ()
    managed: int = 0  # open records in state: the base of the safety share
    unchanged: int = 0
    notes: tuple[str, ...] = ()
    updates: tuple[Update, ...] = ()
    reopens: tuple[Reopen, ...] = ()
    deletes: tuple[Delete, ...] = ()

    @property
    def changes(self) -> tuple[Change, ...]:
        return (
            *self.creates,
            *self.updates,
            *self.replaces,
            *self.reopens,
            *self.completes,
            *self.deletes,
        )

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = dict.fromkeys(ACTIONS, 0)
        for change in self.changes:
            counted[change.action] += 1
        return counted

    def summary(self) -> str:
        if not self.has_changes:
            return "No changes."
        parts = [f"{n} to {action}" for action, n in self.counts().items() if n]
        return "Plan: " + ", ".join(parts) + "."

    def destructive_count(self) -> int:
        """Replacements, completions and deletions of managed records that are open now,
        and recreates of records gone missing (a wrong endpoint makes every record look
        so). Updates and reopens change no to-do's existence and do not count."""
        replaced = sum(1 for r in self.replaces if r.pending is None)
        recreated = sum(1 for c in self.creates if c.reason == "missing")
        completed = sum(1 for c in self.completes if c.reason in ("removed", "done"))
        deleted = sum(1 for d in self.deletes if d.reason == "removed")
        return replaced + recreated + completed + deleted

    def unsafe_reason(self) -> str | None:
        """Why this plan needs --force, or None when it is within the safety threshold."""
        touched = self.destructive_count()
        base = self.managed + sum(1 for c in self.creates if c.reason == "missing")
        if base < SAFETY_MIN_RECORDS or touched <= SAFETY_MAX_SHARE * base:
            return None
        share = 100.0 * touched / base
        return (
            f"the plan would replace, complete, delete or recreate {touched} of {base} managed "
            f"records ({share:.0f}%, more than {SAFETY_MAX_SHARE:.0%}); review it and rerun "
            "with --force"
        )


def diff_content(before: Content, after: Content) -> tuple[FieldChange, ...]:
    """What a change of ``before`` into ``after`` changes, among the compared fields."""
    return diff(before, after, CONTENT_FIELDS)


def _plan_desired(
    desired: DesiredRecord, current: StateRecord | None, caps: Capabilities
) -> Change | None:
    if current is None:
        # A task that is done before dingsync ever sent it needs no to-do at all.
        return None if desired.status == "done" else Create(desired)
    if desired.status == "done":
        if current.status == "open" and not current.missing:
            return Complete(current, reason="done")
        return None
    if current.missing:
        return Create(desired, reason="missing")
    changes = diff_content(current.content, desired.content)
    in_place = all(fc.head in caps.in_place for fc in changes)
    if current.status == "done":
        # A record the assignee finished stays finished; one that dingsync closed because
        # the file said done (or dropped the task) is assigned again when the file reopens it.
        if current.completed_by != "dingsync":
            return None
        if caps.reopens and in_place:
            return Reopen(desired, current, changes)
        return Create(desired, reason="reopened")
    if not changes:
        return None
    if in_place:
        return Update(desired, current, changes)
    return Replace(desired, current, changes)


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
    if desired is not None and wanted_open and not diff_content(pending.content, desired.content):
        return Create(desired, reason="resume", pending=pending)
    ghost = as_record(pending)
    if desired is None or not wanted_open:
        return Complete(ghost, reason="interrupted", pending=pending)
    return Replace(desired, ghost, diff_content(pending.content, desired.content), pending=pending)


def _finished_by_assignee(current: StateRecord | None, pending: PendingCreate) -> bool:
    return (
        current is not None
        and pending.replaces == current.record_id
        and current.status == "done"
        and current.completed_by != "dingsync"
    )


class _Buckets:
    def __init__(self) -> None:
        self.by_action: dict[str, list[Change]] = {action: [] for action in ACTIONS}
        self.unchanged = 0

    def add(self, change: Change | None) -> None:
        if change is None:
            self.unchanged += 1
        else:
            self.by_action[change.action].append(change)

    def sorted(self, action: str) -> tuple[Any, ...]:
        return tuple(sorted(self.by_action[action], key=lambda c: (c.address, _record_id(c))))


def _record_id(change: Change) -> str:
    current = getattr(change, "current", None)
    return current.record_id if current is not None else ""


def _retire(old: StateRecord, caps: Capabilities) -> Change:
    """The old record of a replace: deleted where the API deletes (SPEC), else completed."""
    return Delete(old, reason="replaced") if caps.deletes else Complete(old, reason="replaced")


def _remove(current: StateRecord, task_file: TaskFile, caps: Capabilities) -> Change:
    if task_file.on_removal == "delete" and caps.deletes:
        return Delete(current, reason="removed")
    return Complete(current, reason="removed")


def make_plan(task_file: TaskFile, state: State, today: str | None = None) -> Plan:
    """Compare the desired records with the state; every address lands in one bucket.

    ``today`` (China time, ``YYYY-MM-DD``, see ``china_day``) lets the plan warn of
    replaces that DingTalk will refuse today; without it there is no such note.
    """
    caps = capabilities_of(task_file.api)
    buckets = _Buckets()
    desired_by_address = task_file.by_address()
    for address, desired in desired_by_address.items():
        current = state.records.get(address)
        pending = state.pending.get(address)
        if pending is None:
            buckets.add(_plan_desired(desired, current, caps))
            continue
        if _finished_by_assignee(current, pending):
            # The interrupted create would replace a to-do its assignee has finished since:
            # never sent (a Complete of the intent closes what it may have become).
            buckets.add(_plan_pending(None, pending))
            continue
        change = _plan_pending(desired, pending)
        buckets.add(change)
        # A resumed or replaced interrupted create retires the record it supersedes when it
        # lands; a cancelled one leaves that record to its own fate (status: done).
        if isinstance(change, Complete) and current is not None:
            follow_up = _plan_desired(desired, current, caps)
            if follow_up is not None:
                buckets.add(follow_up)
    for address, current in state.records.items():
        if address not in desired_by_address and current.status == "open" and not current.missing:
            buckets.add(_remove(current, task_file, caps))
    for address, pending in state.pending.items():
        if address not in desired_by_address:
            buckets.add(_plan_pending(None, pending))
    for old in state.retiring.values():
        buckets.add(_retire(old, caps))
    creates: list[Create] = list(buckets.sorted("create"))
    replaces: list[Replace] = list(buckets.sorted("replace"))
    unchanged = buckets.unchanged
    managed = sum(1 for r in state.records.values() if r.status == "open" and not r.missing)
    key_name = "sourceId" if caps.api == "todo" else "biz_id"
    notes = tuple(
        f"{address}: a create was interrupted; it is looked up first and sent again "
        f"(with its own {key_name}) only if DingTalk does not have it"
        for address in sorted(state.pending)
    )
    if today is not None and caps.same_day_rule:
        notes += tuple(_refused_today(creates, replaces, state, today))
    return Plan(
        creates=tuple(creates),
        replaces=tuple(replaces),
        completes=buckets.sorted("complete"),
        managed=managed,
        unchanged=unchanged,
        notes=notes,
        updates=buckets.sorted("update"),
        reopens=buckets.sorted("reopen"),
        deletes=buckets.sorted("delete"),
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
