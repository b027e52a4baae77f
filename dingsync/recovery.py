"""Settle creates that were sent but never confirmed (a crash, a kill, a lost answer).

The rule that keeps one remote record per address: a pending create is first looked for in
the user's lists (we chose its create_time, title, url and form, so an exact match is ours);
only when it is not there is it sent again, with the same biz_id, which DingTalk refuses
(854001) if the first attempt did land after all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from dingsync.backend import Backend
from dingsync.errors import ApiError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import TransportError
from dingsync.ledger import Ledger
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
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

    Records already in the state are excluded, so an older generation with the same
    content (a reopened task) is never mistaken for the new one.
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


def settle(ledger: Ledger, backend: Backend, pending: PendingCreate) -> str:
    """Settle one pending create: adopt it if it is listed, else send it again."""
    known_ids = ledger.known_record_ids()
    remote = find_remote(backend, [pending], known_ids).get(pending.address)
    if remote is not None:
        ledger.finish_create(pending, remote.record_id, remote.status)
        return "adopted"
    return resend(ledger, backend, pending, known_ids)


def resend(ledger: Ledger, backend: Backend, pending: PendingCreate, known_ids: set[str]) -> str:
    """Send a pending create again with its own biz_id, once the lists did not show it."""
    try:
        record_id = backend.create(
            pending.userid, pending.content, pending.biz_id, pending.create_time_ms
        )
    except DuplicateError:
        # DingTalk holds this biz_id: the first attempt landed. Look once more (it may have
        # landed after our lookup); if it still cannot be seen, keep the intent pending.
        found = find_remote(backend, [pending], known_ids).get(pending.address)
        if found is None:
            raise DingsyncError(
                f"{pending.address}: DingTalk already holds biz_id {pending.biz_id} for "
                f"{pending.userid}, but the record is in neither of the user's lists; "
                "left pending"
            ) from None
        ledger.finish_create(pending, found.record_id, found.status)
        return "adopted"
    except TransportError:
        raise
    except ApiError as exc:
        if not exc.fatal:
            ledger.abandon_create(pending.address)
        raise
    ledger.finish_create(pending, record_id)
    return "created"


def resolve_pending(ledger: Ledger, backend: Backend, reporter: Reporter) -> list[str]:
    """Settle every pending create; returns one message per address that stays unsettled."""
    state = ledger.state
    if not state.pending:
        return []
    by_user: dict[str, list[PendingCreate]] = defaultdict(list)
    for pending in state.pending.values():
        by_user[pending.userid].append(pending)
    known_ids = ledger.known_record_ids()
    failures: list[str] = []
    for userid in sorted(by_user):
        pendings = by_user[userid]
        found = find_remote(backend, pendings, known_ids)
        for pending in pendings:
            remote = found.get(pending.address)
            if remote is not None:
                ledger.finish_create(pending, remote.record_id, remote.status)
                known_ids.add(remote.record_id)
                reporter.resolved(pending.address, "adopted")
                continue
            try:
                outcome = resend(ledger, backend, pending, known_ids)
            except DingsyncError as exc:
                if getattr(exc, "fatal", False):
                    raise
                failures.append(f"{pending.address}: {exc}")
                reporter.resolved(pending.address, f"failed: {exc}")
                continue
            reporter.resolved(pending.address, outcome)
    return failures
