"""The legacy ``topapi/workrecord`` backend: every trick that API needs lives here.

The API cannot edit, reopen or delete a to-do, and its only read is the user's list
(``getbyuserid``, 50 a page, open or done), which shows title, url, forms and create_time
but never the biz_id. So an interrupted create is found by exactly what it sent (content
and create_time), a lost state's to-dos by their content, and a refused biz_id is
explained with the same-day rule (docs/dingtalk-workrecord.md §3.7).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Literal
from typing import TypeVar

from dingsync.backend import MovePast
from dingsync.backend import Observation
from dingsync.backend import WorkrecordCalls
from dingsync.backend import capabilities_of
from dingsync.chinatime import china_day_of
from dingsync.errors import UNSETTLED
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import InvalidUserError
from dingsync.errors import UnknownMethodError
from dingsync.ledger import Ledger
from dingsync.model import STATUSES
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.model import Status
from dingsync.model import biz_id_for
from dingsync.reporter import Reporter

# Readings of one list, each after the client's own retries, before a look-up gives up: a
# run under heavy faults then still finds what it looks for.
LIST_ROUNDS = 3


T = TypeVar("T")


def matches(pending: PendingCreate, remote: RemoteRecord) -> bool:
    """Whether ``remote`` is exactly what ``pending`` sent, create_time included."""
    return remote.create_time_ms == pending.create_time_ms and same_content(pending.content, remote)


def same_content(content: Content, remote: RemoteRecord) -> bool:
    """Whether ``remote`` shows the title, url and form of ``content`` (all a list shows)."""
    return (
        remote.title == content.title and remote.url == content.url and remote.form == content.form
    )


class WorkrecordBackend:
    capabilities = capabilities_of("workrecord")

    def __init__(self, calls: WorkrecordCalls, clock_ms: Callable[[], int] | None = None) -> None:
        self.calls = calls
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))

    def attach(self, ledger: Ledger) -> None:
        pass  # nothing of this API lives in the state beyond the records

    def key_for(self, namespace: str, address: str, generation: int) -> str:
        return biz_id_for(namespace, address, generation)

    # -- writes ----------------------------------------------------------------------------

    def create(self, pending: PendingCreate) -> str:
        return self.calls.create(
            pending.userid, pending.content, pending.biz_id, pending.create_time_ms
        )

    def complete(self, record: StateRecord) -> bool:
        return self.calls.complete(record.userid, record.record_id)

    def cancel(self, pending: PendingCreate) -> None:
        # workrecord/update accepts the biz_id in place of the record_id: whatever the
        # interrupted create became is closed without being found first.
        self.calls.complete(pending.userid, pending.biz_id)

    def update(self, record: StateRecord, content: Content) -> bool:
        raise NotImplementedError("workrecord to-dos cannot be edited (capabilities.in_place)")

    def reopen(self, record: StateRecord, content: Content) -> bool:
        raise NotImplementedError("workrecord to-dos cannot be reopened (capabilities.reopens)")

    def delete(self, record: StateRecord) -> bool:
        raise NotImplementedError("workrecord to-dos cannot be deleted (capabilities.deletes)")

    # -- reads -----------------------------------------------------------------------------

    def observe(
        self, records: Sequence[StateRecord], reporter: Reporter, lookup: str
    ) -> Observation:
        """``list`` (documented) pages each user's lists; ``get`` asks workrecord/get,
        falling back to the lists where DingTalk answers errcode 22."""
        if lookup == "get":
            try:
                return Observation(self._lookup_by_get(records, reporter))
            except UnknownMethodError:
                reporter.note(
                    "this endpoint does not offer workrecord/get (errcode 22); "
                    "looking records up with the list call instead"
                )
                reporter.started(len(records), "refresh")
                unchecked: dict[str, str] = {}
                found = self._lookup_by_lists(records, reporter, unchecked)
                return Observation(found, fell_back=True, unchecked=unchecked)
        unchecked = {}
        found = self._lookup_by_lists(records, reporter, unchecked)
        return Observation(found, unchecked=unchecked)

    def _lookup_by_lists(
        self, records: Sequence[StateRecord], reporter: Reporter, unchecked: dict[str, str]
    ) -> dict[str, RemoteRecord | None]:
        by_user: dict[str, set[str]] = defaultdict(set)
        for record in records:
            by_user[record.userid].add(record.record_id)
        found: dict[str, RemoteRecord | None] = {}
        for userid in sorted(by_user):
            try:
                found.update(self._lookup_user(userid, set(by_user[userid]), reporter))
            except InvalidUserError as exc:
                # One user's failing list (a userid that left the organisation, 33012) must
                # not stop the others; its records are neither found nor missing.
                reporter.note(f"records of {userid} not checked: {exc}")
                for record_id in by_user[userid]:
                    unchecked[record_id] = str(exc)
                    reporter.advanced("refresh")
        return found

    def _lookup_user(
        self, userid: str, wanted: set[str], reporter: Reporter
    ) -> dict[str, RemoteRecord | None]:
        found: dict[str, RemoteRecord | None] = {}
        # The open list once more at the end: paging by offset can skip a record when the
        # assignee completes another one between two pages, and a record wrongly judged
        # missing would be created again.
        for status in (*STATUSES, "open"):
            if not wanted:
                break
            for remote in self.calls.list_records(userid, status):
                if remote.record_id in wanted:
                    found[remote.record_id] = remote
                    wanted.discard(remote.record_id)
                    reporter.advanced("refresh")
                    if not wanted:
                        break
        for record_id in wanted:
            found[record_id] = None
            reporter.advanced("refresh")
        return found

    def _lookup_by_get(
        self, records: Sequence[StateRecord], reporter: Reporter
    ) -> dict[str, RemoteRecord | None]:
        found: dict[str, RemoteRecord | None] = {}
        for record in records:
            found[record.record_id] = self.calls.get_record(record.userid, record.record_id)
            reporter.advanced("refresh")
        return found

    def find_created(
        self, pendings: Sequence[PendingCreate], known_ids: set[str]
    ) -> dict[str, RemoteRecord]:
        """Each interrupted create by exactly what it sent, in its user's open then done list."""
        by_user: dict[str, dict[str, PendingCreate]] = defaultdict(dict)
        for pending in pendings:
            by_user[pending.userid][pending.address] = pending
        found: dict[str, RemoteRecord] = {}
        for userid in sorted(by_user):
            found.update(self._search(userid, by_user[userid], matches, known_ids))
        return found

    def lookup_group(self, desired: DesiredRecord) -> str:
        """A to-do is found in its user's list."""
        return desired.userid

    def find_existing(
        self,
        wanted: Mapping[str, DesiredRecord],
        namespace: str,
        known_ids: set[str],
        thorough: bool = False,
    ) -> dict[str, RemoteRecord]:
        """Open to-dos of one user with exactly the title, url and form of a wanted record
        (the list never shows a biz_id). Done ones are never taken, ``thorough`` or not:
        without a key, an old to-do of the same content cannot be told from the current."""
        if not wanted:
            return {}
        userid = next(iter(wanted.values())).userid
        try:
            return self._search(
                userid,
                wanted,
                lambda d, remote: same_content(d.content, remote),
                known_ids,
                statuses=("open",),
            )
        except InvalidUserError:
            return {}  # not a member: nothing to adopt, and its creates fail on their own

    def resolve_duplicate(
        self, pending: PendingCreate, error: DuplicateError, known_ids: set[str], own: bool
    ) -> RemoteRecord | MovePast:
        """854001: DingTalk already holds this biz_id for the user, or a to-do with this
        title and form from today. Whatever holds it is adopted if it is what this create
        sends; never is a to-do created beside it under a fresh key unless it provably
        belongs to this address's own history."""
        userid = pending.userid
        listed = [r for status in STATUSES for r in self.calls.list_records(userid, status)]
        unknown = [r for r in listed if r.record_id not in known_ids]
        found = next((r for r in unknown if matches(pending, r)), None) or next(
            (r for r in unknown if same_content(pending.content, r)), None
        )
        if found is not None:
            return found
        today = china_day_of(self._clock_ms() / 1000)
        content = pending.content
        if any(
            r.title == content.title
            and r.form == content.form
            and china_day_of(r.create_time_ms / 1000) == today
            for r in listed
        ):
            raise DingsyncError(
                f"{error}; DingTalk accepts one to-do with the same title and form per user per "
                "day (change the title or form, or apply again tomorrow)"
            )
        if own:
            # The key was used by an earlier generation of this very address that the state
            # no longer remembers (it was restored, or the record imported).
            return MovePast()
        raise DingsyncError(
            f"{error}; DingTalk already holds a to-do with this address's key "
            f"({pending.biz_id}) but with other content: a to-do from a lost state of this "
            "task file, or from another task file with the same namespace. Adopt it with "
            f"'dingsync import {pending.address} RECORD_ID', or give this task file its own "
            "namespace"
        )

    def status_of(self, record: StateRecord) -> Status | Literal["gone"] | None:
        return None  # only the user's lists tell, a page of 50 at a time

    def lookup(self, desired: DesiredRecord, record_id: str) -> RemoteRecord | None:
        for status in STATUSES:
            for item in self.calls.list_records(desired.userid, status):
                if item.record_id == record_id:
                    return item
        return None

    def _search(
        self,
        userid: str,
        wanted: Mapping[str, T],
        fits: Callable[[T, RemoteRecord], bool],
        known_ids: set[str],
        statuses: tuple[Status, ...] = STATUSES,
    ) -> dict[str, RemoteRecord]:
        """Page the user's lists (in ``statuses`` order) until every wanted key has a fit.

        Records already in the state are passed over, so an older record of the same
        address is never mistaken for a new one; each remote record fits one key at most.
        """
        left = dict(wanted)
        found: dict[str, RemoteRecord] = {}
        for status in statuses:
            if not left:
                break
            for remote in self._listing(userid, status):
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

    def _listing(self, userid: str, status: Status) -> Iterator[RemoteRecord]:
        """The user's list, read again from its start where a page fails in transit.

        Reading is always safe to repeat; the records already yielded are not yielded again.
        """
        seen = 0
        for round_ in range(1, LIST_ROUNDS + 1):
            try:
                for n, remote in enumerate(self.calls.list_records(userid, status)):
                    if n >= seen:
                        seen += 1
                        yield remote
                return
            except UNSETTLED as exc:
                if exc.fatal or round_ >= LIST_ROUNDS:
                    raise

    @property
    def call_counts(self) -> dict[str, int]:
        return self.calls.call_counts

    def close(self) -> None:
        self.calls.close()
