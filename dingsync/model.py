"""Plain, immutable values that flow between the loader, the planner, the state and the API.

Nothing here does I/O. Dicts produced by ``to_dict`` are what the state and plan files hold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal
from typing import NamedTuple

Status = Literal["open", "done"]
STATUSES: tuple[Status, ...] = ("open", "done")
FormPairs = tuple[tuple[str, str], ...]

Api = Literal["workrecord", "todo"]
ON_WORKRECORD: frozenset[Api] = frozenset({"workrecord"})
ON_V1: frozenset[Api] = frozenset({"todo"})
ON_BOTH: frozenset[Api] = ON_WORKRECORD | ON_V1


# How the task file writes a field, and so how the loader reads it into ``Content``: "text"
# as written; "integer" a YAML number; "flag" a YAML boolean; "time" a date or date-time,
# China time unless it says otherwise, into Unix milliseconds; "priority" a name, into
# DingTalk's number; "form" a list of {title, content} lines.
Kind = Literal["text", "integer", "flag", "time", "priority", "form"]


class Field(NamedTuple):
    """One field of a to-do's content: the loader, Content, the planner and the drift
    judgement all read this table, so a new optional field is a row here, a property in
    the schema and a name in each backend's wire mapping."""

    name: str  # in the task file, in Content and in the state
    apis: frozenset[Api]  # the APIs that have it: any other API's task file may not give it
    compared: bool = True  # a change of it is planned (else it is sent with a create only)
    in_place: bool = False  # with an API that edits to-dos, updated in place, not replaced
    readable: frozenset[Api] = frozenset()  # the APIs whose refresh sees it (drift is judged on it)
    kind: Kind = "text"


# In the order of diffs. Which API reads back what: docs/dingtalk-workrecord.md §5.3 (the list
# shows title, url and forms) and docs/dingtalk-todo.md §10.2 (cards show subject, due time,
# priority and both urls; no description). What v1.0 edits in place: §7.2.
FIELDS = (
    Field("title", ON_BOTH, in_place=True, readable=ON_BOTH),
    Field("url", ON_BOTH, readable=ON_BOTH),
    Field("pc_url", ON_BOTH, readable=ON_V1),
    Field("form", ON_WORKRECORD, readable=ON_WORKRECORD, kind="form"),
    Field("source_name", ON_WORKRECORD),
    Field("originator_userid", ON_WORKRECORD),
    Field("pc_open_type", ON_WORKRECORD, kind="integer"),
    Field("description", ON_V1, in_place=True),
    Field("due_time", ON_V1, in_place=True, readable=ON_V1, kind="time"),
    Field("priority", ON_V1, readable=ON_V1, kind="priority"),
    Field("ding", ON_V1, compared=False, kind="flag"),
    Field("creator_userid", ON_V1),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}
# Fields of a to-do that dingsync sends and compares; their order is the order of diffs.
CONTENT_FIELDS = tuple(f.name for f in FIELDS if f.compared)


class Content(NamedTuple):
    """What one create sends to DingTalk, apart from userid, the key and create_time.

    A field of the other API is None (``form`` is empty for a v1.0 to-do).
    """

    title: str
    url: str
    form: FormPairs = ()
    pc_url: str | None = None
    source_name: str | None = None
    originator_userid: str | None = None
    pc_open_type: int | None = None
    description: str | None = None
    due_time: int | None = None  # Unix milliseconds
    priority: int | None = None  # DingTalk's 10 | 20 | 30 | 40
    ding: bool | None = None
    creator_userid: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The content as the state and plan files hold it. The legacy API's fields are
        always written, so that states keep their layout; the others only when set."""
        data: dict[str, Any] = {}
        for f in FIELDS:
            value = getattr(self, f.name)
            if f.name == "form":
                data["form"] = [{"title": t, "content": c} for t, c in value]
            elif value is not None or f.apis == ON_WORKRECORD or f.apis == ON_BOTH:
                data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Content:
        values: dict[str, Any] = {
            f.name: data.get(f.name) for f in FIELDS if f.name not in ("title", "url")
        }
        values["form"] = tuple((item["title"], item["content"]) for item in data.get("form", ()))
        return cls(title=data["title"], url=data["url"], **values)

    def fingerprint(self) -> str:
        """A stable digest of the content: equal content, equal fingerprint, across versions.

        Unset fields are left out, so that a field added to a later version changes no
        fingerprint of content that does not use it.
        """
        given = {name: value for name, value in self.to_dict().items() if value is not None}
        canonical = json.dumps(given, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def text_length(text: str) -> int:
    """The length of ``text`` as DingTalk's Java server likely counts it: UTF-16 units.

    An emoji or another character beyond the Basic Multilingual Plane counts 2; Chinese,
    Latin and most other text counts 1 a character. Counting so is the safe reading: a
    title within this length is within the limit either way.
    """
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def make_address(key: str, userid: str) -> str:
    return f"{key}@{userid}"


class DesiredRecord(NamedTuple):
    """One (task key, userid) pair of the task file: the unit that becomes one remote record."""

    key: str
    userid: str
    content: Content
    status: Status = "open"
    create_time_ms: int | None = None  # from the file's create_time; None means "now"
    line: int = 0  # line of the task in the file, for messages

    @property
    def address(self) -> str:
        return make_address(self.key, self.userid)


class TaskFile(NamedTuple):
    """A loaded, fully validated task file."""

    path: str
    sha256: str  # of the file's bytes, so that a saved plan can tell the file changed
    records: tuple[DesiredRecord, ...]
    api: Api = "workrecord"
    on_removal: Literal["complete", "delete"] = "complete"
    # Part of every create's key: the same file finds its own to-dos again with a lost
    # state, and two files with different namespaces never take each other's keys.
    namespace: str = "tasks"

    def by_address(self) -> dict[str, DesiredRecord]:
        return {r.address: r for r in self.records}


class RemoteRecord(NamedTuple):
    """A to-do as a read reveals it: a ``getbyuserid`` item, or a v1.0 card or task.

    Fields a read does not show are None (a legacy list shows no due time; a v1.0 card no
    form); ``key`` is the create's sourceId where the API shows it (never the biz_id).
    """

    record_id: str
    userid: str
    create_time_ms: int
    title: str
    url: str
    form: FormPairs
    status: Status
    pc_url: str | None = None
    due_time: int | None = None
    priority: int | None = None
    key: str | None = None


class StateRecord(NamedTuple):
    """A remote record that dingsync created (or imported) and manages."""

    key: str
    userid: str
    record_id: str
    biz_id: str
    generation: int
    content: Content
    fingerprint: str
    status: Status
    create_time_ms: int
    created_at: str
    updated_at: str
    # Who closed it: "dingsync" (apply completed it) or "assignee" (observed by a refresh).
    completed_by: str | None = None
    # Set by a refresh that found the record in neither list; the next apply recreates it.
    missing: bool = False

    @property
    def address(self) -> str:
        return make_address(self.key, self.userid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "userid": self.userid,
            "record_id": self.record_id,
            "biz_id": self.biz_id,
            "generation": self.generation,
            "content": self.content.to_dict(),
            "fingerprint": self.fingerprint,
            "status": self.status,
            "create_time": self.create_time_ms,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_by": self.completed_by,
            "missing": self.missing,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], contents: dict[Content, Content] | None = None
    ) -> StateRecord:
        """The record of ``data``; with ``contents``, an equal content there is reused."""
        return cls(
            key=data["key"],
            userid=data["userid"],
            record_id=data["record_id"],
            biz_id=data["biz_id"],
            generation=int(data["generation"]),
            content=_shared(Content.from_dict(data["content"]), contents),
            fingerprint=data["fingerprint"],
            status=data["status"],
            create_time_ms=int(data["create_time"]),
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            completed_by=data.get("completed_by"),
            missing=bool(data.get("missing", False)),
        )


class PendingCreate(NamedTuple):
    """A create that was (or is about to be) sent but whose answer has not been recorded.

    ``replaces`` names the record_id this create supersedes, so that a resumed run still
    completes the old record.
    """

    key: str
    userid: str
    biz_id: str
    generation: int
    content: Content
    fingerprint: str
    create_time_ms: int
    sent_at: str
    replaces: str | None = None

    @property
    def address(self) -> str:
        return make_address(self.key, self.userid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "userid": self.userid,
            "biz_id": self.biz_id,
            "generation": self.generation,
            "content": self.content.to_dict(),
            "fingerprint": self.fingerprint,
            "create_time": self.create_time_ms,
            "sent_at": self.sent_at,
            "replaces": self.replaces,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], contents: dict[Content, Content] | None = None
    ) -> PendingCreate:
        """The pending create of ``data``; with ``contents``, an equal content is reused."""
        return cls(
            key=data["key"],
            userid=data["userid"],
            biz_id=data["biz_id"],
            generation=int(data["generation"]),
            content=_shared(Content.from_dict(data["content"]), contents),
            fingerprint=data["fingerprint"],
            create_time_ms=int(data["create_time"]),
            sent_at=data["sent_at"],
            replaces=data.get("replaces"),
        )


class Remote(NamedTuple):
    """The DingTalk a state's records live in: a run against another one is refused.

    Only a fingerprint of the app key is kept: the state never holds a credential.
    """

    api: str
    endpoint: str  # "sandbox" for the built-in emulator of --sandbox
    app_key_fingerprint: str | None = None

    @property
    def sandbox(self) -> bool:
        return self.endpoint == SANDBOX_ENDPOINT

    def describe(self) -> str:
        if self.sandbox:
            return "the sandbox (the built-in emulator)"
        app = f", app key {self.app_key_fingerprint}" if self.app_key_fingerprint else ""
        return f"{self.endpoint} ({self.api}{app})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "endpoint": self.endpoint,
            "app_key_fingerprint": self.app_key_fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Remote:
        fingerprint = data.get("app_key_fingerprint")
        if not isinstance(data["api"], str) or not isinstance(data["endpoint"], str):
            raise TypeError("remote api and endpoint must be text")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise TypeError("remote app_key_fingerprint must be text")
        return cls(api=data["api"], endpoint=data["endpoint"], app_key_fingerprint=fingerprint)


SANDBOX_ENDPOINT = "sandbox"


def app_key_fingerprint(app_key: str) -> str:
    """A short digest that tells two app keys apart without revealing either."""
    return "sha256:" + hashlib.sha256(app_key.encode("utf-8")).hexdigest()[:16]


@dataclass
class State:
    """The whole state file in memory. Mutated only by the applier, saved by ``StateStore``."""

    lineage: str
    serial: int = 0
    records: dict[str, StateRecord] = field(default_factory=dict)
    pending: dict[str, PendingCreate] = field(default_factory=dict)
    # Old records of replaced addresses that still have to be completed, by record_id.
    retiring: dict[str, StateRecord] = field(default_factory=dict)
    # Highest biz_id generation ever used per address; kept after `state rm` and completion
    # because DingTalk refuses a biz_id it has seen once, forever.
    generations: dict[str, int] = field(default_factory=dict)
    # Where the records live (see ``Remote``); None until the first apply, or in a state
    # written before states named their remote.
    remote: Remote | None = None
    # v1.0 only: userid -> unionId, resolved once (an unmetered contacts call) and kept so
    # that plan stays offline and later applies need no lookup.
    union_ids: dict[str, str] = field(default_factory=dict)

    def next_generation(self, address: str) -> int:
        return self.generations.get(address, -1) + 1


def _shared(content: Content, contents: dict[Content, Content] | None) -> Content:
    if contents is None or not _well_typed(content):
        return content
    return contents.setdefault(content, content)


def _well_typed(content: Content) -> bool:
    """Whether every field has the type it should: only then does equal mean identical
    (as tuples, ``1``, ``1.0`` and ``True`` are equal, and a list cannot be hashed)."""
    texts = (
        content.pc_url,
        content.source_name,
        content.originator_userid,
        content.description,
        content.creator_userid,
    )
    numbers = (content.pc_open_type, content.due_time, content.priority)
    return (
        type(content.title) is str
        and type(content.url) is str
        and all(text is None or type(text) is str for text in texts)
        and all(number is None or type(number) is int for number in numbers)
        and (content.ding is None or type(content.ding) is bool)
        and all(type(t) is str and type(c) is str for t, c in content.form)
    )


def biz_id_for(namespace: str, address: str, generation: int) -> str:
    """The idempotency key of one create: ``dingsync-`` + 40 hex + ``-`` + generation.

    Derived from what the task file says (namespace and address), never from the state:
    a lost or new state sends the same keys again, and DingTalk refuses a repeated one
    instead of creating a second to-do. Hashing keeps it ASCII and within DingTalk's 64
    characters whatever the address holds.
    """
    digest = hashlib.sha256(f"{namespace}\n{address}\n{generation}".encode()).hexdigest()
    return f"dingsync-{digest[:40]}-{generation}"


def source_id_for(namespace: str, address: str, generation: int) -> str:
    """The v1.0 create's ``sourceId``: ``dingsync-`` + 40 hex + ``-`` + generation.

    Unlike the biz_id, the hex part names the address alone (namespace and address), so a
    creator's list shows at a glance every generation of an address: a lost state finds
    the current one there, whatever generation it reached. Only ``[a-z0-9-]``: it also
    travels in a URL path (docs/dingtalk-todo.md §5.4).
    """
    digest = hashlib.sha256(f"{namespace}\n{address}".encode()).hexdigest()
    return f"dingsync-{digest[:40]}-{generation}"


def generation_of_key(key: str) -> int:
    """The generation a biz_id or sourceId of dingsync's ends with; -1 for another key."""
    head, _, tail = key.rpartition("-")
    return int(tail) if head.startswith("dingsync-") and tail.isdigit() else -1
