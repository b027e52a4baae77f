"""Settle creates that were sent but never confirmed (a crash, a kill, a lost answer).

The rule that keeps one remote record per address: an interrupted create is first looked
for in the user's lists (dingsync chose its create_time, title, url and form, so an exact
match is ours); only when it is not there may it be sent again, and then with its own
biz_id, which DingTalk refuses (854001) if the first attempt did land after all.

Looking up is always safe and happens at the start of every apply and drift. Sending
again happens only inside an approved apply (``settle``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from dingsync.backend import Backend
from dingsync.errors import ApiError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.ledger import Ledger
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.model import Status
from dingsync.reporter import Reporter

STATUSES: tuple[Status, ...] = ("open", "done")


def matches(pending: PendingCreate, remote: RemoteRecord) -> bool:
    content = pending.content
    return (
        remote.create_time_ms == pending.create_time_ms
        and remote.title == content.title
        and remote.url == content.url
        and remote.form == content.form
    )


def find_remote(
    backend: Backend, pendings: Iterable[PendingCreate], known_ids: set[str]
) -> dict[str, RemoteRecord]:
    """Look the pending creates of one user up in the open list, then the done list.

    Records already in the state are excluded, so an older record of the same address
    is never mistaken for the new one.
    """
    wanted = {p.address: p for p in pendings}
    found: dict[str, RemoteRecord] = {}
    if not wanted:
        return found
    userid = next(iter(wanted.values())).userid
    for status in STATUSES:
        for remote in backend.list_records(userid, status):
            if remote.record_id in known_ids:
                continue
            for address, pending in list(wanted.items()):
                if matches(pending, remote):
                    found[address] = remote
                    del wanted[address]
                    break
            if not wanted:
                return found
    return found


def adopt(
    ledger: Ledger, pending: PendingCreate, remote: RemoteRecord
) -> tuple[StateRecord, StateRecord | None]:
    return ledger.finish_create(pending, remote.record_id, remote.status)


def look_up_pending(ledger: Ledger, backend: Backend, reporter: Reporter) -> int:
    """Adopt every interrupted create that DingTalk lists; sends nothing.

    Returns how many stay pending: those the next plan resumes (or cancels, when the
    file no longer wants them).
    """
    state = ledger.state
    if not state.pending:
        return 0
    by_user: dict[str, list[PendingCreate]] = defaultdict(list)
    for pending in list(state.pending.values()):
        by_user[pending.userid].append(pending)
    known_ids = ledger.known_record_ids()
    left = 0
    for userid in sorted(by_user):
        pendings = by_user[userid]
        found = find_remote(backend, pendings, known_ids)
        for pending in pendings:
            remote = found.get(pending.address)
            if remote is None:
                left += 1
                continue
            adopt(ledger, pending, remote)
            known_ids.add(remote.record_id)
            reporter.resolved(pending.address, "found on DingTalk and adopted")
    return left


def settle(
    ledger: Ledger, backend: Backend, pending: PendingCreate
) -> tuple[StateRecord, StateRecord | None]:
    """Settle one interrupted create inside an approved apply: adopt it, or send it again.

    Raises when it stays unsettled (the pending entry is kept for the next run).
    """
    known_ids = ledger.known_record_ids()
    remote = find_remote(backend, [pending], known_ids).get(pending.address)
    if remote is not None:
        return adopt(ledger, pending, remote)
    try:
        record_id = backend.create(
            pending.userid, pending.content, pending.biz_id, pending.create_time_ms
        )
    except DuplicateError:
        # DingTalk holds this biz_id: the first attempt landed. Look once more (it may
        # have landed after our lookup); if it still cannot be seen, keep it pending.
        remote = find_remote(backend, [pending], known_ids).get(pending.address)
        if remote is None:
            raise DingsyncError(
                f"DingTalk already holds biz_id {pending.biz_id} for {pending.userid}, but "
                "the record is in neither of the user's lists; left pending"
            ) from None
        return adopt(ledger, pending, remote)
    except ApiError as exc:
        # A definite refusal: nothing exists remotely for this intent.
        if not exc.fatal:
            ledger.abandon_create(pending.address)
        raise
    return ledger.finish_create(pending, record_id)
