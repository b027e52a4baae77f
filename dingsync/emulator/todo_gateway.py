"""DingTalk's v1.0 front door (``/v1.0/...``): the app token and the to-do calls.

Section numbers (§) refer to docs/dingtalk-todo.md. Routes (§2.1, §5–§10), all on the
emulator's one port::

    POST   /v1.0/oauth2/accessToken                          {"appKey", "appSecret"}
    POST   /v1.0/todo/users/{unionId}/tasks                  create
    GET    /v1.0/todo/users/{unionId}/tasks/{taskId}         get
    GET    /v1.0/todo/users/{unionId}/tasks/sources/{sourceId}
    PUT    /v1.0/todo/users/{unionId}/tasks/{taskId}         update (partial)
    DELETE /v1.0/todo/users/{unionId}/tasks/{taskId}
    PUT    /v1.0/todo/users/{unionId}/tasks/{taskId}/executorStatus
    POST   /v1.0/todo/users/{unionId}/org/tasks/query        list, paged by nextToken

Successes are bare JSON objects; errors are HTTP 4xx/5xx with ``{"code", "message",
"requestid"}`` (§11.1). Checks run in the legacy side's order: route known (else 404
``InvalidAction.NotFound``), token present in ``x-acs-dingtalk-access-token`` (else 401
``Unauthorized``), token known and live (else 400 ``InvalidAuthentication``), fault draw,
rate limit (403 ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``), monthly quota (403
``Forbidden.AccessDenied.ApiCountLimitForOrg``), body, field rules, people known, then the
call's own rules. The app token is the legacy one: both token calls hand out, and renew,
the same live token, and either works on both sides.

Readings chosen where DingTalk's pages are silent or unsure, strict where it could matter:

- An unknown path or method answers 404 ``InvalidAction.NotFound``; a body that is not a
  JSON object answers the call's generic ``todo.<op>.paramError`` (the token call: 400
  ``InvalidParameter`` "body is mandatory").
- A missing or unknown ``appKey``/``appSecret`` is 400 ``invalidClientIdOrSecret``.
- ``operatorId``, when given, must equal the path unionId, and so must a create's
  ``creatorId`` (the pages say the path unionId is the creator and the operator).
- The path unionId, executors and participants must be unionIds of members (see
  ``directory``): otherwise ``<name> is invalid``; a userid in their place is refused.
- A get by id or by sourceId that finds nothing (or a task the path user has no role in)
  answers 400 ``todo.taskGet.paramError`` "task not exist", like update and delete.
- Update and executorStatus are for the task's creator or an executor, delete for its
  creator only ("operator has no permission"); a task of another app answers "task not
  belong to bizTag" on all three (the delete page does not list it; it is refused there
  too rather than deleting another app's task).
- "task exist" names the existing task: ``task exist, taskId is <id>`` (§5.4, the FAQ).
- The list's page size is ``todo_page_size`` (20 unless configured; the page gives none),
  ``nextToken`` is the decimal offset of the next page and is left out on the last page;
  a first call may send no token, an empty one or "0".
- Injected faults: ``http500`` is the proxy's HTML 500/502 page, ``errcode-1`` the JSON
  HTTP 500 ``todo.<op>.systemError``, ``qps-global`` 403 ``Forbidden.AccessDenied.
  QpsLimitForApi``, ``lockerror`` 400 ``todo.taskCreate.lockError`` (creates with a
  sourceId only); ``reset``, ``lost_ack`` and ``ipblock`` behave as on the legacy side.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import unquote

from dingsync.emulator.exchange import Action
from dingsync.emulator.exchange import Outcome
from dingsync.emulator.exchange import Request
from dingsync.emulator.exchange import encode
from dingsync.emulator.faults import gateway_page
from dingsync.emulator.faults import ip_block_body
from dingsync.emulator.limits import limit_detail
from dingsync.emulator.todo_store import SourceIdTaken
from dingsync.emulator.todo_store import TodoTask
from dingsync.emulator.todo_wire import CREATE
from dingsync.emulator.todo_wire import DELETE
from dingsync.emulator.todo_wire import GET
from dingsync.emulator.todo_wire import QUERY
from dingsync.emulator.todo_wire import STATUS
from dingsync.emulator.todo_wire import UPDATE
from dingsync.emulator.todo_wire import TodoError
from dingsync.emulator.todo_wire import new_request_id
from dingsync.emulator.todo_wire import not_exist
from dingsync.emulator.todo_wire import param_error
from dingsync.emulator.todo_wire import read_create
from dingsync.emulator.todo_wire import read_executor_status
from dingsync.emulator.todo_wire import read_json
from dingsync.emulator.todo_wire import read_query
from dingsync.emulator.todo_wire import read_update
from dingsync.emulator.wire import Rejection

if TYPE_CHECKING:
    from dingsync.emulator.gateway import Gateway

V1_PREFIX = "/v1.0/"
V1_JSON = "application/json"
TOKEN_HEADER = "x-acs-dingtalk-access-token"

ACCESS_TOKEN = "oauth2/accessToken"
V1_CREATE = "todo/create"
V1_GET = "todo/get"
V1_GET_BY_SOURCE = "todo/getBySourceId"
V1_UPDATE = "todo/update"
V1_DELETE = "todo/delete"
V1_STATUS = "todo/executorStatus"
V1_QUERY = "todo/orgTasksQuery"
V1_CALL_NAMES = (
    ACCESS_TOKEN,
    V1_CREATE,
    V1_GET,
    V1_GET_BY_SOURCE,
    V1_UPDATE,
    V1_DELETE,
    V1_STATUS,
    V1_QUERY,
)

_TASKS = "/v1.0/todo/users/{unionId}/tasks"
# call name -> (error code middle part, path as named in throttling messages)
_CALLS = {
    V1_CREATE: (CREATE, _TASKS),
    V1_GET: (GET, _TASKS + "/{taskId}"),
    V1_GET_BY_SOURCE: (GET, _TASKS + "/sources/{sourceId}"),
    V1_UPDATE: (UPDATE, _TASKS + "/{taskId}"),
    V1_DELETE: (DELETE, _TASKS + "/{taskId}"),
    V1_STATUS: (STATUS, _TASKS + "/{taskId}/executorStatus"),
    V1_QUERY: (QUERY, "/v1.0/todo/users/{unionId}/org/tasks/query"),
}
_NOT_FOUND = "Specified api is not found, please check your url and method."
_ALL_REFUSED = "当前接口的所有请求都被暂时禁用了"
_WITH_BODY = frozenset({V1_CREATE, V1_UPDATE, V1_STATUS, V1_QUERY})


@dataclass(frozen=True)
class Route:
    call: str
    user: str = ""  # the path unionId
    ref: str = ""  # the path taskId or sourceId

    @property
    def op(self) -> str:
        return _CALLS[self.call][0]


def route_of(method: str, path: str) -> Route | None:
    """The v1.0 call a request names, or None. Path segments are percent-decoded."""
    if not path.startswith(V1_PREFIX):
        return None
    parts = [unquote(part) for part in path[len(V1_PREFIX) :].split("/")]
    if parts == ["oauth2", "accessToken"]:
        return Route(ACCESS_TOKEN) if method == "POST" else None
    if len(parts) < 4 or parts[:2] != ["todo", "users"] or not all(parts[2:]):
        return None
    user, rest = parts[2], parts[3:]
    match (method, *rest):
        case ("POST", "tasks"):
            return Route(V1_CREATE, user)
        case ("GET", "tasks", "sources", source_id):
            return Route(V1_GET_BY_SOURCE, user, source_id)
        case ("GET", "tasks", task_id):
            return Route(V1_GET, user, task_id)
        case ("PUT", "tasks", task_id):
            return Route(V1_UPDATE, user, task_id)
        case ("DELETE", "tasks", task_id):
            return Route(V1_DELETE, user, task_id)
        case ("PUT", "tasks", task_id, "executorStatus"):
            return Route(V1_STATUS, user, task_id)
        case ("POST", "org", "tasks", "query"):
            return Route(V1_QUERY, user)
    return None


def todo_call_name(method: str, path: str) -> str:
    route = route_of(method, path)
    return "other" if route is None else route.call


class TodoGateway:
    """The v1.0 calls, over the legacy gateway's store, clock, settings and counters."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def handle(self, request: Request) -> Outcome:
        request_id = new_request_id()
        route = route_of(request.method, request.path)
        if route is None:
            error = TodoError(404, "InvalidAction.NotFound", _NOT_FOUND)
            return _answer(404, error.body(request_id))
        if route.call == ACCESS_TOKEN:
            return self._access_token(request, request_id)
        settings = self.gateway.settings
        delay = settings.latency
        fault: str | None = None
        with self.gateway.store.lock:
            try:
                app = self._authorise(request.headers.get(TOKEN_HEADER, ""))
                fault = settings.faults.draw(exclude=_impossible_faults(route, request))
                if fault not in (None, "lost_ack"):
                    return self._fault_outcome(fault, route, request_id, delay)
                status, reply = self._checked_call(route, app, request, request_id)
            except TodoError as error:
                status, reply = error.status, error.body(request_id)
        # lost_ack: the call took full effect above; only the answer goes missing.
        action: Action = "drop" if fault == "lost_ack" else "answer"
        return Outcome(status, encode(reply), V1_JSON, action, delay)

    # The app token (§2.1): not metered (§2.2), not throttled, never a fault.

    def _access_token(self, request: Request, request_id: str) -> Outcome:
        body = read_json(request.body)
        if body is None:
            error = TodoError(400, "InvalidParameter", "body is mandatory")
            return _answer(400, error.body(request_id))
        appkey, given = body.get("appKey"), body.get("appSecret")
        settings = self.gateway.settings
        secret = settings.apps.get(appkey) if isinstance(appkey, str) else None
        if (
            secret is None
            or not isinstance(given, str)
            or not hmac.compare_digest(secret.encode(), given.encode())
        ):
            error = TodoError(400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
            return _answer(400, error.body(request_id))
        assert isinstance(appkey, str)
        with self.gateway.store.lock:
            ttl = settings.token_ttl
            token = self.gateway.store.issue_token(appkey, self.gateway.clock.now(), ttl)
        return _answer(200, {"accessToken": token.value, "expireIn": int(ttl)})

    def _authorise(self, token: str) -> str:
        if not token:
            raise TodoError(401, "Unauthorized", "不合法的access_token")
        try:
            return self.gateway.store.token_app(token, self.gateway.clock.now())
        except Rejection:
            # Unknown, revoked and expired tokens get the one answer DingTalk documents (§2.4).
            raise TodoError(400, "InvalidAuthentication", "不合法的access_token") from None

    def _fault_outcome(self, fault: str, route: Route, request_id: str, delay: float) -> Outcome:
        faults = self.gateway.settings.faults
        if fault == "reset":
            return Outcome(action="reset", delay=delay)
        if fault == "http500":
            status = faults.gateway_status()
            return Outcome(status, gateway_page(status), "text/html", delay=delay)
        if fault == "ipblock":
            return Outcome(body=encode(ip_block_body()), content_type=V1_JSON, delay=delay)
        if fault == "qps-global":
            error = TodoError(403, "Forbidden.AccessDenied.QpsLimitForApi", _ALL_REFUSED)
        elif fault == "lockerror":
            error = TodoError(400, "todo.taskCreate.lockError", "todo.taskCreate.lockError")
        else:  # errcode-1: the backend's own failure, as the v1.0 gateway reports it
            code = f"todo.{route.op}.systemError"
            error = TodoError(500, code, code)
        return Outcome(error.status, encode(error.body(request_id)), V1_JSON, delay=delay)

    def _checked_call(
        self, route: Route, app: str, request: Request, request_id: str
    ) -> tuple[int, dict[str, Any]]:
        settings = self.gateway.settings
        now = self.gateway.clock.now()
        free_at = settings.limiter.spend(app, route.call, now)
        if free_at is not None:
            detail = limit_detail(_CALLS[route.call][1], settings.limiter.qps, now, free_at)
            raise TodoError(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", detail)
        over = self.gateway.quota_message(now)
        if over is not None:
            raise TodoError(403, "Forbidden.AccessDenied.ApiCountLimitForOrg", over)
        body = self._body(route, request)
        check_people(self.gateway, route.op, (route.user,), "unionId")
        operator = request.query.get("operatorId")
        if operator is not None and operator != route.user:
            raise param_error(route.op, "operatorId is invalid")
        calls = TodoCalls(self.gateway, app, route, now, request_id)
        if route.call == V1_CREATE:
            return 200, calls.create(body)
        if route.call in (V1_GET, V1_GET_BY_SOURCE):
            return 200, calls.get()
        if route.call == V1_UPDATE:
            return 200, calls.update(body)
        if route.call == V1_DELETE:
            return 200, calls.delete()
        if route.call == V1_STATUS:
            return 200, calls.executor_status(body)
        return 200, calls.query(body)

    def _body(self, route: Route, request: Request) -> dict[str, Any]:
        if route.call not in _WITH_BODY:
            return {}
        body = read_json(request.body)
        if body is None:
            code = f"todo.{route.op}.paramError"
            raise TodoError(400, code, code)
        return body


class TodoCalls:
    """The effect of each to-do call, once the gateway's checks have passed."""

    def __init__(self, gateway: Gateway, app: str, route: Route, now: float, request_id: str):
        self.gateway = gateway
        self.todo = gateway.store.todo
        self.app = app
        self.route = route
        self.now = now
        self.request_id = request_id

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        request = read_create(body)
        user = self.route.user
        if request.creator_id is not None and request.creator_id != user:
            raise param_error(CREATE, "creatorId is invalid")
        self._check_people(request.executor_ids, "executorIds")
        self._check_people(request.participant_ids, "participantIds")
        try:
            task = self.todo.create(request, self.app, user, self.now)
        except SourceIdTaken as taken:
            raise param_error(CREATE, f"task exist, taskId is {taken.task_id}") from None
        return task.created_view(self.request_id)

    def get(self) -> dict[str, Any]:
        if self.route.call == V1_GET:
            task = self.todo.tasks.get(self.route.ref)
        else:
            task = self.todo.by_source_id(self.route.ref)
        if task is None or not task.roles(self.route.user):
            raise not_exist(GET)
        return task.detail_view(self.request_id)

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        request = read_update(body)
        self._check_people(request.executor_ids, "executorIds")
        self._check_people(request.participant_ids, "participantIds")
        task = self._own_task(UPDATE, ("creator", "executor"))
        self.todo.update(task, request, self.route.user, self.now)
        return {"result": True}

    def delete(self) -> dict[str, Any]:
        task = self._own_task(DELETE, ("creator",))
        self.todo.delete(task.task_id)
        return {"result": True, "requestId": self.request_id}

    def executor_status(self, body: dict[str, Any]) -> dict[str, Any]:
        statuses = read_executor_status(body)
        task = self._own_task(STATUS, ("creator", "executor"))
        if any(union_id not in task.executor_ids for union_id, _ in statuses):
            raise param_error(STATUS, "executor not exist")
        self.todo.set_executor_status(task, statuses, self.route.user, self.now)
        return {"result": True}

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        request = read_query(body)
        page_size = self.gateway.settings.todo_page_size
        page, next_offset = self.todo.visible_page(self.route.user, request, self.now, page_size)
        reply: dict[str, Any] = {"todoCards": [task.card() for task in page]}
        if next_offset is not None:
            reply["nextToken"] = str(next_offset)
        return reply

    def _own_task(self, op: str, roles: tuple[str, ...]) -> TodoTask:
        """The path's task, if this app made it and the operator may act on it."""
        task = self.todo.tasks.get(self.route.ref)
        if task is None:
            raise not_exist(op)
        if task.app != self.app:
            raise param_error(op, "task not belong to bizTag")
        if not task.roles(self.route.user) & set(roles):
            raise param_error(op, "operator has no permission")
        return task

    def _check_people(self, union_ids: tuple[str, ...] | None, name: str) -> None:
        check_people(self.gateway, self.route.op, union_ids, name)


def check_people(gateway: Gateway, op: str, union_ids: tuple[str, ...] | None, name: str) -> None:
    """Refuse unionIds that belong to no member (a userid sent in their place, say)."""
    directory = gateway.settings.directory
    if union_ids is not None and not all(directory.knows(u) for u in union_ids):
        raise param_error(op, f"{name} is invalid")


def _impossible_faults(route: Route, request: Request) -> frozenset[str]:
    """A lock error needs a create that carries a sourceId."""
    if route.call == V1_CREATE:
        body = read_json(request.body)
        if body is not None and isinstance(body.get("sourceId"), str) and body["sourceId"]:
            return frozenset()
    return frozenset({"lockerror"})


def _answer(status: int, payload: dict[str, Any]) -> Outcome:
    return Outcome(status, encode(payload), V1_JSON)
