"""The v1.0 to-do API on the wire: request bodies, field rules and error answers.

Everything here is pure. Section numbers (§) refer to docs/dingtalk-todo.md. Field names are
those of create (§5.2), update (§7.1) and the list (§10.1). The v1.0 gateway answers an error
with an HTTP status of 4xx/5xx and the body ``{"code", "message", "requestid"}`` (lower-case
``requestid``, §11.1); ``TodoError`` carries the three.

Readings chosen where DingTalk's pages are unsure (§13.1; the strict one, so that a client
that passes here does not fail on DingTalk):

- Types are checked as a JSON binding would: ``dueTime`` and ``priority`` must be JSON
  integers (a numeric string is refused), flags JSON booleans, ids strings.
- ``detailUrl`` is required on create with both ``appUrl`` and ``pcUrl`` non-empty, each
  at most 1024 bytes in UTF-8; ``subject`` (1..1024) and ``description`` (<= 4096) are
  counted in characters, as the create page gives no unit for them.
- Create takes at most 100 executors and 100 participants ("建议不超过100人"); update and
  executorStatus take at most 1000, as their pages say.
- ``dueTime`` must be a non-negative integer; a date in the past is accepted (the pages
  do not say it is refused, and a task file may well name a day that has passed).
- Fields a call does not document are ignored, as DingTalk's JSON binding does; in
  particular an update cannot change ``priority``, ``detailUrl`` or ``sourceId``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from dingsync.model import text_length

MAX_SUBJECT_CHARS = 1024
MAX_DESCRIPTION_CHARS = 4096
MAX_URL_BYTES = 1024
MAX_FIELD_BYTES = 1024
MAX_CREATE_PEOPLE = 100
MAX_UPDATE_PEOPLE = 1000
PRIORITIES = (10, 20, 30, 40)
ROLES = ("executor", "creator", "participant")
CARD_TYPES = ("TODO", "READ")

# The middle part of each API's error codes: todo.<op>.paramError (§11.2).
CREATE = "taskCreate"
GET = "taskGet"
UPDATE = "taskUpdate"
DELETE = "taskDelete"
STATUS = "taskExecutorStatusUpdate"
QUERY = "orgTaskQuery"

ContentFields = tuple[tuple[str, str], ...]


class TodoError(Exception):
    """An answer of the v1.0 gateway other than success."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self, request_id: str) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "requestid": request_id}


def param_error(op: str, message: str) -> TodoError:
    return TodoError(400, f"todo.{op}.paramError", message)


def not_exist(op: str) -> TodoError:
    return param_error(op, "task not exist")


def new_request_id() -> str:
    """v1.0 request ids are upper-case UUIDs."""
    return str(uuid.uuid4()).upper()


def read_json(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is empty or not an object."""
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


@dataclass(frozen=True)
class CreateRequest:
    subject: str
    description: str | None
    due_time: int | None
    priority: int | None
    executor_ids: tuple[str, ...]
    participant_ids: tuple[str, ...]
    app_url: str
    pc_url: str
    source_id: str | None
    creator_id: str | None
    is_only_show_executor: bool
    ding_notify: str | None
    content_fields: ContentFields
    todo_type: str


@dataclass(frozen=True)
class UpdateRequest:
    """Only the fields present in the body; None means "leave as it is"."""

    subject: str | None
    description: str | None
    due_time: int | None
    done: bool | None
    executor_ids: tuple[str, ...] | None
    participant_ids: tuple[str, ...] | None
    content_fields: ContentFields | None


@dataclass(frozen=True)
class QueryRequest:
    offset: int
    is_done: bool
    role_types: tuple[tuple[str, ...], ...] | None
    todo_type: str | None


def read_create(body: dict[str, Any]) -> CreateRequest:
    op = CREATE
    subject = _subject(op, body.get("subject"), required=True)
    assert subject is not None
    app_url, pc_url = _detail_url(op, body.get("detailUrl"))
    todo_type = _optional_str(op, body, "todoType") or "TODO"
    if todo_type not in CARD_TYPES:
        raise param_error(op, "todoType is invalid")
    return CreateRequest(
        subject=subject,
        description=_description(op, body.get("description")),
        due_time=_due_time(op, body.get("dueTime")),
        priority=_priority(op, body.get("priority")),
        executor_ids=_people(op, body.get("executorIds"), "executors", MAX_CREATE_PEOPLE) or (),
        participant_ids=_people(op, body.get("participantIds"), "participants", MAX_CREATE_PEOPLE)
        or (),
        app_url=app_url,
        pc_url=pc_url,
        # An empty sourceId is taken as none, not as a key to deduplicate on.
        source_id=_optional_str(op, body, "sourceId") or None,
        creator_id=_optional_str(op, body, "creatorId") or None,
        is_only_show_executor=_optional_bool(op, body, "isOnlyShowExecutor") or False,
        ding_notify=_ding_notify(op, body.get("notifyConfigs")),
        content_fields=_content_fields(op, body.get("contentFieldList")) or (),
        todo_type=todo_type,
    )


def read_update(body: dict[str, Any]) -> UpdateRequest:
    op = UPDATE
    return UpdateRequest(
        subject=_subject(op, body.get("subject"), required=False),
        description=_description(op, body.get("description")),
        due_time=_due_time(op, body.get("dueTime")),
        done=_optional_bool(op, body, "done"),
        executor_ids=_people(op, body.get("executorIds"), "executors", MAX_UPDATE_PEOPLE),
        participant_ids=_people(op, body.get("participantIds"), "participants", MAX_UPDATE_PEOPLE),
        content_fields=_content_fields(op, body.get("contentFieldList")),
    )


def read_executor_status(body: dict[str, Any]) -> tuple[tuple[str, bool], ...]:
    """``executorStatusList``: (executor unionId, isDone) pairs, at least one."""
    op = STATUS
    items = body.get("executorStatusList")
    if not isinstance(items, list) or not items:
        raise param_error(op, "executorStatusList is invalid")
    if len(items) > MAX_UPDATE_PEOPLE:
        raise param_error(op, "executorStatusList is oversize")
    pairs: list[tuple[str, bool]] = []
    for item in items:
        if not isinstance(item, dict):
            raise param_error(op, "executorStatusList is invalid")
        union_id, is_done = item.get("id"), item.get("isDone")
        if not isinstance(union_id, str) or not union_id or not isinstance(is_done, bool):
            raise param_error(op, "executorStatusList is invalid")
        pairs.append((union_id, is_done))
    return tuple(pairs)


def read_query(body: dict[str, Any]) -> QueryRequest:
    """The list body. Without ``isDone`` the open to-dos are listed (a choice: the page
    gives no default, and DingTalk's own views open on the unfinished ones)."""
    op = QUERY
    token = body.get("nextToken")
    if token is None or token == "" or token == "0":
        offset = 0
    elif isinstance(token, str) and token.isdigit() and token.isascii():
        offset = int(token)
    else:
        raise param_error(op, "nextToken is invalid")
    todo_type = _optional_str(op, body, "todoType") or None
    if todo_type is not None and todo_type not in CARD_TYPES:
        raise param_error(op, "todoType is invalid")
    return QueryRequest(
        offset=offset,
        is_done=_optional_bool(op, body, "isDone") or False,
        role_types=_role_types(op, body.get("roleTypes")),
        todo_type=todo_type,
    )


def _subject(op: str, value: Any, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise param_error(op, "subject is invalid")
    if text_length(value) > MAX_SUBJECT_CHARS:
        raise param_error(op, "subject is oversize")
    return value


def _description(op: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise param_error(op, "description is invalid")
    if text_length(value) > MAX_DESCRIPTION_CHARS:
        raise param_error(op, "description is oversize")
    return value


def _due_time(op: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise param_error(op, "dueTime is invalid")
    return value


def _priority(op: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or value not in PRIORITIES:
        raise param_error(op, "priority is invalid")
    return int(value)


def _people(op: str, value: Any, name: str, limit: int) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise param_error(op, f"{name} is invalid")
    if len(value) > limit:
        raise param_error(op, f"{name} is oversize")
    # Repeats collapse: a person holds a role once.
    return tuple(dict.fromkeys(value))


def _detail_url(op: str, value: Any) -> tuple[str, str]:
    if value is None:
        raise param_error(op, "detailUrl is required")
    if not isinstance(value, dict):
        raise param_error(op, "detailUrl is invalid")
    urls: list[str] = []
    for name in ("appUrl", "pcUrl"):
        url = value.get(name)
        if not isinstance(url, str) or not url.strip():
            raise param_error(op, f"detailUrl.{name} is required")
        if len(url.encode("utf-8")) > MAX_URL_BYTES:
            raise param_error(op, f"detailUrl.{name} is oversize")
        urls.append(url)
    return urls[0], urls[1]


def _ding_notify(op: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise param_error(op, "notifyConfigs is invalid")
    ding = value.get("dingNotify")
    if ding is None:
        return None
    if ding not in ("0", "1"):
        raise param_error(op, "notifyConfigs.dingNotify is invalid")
    return str(ding)


def _content_fields(op: str, value: Any) -> ContentFields | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise param_error(op, "contentFieldList is invalid")
    fields: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict):
            raise param_error(op, "contentFieldList is invalid")
        key, text = item.get("fieldKey"), item.get("fieldValue")
        if not isinstance(key, str) or not isinstance(text, str):
            raise param_error(op, "contentFieldList is invalid")
        if max(len(key.encode("utf-8")), len(text.encode("utf-8"))) > MAX_FIELD_BYTES:
            raise param_error(op, "contentFieldList is oversize")
        fields.append((key, text))
    return tuple(fields)


def _role_types(op: str, value: Any) -> tuple[tuple[str, ...], ...] | None:
    if value is None:
        return None
    groups: list[tuple[str, ...]] = []
    if not isinstance(value, list):
        raise param_error(op, "roleTypes is invalid")
    for group in value:
        if not isinstance(group, list) or not group or not all(r in ROLES for r in group):
            raise param_error(op, "roleTypes is invalid")
        groups.append(tuple(group))
    return tuple(groups) or None


def _optional_str(op: str, body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise param_error(op, f"{name} is invalid")
    return value


def _optional_bool(op: str, body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise param_error(op, f"{name} is invalid")
    return value
