"""Find to-dos that exist on DingTalk but not (or not yet) in the state, and adopt them.

Three cases, one rule: never a second remote record for one address.

* An interrupted create (a crash, a kill, a lost answer) is looked for by its key or by
  exactly what it sent, as its backend can (``Backend.find_created``); only when it is not
  there may it be sent again, and then with its own key, which DingTalk refuses if the
  first attempt did land after all.
* A record the state does not know (a lost, moved or new state; a renamed task file) is
  looked for remotely and adopted instead of created (``adopt_existing``).
* A create refused as a duplicate is looked up the same way and adopted.

Looking up is always safe and happens at the start of every apply and drift. Sending
again happens only inside an approved apply (``settle``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from dingsync.backend import Backend
from dingsync.errors import UNSETTLED
from dingsync.errors import ApiError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import RateLimitError
from dingsync.errors import TransientApiError
from dingsync.ledger import Ledger
from dingsync.ledger import utc_now
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.model import generation_of_key
from dingsync.reporter import Reporter


class KeyTakenError(DingsyncError):
    """An interrupted create was sent again and refused as a duplicate, yet no to-do with
    exactly what it sent can be found: its key is held by another to-do."""


def adopt(
    ledger: Ledger, pending: PendingCreate, remote: RemoteRecord
) -> tuple[StateRecord, StateRecord | None]:
    return ledger.finish_create(pending, remote.record_id, remote.status)


def look_up_pending(ledger: Ledger, backend: Backend, reporter: Reporter) -> int:
    """Adopt every interrupted create that DingTalk has; sends nothing.

    Returns how many stay pending: those the next plan resumes (or cancels, when the
    file no longer wants them).
    """
    state = ledger.state
    if not state.pending:
        return 0
    pendings = sorted(state.pending.values(), key=lambda p: p.address)
    known_ids = ledger.known_record_ids()
    found = backend.find_created(pendings, known_ids)
    left = 0
    for pending in pendings:
        remote = found.get(pending.address)
        if remote is None or remote.record_id in known_ids:
            left += int(remote is None)
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
    namespace: str = "tasks",
) -> list[str]:
    """Adopt the open to-dos that already are what the state does not know it has sent.

    For each address of the file that the state holds no record of, DingTalk is searched
    for the to-do dingsync would have sent (``Backend.find_existing``: by content in the
    legacy user's list, by sourceId in the v1.0 creator's list). One is adopted rather than
    created again: the state was lost, moved or is new, or the task file was renamed. Costs
    nothing when the state knows every address; groups (users, creators) are looked up
    ``parallelism`` at a time, so that the look-up does not hold up a large first apply.
    Returns the adopted addresses.
    """
    state = ledger.state
    by_group: dict[str, dict[str, DesiredRecord]] = defaultdict(dict)
    for record in desired:
        address = record.address
        if record.status == "open" and address not in state.records:
            if address not in state.pending:
                by_group[backend.lookup_group(record)][address] = record
    adopted: list[str] = []
    if not by_group:
        return adopted
    known_ids = ledger.known_record_ids()

    # An empty state (new, lost, or of a renamed file) cannot tell a new task from one
    # whose to-do its assignee already finished: done to-dos are searched too.
    thorough = not state.records and not state.retiring

    def search(group: str) -> dict[str, RemoteRecord]:
        return backend.find_existing(by_group[group], namespace, known_ids, thorough)

    groups = sorted(by_group)
    # Each search covers one group (a user, a creator) only, so the searches cannot find
    # one record twice; adopting happens afterwards, in order.
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(groups)))) as pool:
        results = list(pool.map(search, groups))
    for group, found in zip(groups, results, strict=True):
        wanted = by_group[group]
        for address in sorted(found):
            remote = found[address]
            if remote.record_id in known_ids:
                continue
            taken = adopted_record(wanted[address], remote, ledger, backend.capabilities.in_place)
            ledger.adopt(taken)
            known_ids.add(remote.record_id)
            adopted.append(address)
            how = "open" if remote.status == "open" else "done (by its assignee)"
            reporter.note(f"{address}: found {how} on DingTalk ({remote.record_id}), adopted")
    return adopted


def adopted_record(
    desired: DesiredRecord, remote: RemoteRecord, ledger: Ledger, in_place: frozenset[str]
) -> StateRecord:
    """The state record of an existing to-do taken over for ``desired``.

    The fields the API edits in place are taken as DingTalk shows them, so the plan
    updates them back to the file; every other field is taken to be the file's, as with
    a state that was never lost (an edit of a create-only field on DingTalk is drift to
    report, not a reason to replace). A key the API shows (a v1.0 sourceId) is kept with
    its generation; a legacy biz_id cannot be read back and is left empty.
    """
    now = utc_now()
    shown = {
        name: getattr(remote, name)
        for name in sorted(in_place)
        if getattr(remote, name, None) is not None
    }
    content = desired.content._replace(**shown)
    generation = ledger.state.next_generation(desired.address)
    if remote.key:
        generation = max(generation_of_key(remote.key), 0)
    return StateRecord(
        key=desired.key,
        userid=desired.userid,
        record_id=remote.record_id,
        biz_id=remote.key or "",
        generation=generation,
        content=content,
        fingerprint=content.fingerprint(),
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
        except UNSETTLED as exc:
            if exc.fatal or round_ >= rounds or pending.address not in ledger.state.pending:
                raise
    raise AssertionError("unreachable: the last round returns or raises")


def _settle_once(
    ledger: Ledger, backend: Backend, pending: PendingCreate
) -> tuple[StateRecord, StateRecord | None]:
    known_ids = ledger.known_record_ids()
    remote = backend.find_created([pending], known_ids).get(pending.address)
    if remote is not None:
        return adopt(ledger, pending, remote)
    try:
        record_id = backend.create(pending)
    except DuplicateError:
        # DingTalk holds this key: the first attempt landed. Look once more (it may
        # have landed after our lookup); if it still cannot be seen, keep it pending.
        remote = backend.find_created([pending], known_ids).get(pending.address)
        if remote is None:
            raise KeyTakenError(
                f"DingTalk already holds the key {pending.biz_id} for {pending.userid}, but "
                "the to-do cannot be found; left pending"
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
