"""Find to-dos that exist on DingTalk but not (or not yet) in the state, and adopt them.

Three cases, one rule: never a second remote record for one address.

* An interrupted create (a crash, a kill, a lost answer) is looked for in the user's lists
  by exactly what dingsync sent (its create_time, title, url and form); only when it is not
  there may it be sent again, and then with its own biz_id, which DingTalk refuses
  (854001) if the first attempt did land after all.
* A record the state does not know (a lost, moved or new state; a renamed task file) is
  looked for in the user's open list by the title, url and form dingsync would send, and
  adopted instead of created (``adopt_existing``).
* A create refused as a duplicate (854001) is looked up the same way and adopted.

Looking up is always safe and happens at the start of every apply and drift. Sending
again happens only inside an approved apply (``settle``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dingsync.backend import Backend
from dingsync.errors import ApiError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import InvalidUserError
from dingsync.errors import RateLimitError
from dingsync.errors import TransientApiError
from dingsync.errors import TransportError
from dingsync.ledger import Ledger
from dingsync.ledger import utc_now
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.model import Status
from dingsync.reporter import Reporter

STATUSES: tuple[Status, ...] = ("open", "done")

# Readings of one list, each after the client's own retries, before a look-up gives up: a
# run under heavy faults then still finds what it looks for (issue 12 target).
LIST_ROUNDS = 3

# Failures after which another try may succeed: nothing was learnt from the call.
_UNSETTLED = (TransportError, TransientApiError, RateLimitError)


class KeyTakenError(DingsyncError):
    """An interrupted create was sent again and refused as a duplicate, yet no to-do with
    exactly what it sent can be found: its key is held by another to-do."""


T = TypeVar("T")


def matches(pending: PendingCreate, remote: RemoteRecord) -> bool:
    """Whether ``remote`` is exactly what ``pending`` sent, create_time included."""
    return remote.create_time_ms == pending.create_time_ms and same_content(pending.content, remote)


def same_content(content: Content, remote: RemoteRecord) -> bool:
    """Whether ``remote`` shows the title, url and form of ``content`` (all a list shows)."""
    return (
        remote.title == content.title and remote.url == content.url and remote.form == content.form
    )


def search_lists(
    backend: Backend,
    userid: str,
    wanted: Mapping[str, T],
    fits: Callable[[T, RemoteRecord], bool],
    known_ids: set[str],
    statuses: tuple[Status, ...] = STATUSES,
) -> dict[str, RemoteRecord]:
    """Page the user's lists (in ``statuses`` order) until every wanted key has a fit.

    Records already in the state are passed over, so an older record of the same address
    is never mistaken for a new one; each remote record fits one key at most.
    """
    left = dict(wanted)
    found: dict[str, RemoteRecord] = {}
    for status in statuses:
        if not left:
            break
        for remote in listing(backend, userid, status):
            if remote.record_id in known_ids:
                continue
            for key, item in list(left.items()):
                if fits(item, remote):
                    found[key] = remote
                    del left[key]
                    break
            if not left:
                break
    return found


def listing(backend: Backend, userid: str, status: Status) -> Iterator[RemoteRecord]:
    """The user's list, read again from its start where a page fails in transit.

    Reading is always safe to repeat; the records already yielded are not yielded again.
    """
    seen = 0
    for round_ in range(1, LIST_ROUNDS + 1):
        try:
            for n, remote in enumerate(backend.list_records(userid, status)):
                if n >= seen:
                    seen += 1
                    yield remote
            return
        except _UNSETTLED as exc:
            if exc.fatal or round_ >= LIST_ROUNDS:
                raise


def find_remote(
    backend: Backend, pendings: Iterable[PendingCreate], known_ids: set[str]
) -> dict[str, RemoteRecord]:
    """Look the pending creates of one user up in the open list, then the done list."""
    wanted = {p.address: p for p in pendings}
    if not wanted:
        return {}
    userid = next(iter(wanted.values())).userid
    return search_lists(backend, userid, wanted, matches, known_ids)


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


def adopt_existing(
    ledger: Ledger,
    backend: Backend,
    desired: Iterable[DesiredRecord],
    reporter: Reporter,
    parallelism: int = 1,
) -> list[str]:
    """Adopt the open to-dos that already are what the state does not know it has sent.

    For each address of the file that the state holds no record of, the user's open list
    is searched for a to-do with exactly the title, url and form dingsync would send. One
    is adopted rather than created again: the state was lost, moved or is new, or the task
    file was renamed. Costs one list call per page of each such user, and nothing when the
    state knows every address; users are looked up ``parallelism`` at a time, so that the
    look-up does not hold up a large first apply (the apply-speed target). Returns the
    adopted addresses.
    """
    state = ledger.state
    by_user: dict[str, dict[str, DesiredRecord]] = defaultdict(dict)
    for record in desired:
        address = record.address
        if record.status == "open" and address not in state.records:
            if address not in state.pending:
                by_user[record.userid][address] = record
    adopted: list[str] = []
    if not by_user:
        return adopted
    known_ids = ledger.known_record_ids()

    def search(userid: str) -> dict[str, RemoteRecord]:
        try:
            return search_lists(
                backend,
                userid,
                by_user[userid],
                lambda d, remote: same_content(d.content, remote),
                known_ids,
                statuses=("open",),
            )
        except InvalidUserError:
            return {}  # not a member: nothing to adopt, and its creates fail on their own

    users = sorted(by_user)
    # A user's lists hold only that user's to-dos, so the searches cannot find one record
    # twice; adopting happens afterwards, in order.
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(users)))) as pool:
        results = list(pool.map(search, users))
    for userid, found in zip(users, results, strict=True):
        wanted = by_user[userid]
        for address in sorted(found):
            remote = found[address]
            ledger.adopt(adopted_record(wanted[address], remote, ledger))
            known_ids.add(remote.record_id)
            adopted.append(address)
            reporter.note(f"{address}: found open on DingTalk ({remote.record_id}), adopted")
    return adopted


def adopted_record(desired: DesiredRecord, remote: RemoteRecord, ledger: Ledger) -> StateRecord:
    """The state record of an existing to-do taken over for ``desired``.

    Its biz_id cannot be read back, so it is left empty; the fields a list does not show
    (pc_url, source_name, ...) are taken to be the file's.
    """
    now = utc_now()
    return StateRecord(
        key=desired.key,
        userid=desired.userid,
        record_id=remote.record_id,
        biz_id="",
        generation=ledger.state.next_generation(desired.address),
        content=desired.content,
        fingerprint=desired.content.fingerprint(),
        status=remote.status,
        create_time_ms=remote.create_time_ms,
        created_at=now,
        updated_at=now,
        completed_by="assignee" if remote.status == "done" else None,
    )


# Rounds of look-up and resend for one create whose answer was lost, inside one run. Each
# round is safe (the resend carries the same biz_id); several rounds let a run settle its
# creates under heavy faults instead of leaving them to the next run (issue 12 target).
SETTLE_ROUNDS = 6


def settle(
    ledger: Ledger, backend: Backend, pending: PendingCreate, rounds: int = SETTLE_ROUNDS
) -> tuple[StateRecord, StateRecord | None]:
    """Settle one interrupted create inside an approved apply: adopt it, or send it again.

    A round whose look-up or resend fails in transit (or is answered busy) is followed by
    another, up to ``rounds``. Raises when it stays unsettled (the pending entry is kept for
    the next run).
    """
    for round_ in range(1, rounds + 1):
        try:
            return _settle_once(ledger, backend, pending)
        except _UNSETTLED as exc:
            if exc.fatal or round_ >= rounds or pending.address not in ledger.state.pending:
                raise
    raise AssertionError("unreachable: the last round returns or raises")


def _settle_once(
    ledger: Ledger, backend: Backend, pending: PendingCreate
) -> tuple[StateRecord, StateRecord | None]:
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
            raise KeyTakenError(
                f"DingTalk already holds biz_id {pending.biz_id} for {pending.userid}, but "
                "the record is in neither of the user's lists; left pending"
            ) from None
        return adopt(ledger, pending, remote)
    except (TransientApiError, RateLimitError):
        # Busy or throttled: this resend was not applied, but an earlier attempt may have
        # been, so the create stays pending.
        raise
    except ApiError as exc:
        # A definite refusal: nothing exists remotely for this intent.
        if not exc.fatal:
            ledger.abandon_create(pending.address)
        raise
    return ledger.finish_create(pending, record_id)
