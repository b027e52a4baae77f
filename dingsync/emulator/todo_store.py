"""The emulator's v1.0 to-dos: tasks, the sourceIds ever used, and what a list can see.

As with ``Store``, nothing here locks: callers hold ``Store.lock``. Time comes in as epoch
seconds; DingTalk's fields carry milliseconds. Section numbers (§) refer to
docs/dingtalk-todo.md.

Choices where DingTalk's pages are unsure (the open points: §5.4, §7.4, §14; the readings:
§13.2, §13.3):

- A ``sourceId`` is unique across every app of the organisation, and stays used after its
  task is deleted: a later create with it gets "task exist" naming the deleted task. This is
  the widest scope §5.4 leaves open, so a client that passes here is safe whatever
  DingTalk's real scope is.
- A task's ``done`` follows its executors: it turns true when every executor is done, and
  false again when one of them is reopened. ``done: true`` on the task completes every
  executor; ``done: false`` reopens them all.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from dingsync.emulator.todo_wire import ContentFields
from dingsync.emulator.todo_wire import CreateRequest
from dingsync.emulator.todo_wire import QueryRequest
from dingsync.emulator.todo_wire import UpdateRequest

DONE_VISIBLE_MS = 180 * 86400 * 1000  # done to-dos leave the list after 180 days (§10.4)
TENANT_ID = "dingemulatorcorp"


def biz_tag_of(app: str) -> str:
    """The ``bizTag``/``source`` of an app's to-dos: stable, and not the app key itself."""
    return "app_" + hashlib.sha256(app.encode("utf-8")).hexdigest()[:12]


def millis(epoch: float) -> int:
    return int(epoch * 1000)


@dataclass
class TodoTask:
    task_id: str
    app: str
    creator_id: str
    subject: str
    description: str | None
    due_time: int | None
    priority: int | None
    executor_ids: list[str]
    participant_ids: list[str]
    app_url: str | None
    pc_url: str | None
    source_id: str | None
    is_only_show_executor: bool
    ding_notify: str | None
    content_fields: ContentFields
    todo_type: str
    created_ms: int
    modified_ms: int
    modifier_id: str
    seq: int
    done: bool = False
    finish_ms: int | None = None
    executors_done: dict[str, bool] = field(default_factory=dict)

    @property
    def biz_tag(self) -> str:
        return biz_tag_of(self.app)

    def roles(self, union_id: str) -> set[str]:
        roles = set()
        if self.creator_id == union_id:
            roles.add("creator")
        if union_id in self.executor_ids:
            roles.add("executor")
        if union_id in self.participant_ids:
            roles.add("participant")
        return roles

    def has_detail_url(self) -> bool:
        return bool(self.app_url or self.pc_url)

    def _detail_url(self) -> dict[str, str]:
        urls = {"appUrl": self.app_url, "pcUrl": self.pc_url}
        return {name: url for name, url in urls.items() if url}

    def _common(self) -> dict[str, Any]:
        """The fields every detail answer shares; absent values are left out, as DingTalk's
        JSON writer leaves out nulls."""
        fields: dict[str, Any] = {
            "id": self.task_id,
            "subject": self.subject,
            "description": self.description,
            "dueTime": self.due_time,
            "finishTime": self.finish_ms,
            "done": self.done,
            "executorIds": list(self.executor_ids),
            "participantIds": list(self.participant_ids),
            "detailUrl": self._detail_url() or None,
            "source": self.biz_tag,
            "sourceId": self.source_id,
            "createdTime": self.created_ms,
            "modifiedTime": self.modified_ms,
            "creatorId": self.creator_id,
            "modifierId": self.modifier_id,
            "bizTag": self.biz_tag,
        }
        return fields

    def created_view(self, request_id: str) -> dict[str, Any]:
        """The answer to a create (§5.6)."""
        fields = {
            **self._common(),
            "requestId": request_id,
            "contentFieldList": [{"fieldKey": k, "fieldValue": v} for k, v in self.content_fields]
            or None,
            "isOnlyShowExecutor": self.is_only_show_executor,
            "priority": self.priority,
            "notifyConfigs": None if self.ding_notify is None else {"dingNotify": self.ding_notify},
        }
        return _without_nulls(fields)

    def detail_view(self, request_id: str) -> dict[str, Any]:
        """The answer to a get by id or by sourceId (§6.1, §6.2); no card type is ever set."""
        fields = {
            **self._common(),
            "requestId": request_id,
            "isOnlyShowExecutor": self.is_only_show_executor,
            "priority": self.priority,
            "tenantId": TENANT_ID,
            "tenantType": "org",
        }
        return _without_nulls(fields)

    def card(self) -> dict[str, Any]:
        """A list card: no executors, participants or description (§10.2)."""
        fields = {
            "taskId": self.task_id,
            "subject": self.subject,
            "dueTime": self.due_time,
            "detailUrl": self._detail_url() or None,
            "priority": self.priority,
            "createdTime": self.created_ms,
            "modifiedTime": self.modified_ms,
            "creatorId": self.creator_id,
            "sourceId": self.source_id,
            "bizTag": self.biz_tag,
            "isDone": self.done,
            "todoType": self.todo_type,
        }
        return _without_nulls(fields)

    def full(self) -> dict[str, Any]:
        """Every stored field, for the control API and the data file."""
        return {
            **self._common(),
            "detailUrl": {"appUrl": self.app_url, "pcUrl": self.pc_url},
            "app": self.app,
            "priority": self.priority,
            "isOnlyShowExecutor": self.is_only_show_executor,
            "dingNotify": self.ding_notify,
            "contentFieldList": [{"fieldKey": k, "fieldValue": v} for k, v in self.content_fields],
            "todoType": self.todo_type,
            "executorStatus": dict(self.executors_done),
            "seq": self.seq,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> TodoTask:
        urls = data.get("detailUrl") or {}
        return cls(
            task_id=str(data["id"]),
            app=str(data["app"]),
            creator_id=str(data["creatorId"]),
            subject=str(data["subject"]),
            description=data.get("description"),
            due_time=_optional_int(data.get("dueTime")),
            priority=_optional_int(data.get("priority")),
            executor_ids=[str(u) for u in data["executorIds"]],
            participant_ids=[str(u) for u in data["participantIds"]],
            app_url=urls.get("appUrl"),
            pc_url=urls.get("pcUrl"),
            source_id=data.get("sourceId"),
            is_only_show_executor=bool(data["isOnlyShowExecutor"]),
            ding_notify=data.get("dingNotify"),
            content_fields=tuple(
                (str(f["fieldKey"]), str(f["fieldValue"])) for f in data["contentFieldList"]
            ),
            todo_type=str(data["todoType"]),
            created_ms=int(data["createdTime"]),
            modified_ms=int(data["modifiedTime"]),
            modifier_id=str(data["modifierId"]),
            seq=int(data["seq"]),
            done=bool(data["done"]),
            finish_ms=_optional_int(data.get("finishTime")),
            executors_done={str(u): bool(d) for u, d in data["executorStatus"].items()},
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _without_nulls(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


class SourceIdTaken(Exception):
    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


class TodoStore:
    """The v1.0 to-dos. ``on_change`` fires after every write."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.tasks: dict[str, TodoTask] = {}  # insertion order is creation order
        self.source_ids: dict[str, str] = {}  # every sourceId ever used -> its task
        self.seq = 0

    def create(self, request: CreateRequest, app: str, creator: str, now: float) -> TodoTask:
        """Store a new to-do; ``SourceIdTaken`` when its sourceId was ever used."""
        if request.source_id is not None and request.source_id in self.source_ids:
            raise SourceIdTaken(self.source_ids[request.source_id])
        self.seq += 1
        task = TodoTask(
            task_id="OPJ" + secrets.token_hex(12),
            app=app,
            creator_id=creator,
            subject=request.subject,
            description=request.description,
            due_time=request.due_time,
            priority=request.priority,
            executor_ids=list(request.executor_ids),
            participant_ids=list(request.participant_ids),
            app_url=request.app_url,
            pc_url=request.pc_url,
            source_id=request.source_id,
            is_only_show_executor=request.is_only_show_executor,
            ding_notify=request.ding_notify,
            content_fields=request.content_fields,
            todo_type=request.todo_type,
            created_ms=millis(now),
            modified_ms=millis(now),
            modifier_id=creator,
            seq=self.seq,
            executors_done=dict.fromkeys(request.executor_ids, False),
        )
        self.tasks[task.task_id] = task
        if task.source_id is not None:
            self.source_ids[task.source_id] = task.task_id
        self.on_change()
        return task

    def by_source_id(self, source_id: str) -> TodoTask | None:
        task_id = self.source_ids.get(source_id)
        return None if task_id is None else self.tasks.get(task_id)

    def update(self, task: TodoTask, request: UpdateRequest, operator: str, now: float) -> None:
        """Change only what the request carries (a partial update)."""
        if request.subject is not None:
            task.subject = request.subject
        if request.description is not None:
            task.description = request.description
        if request.due_time is not None:
            task.due_time = request.due_time
        if request.participant_ids is not None:
            task.participant_ids = list(request.participant_ids)
        if request.content_fields is not None:
            task.content_fields = request.content_fields
        if request.executor_ids is not None:
            old = task.executors_done
            task.executor_ids = list(request.executor_ids)
            task.executors_done = {u: old.get(u, False) for u in task.executor_ids}
        if request.done is not None:
            task.executors_done = dict.fromkeys(task.executor_ids, request.done)
            self._set_done(task, request.done, now)
        self._touched(task, operator, now)

    def set_executor_status(
        self, task: TodoTask, statuses: tuple[tuple[str, bool], ...], operator: str, now: float
    ) -> None:
        for union_id, is_done in statuses:
            task.executors_done[union_id] = is_done
        self._follow_executors(task, now)
        self._touched(task, operator, now)

    def complete(self, task: TodoTask, executor: str | None, now: float) -> None:
        """Done as an assignee would mark it: one executor, or the whole task."""
        if executor is None:
            task.executors_done = dict.fromkeys(task.executor_ids, True)
            self._set_done(task, True, now)
        else:
            task.executors_done[executor] = True
            self._follow_executors(task, now)
        self._touched(task, executor or task.creator_id, now)

    def edit(self, task: TodoTask, changes: dict[str, Any], editor: str, now: float) -> None:
        """Change fields as an edit in the DingTalk client would (``check_edit`` first)."""
        for name, value in changes.items():
            setattr(task, _EDITABLE[name], value)
        self._touched(task, editor, now)

    def delete(self, task_id: str) -> TodoTask:
        """Forget a task. KeyError if unknown. Its sourceId stays used."""
        task = self.tasks.pop(task_id)
        self.on_change()
        return task

    def visible_page(
        self, union_id: str, query: QueryRequest, now: float, page_size: int
    ) -> tuple[list[TodoTask], int | None]:
        """One page of what ``org/tasks/query`` shows this user, and the next offset.

        Only to-dos with a detailUrl, done ones only for 180 days after they were finished,
        and to-dos shown only to executors only in executors' lists (§10.4, §13.5). Newest first.
        """
        oldest_done = millis(now) - DONE_VISIBLE_MS
        matching = [
            task
            for task in self.tasks.values()
            if task.has_detail_url()
            and task.done == query.is_done
            and not (task.done and (task.finish_ms or 0) < oldest_done)
            and (query.todo_type is None or task.todo_type == query.todo_type)
            and _listed_for(task, union_id, query.role_types)
        ]
        matching.sort(key=lambda t: (t.created_ms, t.seq), reverse=True)
        end = query.offset + page_size
        return matching[query.offset : end], end if end < len(matching) else None

    def _follow_executors(self, task: TodoTask, now: float) -> None:
        if task.executor_ids:
            self._set_done(task, all(task.executors_done.values()), now)

    def _set_done(self, task: TodoTask, done: bool, now: float) -> None:
        if done and not task.done:
            task.finish_ms = millis(now)
        elif not done:
            task.finish_ms = None
        task.done = done

    def _touched(self, task: TodoTask, operator: str, now: float) -> None:
        task.modified_ms = millis(now)
        task.modifier_id = operator
        self.on_change()

    # Persistence

    def snapshot(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "tasks": [task.full() for task in self.tasks.values()],
            "source_ids": dict(self.source_ids),
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.tasks = {}
        for item in data.get("tasks", []):
            task = TodoTask.from_data(item)
            self.tasks[task.task_id] = task
        self.source_ids = {str(s): str(t) for s, t in data.get("source_ids", {}).items()}
        for task in self.tasks.values():
            if task.source_id is not None:
                self.source_ids.setdefault(task.source_id, task.task_id)
        self.seq = max([int(data.get("seq", 0)), *(t.seq for t in self.tasks.values())])


# What a user can change in the client: wire name -> attribute. None clears a field
# (a subject cannot be cleared).
_EDITABLE = {
    "subject": "subject",
    "description": "description",
    "dueTime": "due_time",
    "priority": "priority",
    "appUrl": "app_url",
    "pcUrl": "pc_url",
}


def check_edit(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes of an edit, or ValueError naming what is wrong with them."""
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    for name, value in changes.items():
        if name in ("dueTime", "priority"):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name} must be an integer or null")
        elif name == "subject":
            if not isinstance(value, str) or not value:
                raise ValueError("subject must be a non-empty string")
        elif value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string or null")
    return dict(changes)


def _listed_for(
    task: TodoTask, union_id: str, role_types: tuple[tuple[str, ...], ...] | None
) -> bool:
    roles = task.roles(union_id)
    if task.is_only_show_executor and "executor" not in roles:
        return False
    if role_types is None:
        return bool(roles)
    # Outer list: any group may match; inner list: the user must hold every role of it.
    return any(all(role in roles for role in group) for group in role_types)
