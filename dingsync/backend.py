"""The seam between dingsync's core and the two DingTalk to-do APIs.

The planner, the applier, the refresh and the recovery talk to a ``Backend`` only. What
one API can do that the other cannot is declared in its ``Capabilities`` (a pure value the
offline planner reads too); the operations whose mechanics differ (finding an interrupted
create, observing records, updating, deleting) are the backend's own. Each backend maps
the API-neutral ``Content`` to its wire shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Literal
from typing import NamedTuple
from typing import Protocol

from dingsync.model import FIELDS
from dingsync.model import Api
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.model import Status

if TYPE_CHECKING:
    from dingsync.errors import DuplicateError
    from dingsync.ledger import Ledger
    from dingsync.reporter import Reporter


class Capabilities(NamedTuple):
    """What an API can do, as the planner and the applier must know it."""

    api: Api
    # Fields changed in place; a change of any other compared field is a replace.
    in_place: frozenset[str]
    deletes: bool  # a to-do can be deleted (``on_removal: delete``, the old one of a replace)
    reopens: bool  # a completed to-do can be opened again
    # DingTalk refuses a second to-do of the same title and form for a user on one China
    # day, done or not (legacy 854001).
    same_day_rule: bool
    # Fields a refresh reads back, so drift is judged on them.
    readable: frozenset[str]
    # A create's key names one address alone and stays taken after its to-do is deleted
    # (v1.0 sourceId): a taken key that leads to no to-do is this address's own deleted
    # history, and the create moves to the next generation.
    key_per_address: bool = False


def _readable(api: Api) -> frozenset[str]:
    return frozenset(f.name for f in FIELDS if api in f.readable)


# What each API can do, by its name in the task file (``api:``).
CAPABILITIES: Mapping[str, Capabilities] = MappingProxyType(
    {
        "workrecord": Capabilities(
            api="workrecord",
            in_place=frozenset(),
            deletes=False,
            reopens=False,
            same_day_rule=True,
            readable=_readable("workrecord"),
        ),
        "todo": Capabilities(
            api="todo",
            in_place=frozenset(f.name for f in FIELDS if f.in_place),
            deletes=True,
            reopens=True,
            same_day_rule=False,
            readable=_readable("todo"),
            key_per_address=True,
        ),
    }
)


def capabilities_of(api: str) -> Capabilities:
    return CAPABILITIES.get(api, CAPABILITIES["workrecord"])


class Observation(NamedTuple):
    """What a refresh learnt: record_id -> the remote record, or None when it is gone."""

    found: dict[str, RemoteRecord | None]
    fell_back: bool = False  # --lookup get was refused (errcode 22) and the lists were used
    # record_id -> why it could not be looked up (its user's or creator's list failed):
    # neither found nor missing, so nothing is concluded about it.
    unchecked: Mapping[str, str] = MappingProxyType({})


class MovePast(NamedTuple):
    """A create's key is held by a to-do of this address's own forgotten history: the
    create goes again with the next generation."""


class Backend(Protocol):
    capabilities: Capabilities

    def attach(self, ledger: Ledger) -> None:
        """Read what the backend keeps in the state (the v1.0 unionIds) and write through
        ``ledger`` what it learns."""
        ...

    def key_for(self, namespace: str, address: str, generation: int) -> str:
        """The idempotency key of a create (biz_id or sourceId)."""
        ...

    def create(self, pending: PendingCreate) -> str:
        """Create the to-do ``pending`` describes and return its record_id.

        Raises ``DuplicateError`` when DingTalk already holds the key, and
        ``TransportError(maybe_committed=True)`` when it may have landed unanswered.
        """
        ...

    def complete(self, record: StateRecord) -> bool:
        """Mark a to-do done; False when DingTalk does not know it."""
        ...

    def cancel(self, pending: PendingCreate) -> None:
        """Close whatever an interrupted, no longer wanted create may have become."""
        ...

    def update(self, record: StateRecord, content: Content) -> bool:
        """Change the in-place fields of a to-do to ``content``'s; False when it is gone."""
        ...

    def reopen(self, record: StateRecord, content: Content) -> bool:
        """Open a completed to-do again, with ``content``'s in-place fields."""
        ...

    def delete(self, record: StateRecord) -> bool:
        """Delete a to-do; False when it was gone already."""
        ...

    def observe(
        self, records: Sequence[StateRecord], reporter: Reporter, lookup: str
    ) -> Observation:
        """Look each record up with as few metered calls as the API allows."""
        ...

    def find_created(
        self, pendings: Sequence[PendingCreate], known_ids: set[str]
    ) -> dict[str, RemoteRecord]:
        """The remote records that interrupted creates became, by address."""
        ...

    def lookup_group(self, desired: DesiredRecord) -> str:
        """Which one search finds ``desired``'s to-do (its user, or its creator)."""
        ...

    def find_existing(
        self,
        wanted: Mapping[str, DesiredRecord],
        namespace: str,
        known_ids: set[str],
        thorough: bool = False,
    ) -> dict[str, RemoteRecord]:
        """To-dos that already are what the state does not know it sent, by address;
        ``wanted`` holds the records of one lookup group. Open ones; with ``thorough`` (an
        empty state: new, lost or renamed) done ones too, where the API can tell whose they
        are."""
        ...

    def resolve_duplicate(
        self, pending: PendingCreate, error: DuplicateError, known_ids: set[str], own: bool
    ) -> RemoteRecord | MovePast:
        """What holds a refused create's key: a record to adopt, or history to move past
        (``own``: the state knows records of this address). Raises when neither."""
        ...

    def status_of(self, record: StateRecord) -> Status | Literal["gone"] | None:
        """The to-do's status as DingTalk tells it now ("gone" when it does not know it),
        or None where finding out would take more than one call (a legacy list)."""
        ...

    def lookup(self, desired: DesiredRecord, record_id: str) -> RemoteRecord | None:
        """One record, for ``dingsync import``."""
        ...

    @property
    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by API name."""
        ...

    def close(self) -> None: ...


class WorkrecordCalls(Protocol):
    """The legacy ``topapi/workrecord`` calls, as ``dingsync.client`` makes them."""

    def create(self, userid: str, content: Content, biz_id: str, create_time_ms: int) -> str:
        """Create one to-do and return its record_id (``DuplicateError`` on 854001)."""
        ...

    def complete(self, userid: str, record_id: str) -> bool:
        """Mark a to-do done; ``record_id`` may also be the biz_id it was created with."""
        ...

    def list_records(self, userid: str, status: Status) -> Iterator[RemoteRecord]:
        """Yield the user's open or done to-dos, fetching one page of 50 at a time."""
        ...

    def get_record(self, userid: str, record_id: str) -> RemoteRecord | None:
        """``workrecord/get``, on gateways that offer it (``UnknownMethodError`` if not)."""
        ...

    @property
    def call_counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...
