"""The v1.0 to-do backend (``api: todo``): dingsync's records as DingTalk v1.0 to-dos.

One to-do per address, created as the task's ``creator_userid`` with the assignee as its
only executor. Its key is the ``sourceId``, which DingTalk refuses to repeat and can look
up, so an interrupted create is found by key, not by content. A refresh reads each
creator's list of the to-dos it created (open, then done while records are unaccounted
for) and looks a record found in neither up by id. Section numbers (§) refer to
docs/dingtalk-todo.md.

userids become unionIds through ``topapi/v2/user/get`` once per userid for the life of
the state: what is learnt is written to the state through the ledger.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

from dingsync.backend import MovePast
from dingsync.backend import Observation
from dingsync.backend import capabilities_of
from dingsync.errors import UNSETTLED
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import InvalidUserError
from dingsync.errors import TaskExistsError
from dingsync.model import FIELDS_BY_NAME
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.model import Status
from dingsync.model import generation_of_key
from dingsync.model import source_id_for
from dingsync.reporter import Reporter
from dingsync.todo_client import TodoCard
from dingsync.todo_client import TodoClient
from dingsync.todo_client import TodoTask
from dingsync.transport import annotate

if TYPE_CHECKING:
    from dingsync.ledger import Ledger


# Rounds of a userid lookup, each after the client's own retries (see ``_resolve``).
LOOKUP_ROUNDS = 3


def creator_of(content: Content) -> str:
    if not content.creator_userid:
        # The schema requires it for api: todo; a state edited by hand may lack it.
        raise DingsyncError("a v1.0 to-do needs a creator_userid (the user it is created as)")
    return content.creator_userid


def address_prefix(source_id: str) -> str:
    """A sourceId without its generation: the same for every generation of an address."""
    return source_id.rpartition("-")[0]


class _Replay:
    """A creator's list of to-dos, read from DingTalk once however often it is walked: a
    later walk replays the cards read so far, then reads on from where the last stopped."""

    def __init__(self, cards: Iterator[TodoCard]) -> None:
        self._cards = cards
        self._read: list[TodoCard] = []
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[TodoCard]:
        index = 0
        while True:
            with self._lock:
                if index == len(self._read):
                    card = next(self._cards, None)
                    if card is None:
                        return
                    self._read.append(card)
                card = self._read[index]
            index += 1
            yield card


class TodoBackend:
    capabilities = capabilities_of("todo")

    def __init__(self, client: TodoClient) -> None:
        self.client = client
        # The creators' lists as the refresh and then the adoption look-up read them, before
        # the run's first write: one reading serves both (the lists are metered calls).
        # Every write ends them.
        self._listings: dict[tuple[str, bool], _Replay] = {}
        self._listings_lock = threading.Lock()
        self._ids: dict[str, str] = {}
        self._ids_lock = threading.Lock()
        self._asking: dict[str, threading.Lock] = {}  # userid -> its one lookup in flight
        self._not_members: dict[str, InvalidUserError] = {}
        self._ledger: Ledger | None = None

    def attach(self, ledger: Ledger) -> None:
        with self._ids_lock:
            self._ids.update(ledger.state.union_ids)
            self._ledger = ledger

    def union_id(self, userid: str) -> str:
        """The unionId of ``userid``: from the state, else asked once and then kept.

        Workers creating to-dos of one user at once wait for one lookup, not one each.
        """
        with self._ids_lock:
            known = self._ids.get(userid)
            if known is not None:
                return known
            asking = self._asking.setdefault(userid, threading.Lock())
        with asking:
            with self._ids_lock:
                known = self._ids.get(userid)
                refused = self._not_members.get(userid)
            if known is not None:
                return known
            if refused is not None:
                # Asked once this run: every record of that user fails alike.
                raise _again(refused)
            try:
                value = self._resolve(userid)
            except InvalidUserError as exc:
                with self._ids_lock:
                    self._not_members[userid] = _again(exc)
                raise
            with self._ids_lock:
                self._ids[userid] = value
                ledger = self._ledger
            if ledger is not None:
                ledger.remember_union_ids({userid: value})
            return value

    def _resolve(self, userid: str) -> str:
        """Ask DingTalk for a unionId, a few rounds of the client's own retries: a read is
        safe to repeat, and one failing lookup of a creator would stop the whole run."""
        for round_ in range(1, LOOKUP_ROUNDS + 1):
            try:
                return self.client.union_id(userid)
            except UNSETTLED as exc:
                if exc.fatal or round_ >= LOOKUP_ROUNDS:
                    raise
        raise AssertionError("unreachable: the last round returns or raises")

    def key_for(self, namespace: str, address: str, generation: int) -> str:
        return source_id_for(namespace, address, generation)

    # -- writes ----------------------------------------------------------------------------

    def create(self, pending: PendingCreate) -> str:
        self._forget_lists()
        content = pending.content
        creator = self._creator(content)
        executor = self.union_id(pending.userid)
        return self.client.create(creator, pending.biz_id, _create_fields(content), [executor])

    def _creator(self, content: Content) -> str:
        try:
            return self.union_id(creator_of(content))
        except InvalidUserError as exc:
            raise annotate(_again(exc), "(it is the task's creator_userid)") from None

    def complete(self, record: StateRecord) -> bool:
        self._forget_lists()
        creator = self.union_id(creator_of(record.content))
        return self.client.update(creator, record.record_id, {"done": True})

    def cancel(self, pending: PendingCreate) -> None:
        self._forget_lists()
        creator = self.union_id(creator_of(pending.content))
        task = self.client.get_by_source_id(creator, pending.biz_id)
        if task is not None and not task.done:
            self.client.update(creator, task.task_id, {"done": True})

    def update(self, record: StateRecord, content: Content) -> bool:
        self._forget_lists()
        creator = self.union_id(creator_of(record.content))
        changes = _in_place_changes(record.content, content)
        if not changes:
            return True  # a field DingTalk cannot clear was cleared in the file (README)
        return self.client.update(creator, record.record_id, changes)

    def reopen(self, record: StateRecord, content: Content) -> bool:
        self._forget_lists()
        creator = self.union_id(creator_of(record.content))
        changes = _in_place_changes(record.content, content)
        return self.client.update(creator, record.record_id, {"done": False, **changes})

    def delete(self, record: StateRecord) -> bool:
        self._forget_lists()
        creator = self.union_id(creator_of(record.content))
        return self.client.delete(creator, record.record_id)

    # -- reads -----------------------------------------------------------------------------

    def _created(self, creator: str, done: bool) -> _Replay:
        """The to-dos ``creator`` created (open or done), read once until the next write."""
        with self._listings_lock:
            listing = self._listings.get((creator, done))
            if listing is None:
                listing = _Replay(self.client.list_created(creator, done))
                self._listings[(creator, done)] = listing
        return listing

    def _forget_lists(self) -> None:
        with self._listings_lock:
            self._listings.clear()

    def observe(
        self, records: Sequence[StateRecord], reporter: Reporter, lookup: str
    ) -> Observation:
        """Per creator: the open list, the done list while records are unaccounted for,
        then a get by id for each record in neither (done ones leave the list after 180
        days, §10.4). ``lookup`` has no meaning here: the lists are the documented way."""
        by_creator: dict[str, list[StateRecord]] = defaultdict(list)
        for record in records:
            by_creator[record.content.creator_userid or ""].append(record)
        found: dict[str, RemoteRecord | None] = {}
        unchecked: dict[str, str] = {}
        for creator_userid in sorted(by_creator):
            group = by_creator[creator_userid]
            try:
                found.update(self._observe_creator(creator_userid, group, reporter))
            except InvalidUserError as exc:
                reporter.note(f"to-dos created as {creator_userid} not checked: {exc}")
                for record in group:
                    unchecked[record.record_id] = str(exc)
                    reporter.advanced("refresh")
        return Observation(found, unchecked=unchecked)

    def _observe_creator(
        self, creator_userid: str, records: list[StateRecord], reporter: Reporter
    ) -> dict[str, RemoteRecord | None]:
        creator = self.union_id(creator_userid)
        by_id = {r.record_id: r for r in records}
        by_key = {r.biz_id: r for r in records if r.biz_id}
        found: dict[str, RemoteRecord | None] = {}
        for done in (False, True):
            if len(found) == len(by_id):
                break
            for card in self._created(creator, done):
                record = by_id.get(card.task_id) or (
                    by_key.get(card.source_id) if card.source_id else None
                )
                if record is None or record.record_id in found:
                    continue
                if record.record_id != card.task_id:
                    continue  # another to-do under this record's key: not this record
                found[record.record_id] = _remote(record, card)
                reporter.advanced("refresh")
                if len(found) == len(by_id):
                    break
        for record_id, record in by_id.items():
            if record_id not in found:
                task = self.client.get(creator, record_id)
                found[record_id] = None if task is None else _remote(record, task)
                reporter.advanced("refresh")
        return found

    def find_created(
        self, pendings: Sequence[PendingCreate], known_ids: set[str]
    ) -> dict[str, RemoteRecord]:
        """Each interrupted create by its sourceId (§5.9): a key DingTalk never repeats."""
        found: dict[str, RemoteRecord] = {}
        for pending in pendings:
            try:
                creator = self.union_id(creator_of(pending.content))
            except InvalidUserError:
                continue  # an unknown creator: the create cannot have landed
            task = self.client.get_by_source_id(creator, pending.biz_id)
            if task is not None and task.task_id not in known_ids:
                found[pending.address] = _remote_of_task(pending.userid, task, pending.content)
        return found

    def lookup_group(self, desired: DesiredRecord) -> str:
        """To-dos are found through the list of their creator."""
        return desired.content.creator_userid or ""

    def find_existing(
        self,
        wanted: Mapping[str, DesiredRecord],
        namespace: str,
        known_ids: set[str],
        thorough: bool = False,
    ) -> dict[str, RemoteRecord]:
        """The open to-dos of one creator that a wanted address already has.

        First by sourceId, which names the address (any generation: the newest open one
        wins). Then, for addresses still without one, by title and url among the to-dos
        another namespace of dingsync created (a task file renamed without setting its
        namespace): cards show no executor, so each such candidate is looked up once to
        see whose it is.
        """
        if not wanted:
            return {}
        first = next(iter(wanted.values()))
        try:
            creator = self.union_id(creator_of(first.content))
        except InvalidUserError:
            return {}
        by_prefix = {
            address_prefix(source_id_for(namespace, address, 0)): address for address in wanted
        }
        others: list[TodoCard] = []
        open_cards = self._created(creator, False)
        best = _newest_by_address(open_cards, by_prefix, known_ids, others)
        if thorough and len(best) < len(wanted):
            # An empty state: a to-do its assignee finished must be found too, or it would
            # be sent again. The newest generation of an address is its current to-do (an
            # older one was deleted when it was replaced).
            done_cards = self._created(creator, True)
            done = _newest_by_address(done_cards, by_prefix, known_ids)
            best.update({a: c for a, c in done.items() if a not in best})
        found = {
            address: _remote_of_card(wanted[address].userid, card, wanted[address].content)
            for address, card in best.items()
        }
        found.update(self._by_content(creator, wanted, found, others))
        return found

    def _by_content(
        self,
        creator: str,
        wanted: Mapping[str, DesiredRecord],
        found: Mapping[str, RemoteRecord],
        cards: list[TodoCard],
    ) -> dict[str, RemoteRecord]:
        left = {a: d for a, d in wanted.items() if a not in found and d.status == "open"}
        adopted: dict[str, RemoteRecord] = {}
        for card in cards:
            fits = [
                a
                for a, d in left.items()
                if (d.content.title, d.content.url) == (card.subject, card.app_url)
            ]
            if not fits:
                continue
            task = self.client.get(creator, card.task_id)
            if task is None or len(task.executor_ids) != 1:
                continue
            for address in fits:
                desired = left[address]
                try:
                    assignee = self.union_id(desired.userid)
                except InvalidUserError:
                    continue
                if task.executor_ids[0] == assignee:
                    adopted[address] = _remote_of_task(desired.userid, task, desired.content)
                    del left[address]
                    break
        return adopted

    def resolve_duplicate(
        self, pending: PendingCreate, error: DuplicateError, known_ids: set[str], own: bool
    ) -> RemoteRecord | MovePast:
        """ "task exist": the sourceId names this address and generation alone, so what
        holds it is this create (adopt it, open or done) or, when it is gone, a deleted
        to-do of this address's history (move past it)."""
        creator = self.union_id(creator_of(pending.content))
        task = self.client.get_by_source_id(creator, pending.biz_id)
        if task is None and isinstance(error, TaskExistsError) and error.task_id:
            task = self.client.get(creator, error.task_id)
        if task is None:
            return MovePast()
        if task.task_id in known_ids:
            raise DingsyncError(
                f"{error}; the to-do holding this key ({task.task_id}) is already managed "
                "for another address; check the state with 'dingsync state list'"
            )
        return _remote_of_task(pending.userid, task, pending.content)

    def status_of(self, record: StateRecord) -> Status | Literal["gone"] | None:
        task = self.client.get(self.union_id(creator_of(record.content)), record.record_id)
        if task is None:
            return "gone"
        return "done" if task.done else "open"

    def lookup(self, desired: DesiredRecord, record_id: str) -> RemoteRecord | None:
        creator = self.union_id(creator_of(desired.content))
        task = self.client.get(creator, record_id)
        return None if task is None else _remote_of_task(desired.userid, task, desired.content)

    @property
    def call_counts(self) -> dict[str, int]:
        return self.client.call_counts

    def close(self) -> None:
        self.client.close()


def _again(error: InvalidUserError) -> InvalidUserError:
    """A fresh copy of ``error`` with the same message, to raise or annotate once more."""
    again = InvalidUserError(error.api, error.errcode, error.errmsg, error.sub_code)
    again.args = error.args
    again.reason = error.reason
    return again


def _ding(on: bool) -> dict[str, str]:
    return {"dingNotify": "1" if on else "0"}


# The v1.0 wire mapping (docs/dingtalk-todo.md §5.2, §7.3): a content field's name in a
# create or update body, and how its value is written there. url and pc_url travel together
# as detailUrl; creator_userid is the unionId a call is made as, not a field of the body.
_WIRE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "title": ("subject", str),
    "description": ("description", str),
    "due_time": ("dueTime", int),
    "priority": ("priority", int),
    "ding": ("notifyConfigs", _ding),
}
_IN_PLACE = sorted(capabilities_of("todo").in_place)


def _create_fields(content: Content) -> dict[str, Any]:
    """The body of a create, apart from the sourceId and who creates it for whom."""
    fields = {
        wire: write(value)
        for name, (wire, write) in _WIRE.items()
        if (value := getattr(content, name)) is not None
    }
    # pcUrl defaults to the app URL (§5.2); both are sent so that the list shows it (§5.3).
    fields["detailUrl"] = {"appUrl": content.url, "pcUrl": content.pc_url or content.url}
    return fields


def _in_place_changes(before: Content, after: Content) -> dict[str, Any]:
    """The update fields for what changed among those v1.0 edits in place.

    Only what changed is sent (§7.3 leaves partial updates likely, not sure). A cleared
    text is sent empty; any other cleared value (a due time) cannot be sent and is left as
    it is.
    """
    changes: dict[str, Any] = {}
    for name in _IN_PLACE:
        value = getattr(after, name)
        if value == getattr(before, name):
            continue
        wire, write = _WIRE[name]
        if value is not None:
            changes[wire] = write(value)
        elif FIELDS_BY_NAME[name].kind == "text":
            changes[wire] = ""
    return changes


def _newest_by_address(
    cards: Iterable[TodoCard],
    by_prefix: Mapping[str, str],
    known_ids: set[str],
    others: list[TodoCard] | None = None,
) -> dict[str, TodoCard]:
    """The card of the newest generation of each address that a sourceId names; cards of
    dingsync's other namespaces go to ``others``, when given."""
    newest: dict[str, TodoCard] = {}
    for card in cards:
        if not card.source_id or card.task_id in known_ids:
            continue
        address = by_prefix.get(address_prefix(card.source_id))
        if address is None:
            if others is not None and card.source_id.startswith("dingsync-"):
                others.append(card)
            continue
        held = newest.get(address)
        if held is None or generation_of_key(card.source_id) > generation_of_key(
            held.source_id or ""
        ):
            newest[address] = card
    return newest


def _remote(record: StateRecord, item: TodoCard | TodoTask) -> RemoteRecord:
    if isinstance(item, TodoCard):
        return _remote_of_card(record.userid, item, record.content)
    return _remote_of_task(record.userid, item, record.content)


def _remote_of_card(userid: str, card: TodoCard, sent: Content) -> RemoteRecord:
    return _shown(
        userid,
        sent,
        record_id=card.task_id,
        created_ms=card.created_ms,
        title=card.subject,
        app_url=card.app_url,
        pc_url=card.pc_url,
        due_time=card.due_time_ms,
        priority=card.priority,
        done=card.done,
        source_id=card.source_id,
    )


def _remote_of_task(userid: str, task: TodoTask, sent: Content) -> RemoteRecord:
    return _shown(
        userid,
        sent,
        record_id=task.task_id,
        created_ms=task.created_ms,
        title=task.subject,
        app_url=task.app_url,
        pc_url=task.pc_url,
        due_time=task.due_time_ms,
        priority=task.priority,
        done=task.done,
        source_id=task.source_id,
    )


def _shown(
    userid: str,
    sent: Content,
    *,
    record_id: str,
    created_ms: int | None,
    title: str,
    app_url: str | None,
    pc_url: str | None,
    due_time: int | None,
    priority: int | None,
    done: bool,
    source_id: str | None,
) -> RemoteRecord:
    """A to-do in dingsync's terms. What the file leaves to DingTalk is not compared: the
    pc url defaults to the url (§5.2), and a due time or priority the file does not give
    is DingTalk's business."""
    if sent.pc_url is None and pc_url == app_url:
        pc_url = None
    return RemoteRecord(
        record_id=record_id,
        userid=userid,
        create_time_ms=created_ms or 0,
        title=title,
        url=app_url or "",
        form=(),
        status="done" if done else "open",
        pc_url=pc_url,
        due_time=due_time if sent.due_time is not None else None,
        priority=priority if sent.priority is not None else None,
        key=source_id,
    )
