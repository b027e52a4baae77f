"""How DingTalk's v1.0 to-do answers read: result types, and errors by what to do next.

Pure functions for ``dingsync.todo_client``. Two envelopes meet there (§11.1): the v1.0
calls answer success with a bare JSON object and failure with an HTTP 4xx/5xx and
``{"code", "message", "requestid"}``; ``topapi/v2/user/get`` keeps HTTP 200 with
``errcode``. Each has its own parser here. An answer becomes the payload, a ``Retryable``
(``SlowDown`` when the client must also slow its pace), or a final ``DingsyncError`` whose
class says what the caller must do and whose text says how to fix it. Section numbers (§)
refer to ``docs/dingtalk-todo.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone
from typing import Any
from typing import NamedTuple

from dingsync.client import RATE_LIMIT_MAX_WAIT
from dingsync.client import RATE_LIMIT_MIN_WAIT
from dingsync.client import rate_limit_wait
from dingsync.errors import ApiError
from dingsync.errors import AuthError
from dingsync.errors import InvalidParameterError
from dingsync.errors import InvalidUserError
from dingsync.errors import PermissionDeniedError
from dingsync.errors import QuotaExceededError
from dingsync.errors import RateLimitError
from dingsync.errors import TaskExistsError
from dingsync.errors import TransientApiError
from dingsync.errors import TransportError
from dingsync.transport import Retryable
from dingsync.transport import annotate

# API names, as in call_counts (and as the emulator counts them).
ACCESS_TOKEN = "oauth2/accessToken"
USER_GET = "v2/user/get"
CREATE = "todo/create"
GET = "todo/get"
GET_BY_SOURCE = "todo/getBySourceId"
UPDATE = "todo/update"
DELETE = "todo/delete"
QUERY = "todo/orgTasksQuery"
API_NAMES = (ACCESS_TOKEN, USER_GET, CREATE, GET, GET_BY_SOURCE, UPDATE, DELETE, QUERY)

# The permission each call needs (§4.1); get by id / by sourceId presumably need Read.
_WRITES = frozenset({CREATE, UPDATE, DELETE})
_PERMISSIONS = {
    USER_GET: "qyapi_get_member (成员信息读权限)",
    **dict.fromkeys(_WRITES, "Todo.Todo.Write (待办应用中待办写权限)"),
    **dict.fromkeys((GET, GET_BY_SOURCE, QUERY), "Todo.Todo.Read (待办应用中待办读权限)"),
}

# v1.0 codes (§11.2).
RENEW_TOKEN = frozenset({"InvalidAuthentication", "Unauthorized"})
_AUTH_CODES = RENEW_TOKEN | {"AuthenticationFailed.MissingParameter"}
_QPS_CODES = frozenset(
    {
        "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        "Forbidden.AccessDenied.QpsLimitForApi",
        "system.busy",
        "systemBusy",
    }
)
_QPM_CODE = "Forbidden.AccessDenied.QpmLimitForAppkeyAndApi"
_QUOTA_CODE = "Forbidden.AccessDenied.ApiCountLimitForOrg"
_PERMISSION_CODE = "Forbidden.AccessDenied.AccessTokenPermissionDenied"
_IP_LIST_CODE = "Forbidden.AccessDenied.IpNotInWhiteList"
_LOCK_CODE = "todo.taskCreate.lockError"
_FLOW_CODE = "todo.taskCreate.flowControlError"
BAD_CREDENTIALS = "invalidClientIdOrSecret"
_LOCK_RETRIES = 5  # the lock is held only while a racing create runs (§5.5)
_FLOW_RETRIES = 3  # "slow down and retry a few times ..., then fail the record" (§5.7)

# Legacy envelope of topapi/v2/user/get (§3.2): 88 wraps the real reason in sub_code.
TOPAPI_RENEW = frozenset({"40014", "42001", "40001", "40000", "41001"})
_TOPAPI_RATE = frozenset({"90018", "90002", "90005", "90006"})
_TOPAPI_CLASSES: dict[str, type[ApiError]] = {
    "33012": InvalidUserError,
    "400002": InvalidParameterError,
    "-1": TransientApiError,
    "60011": PermissionDeniedError,
    "60020": PermissionDeniedError,
    "90020": QuotaExceededError,
    **dict.fromkeys(_TOPAPI_RATE, RateLimitError),
    **dict.fromkeys(TOPAPI_RENEW, AuthError),
}
_BUSY_RETRIES = 3

# "task exist" / the FAQ's "task existed, ... taskId is xxx" (§5.4); parse the id if there.
_TASK_EXISTS = re.compile(r"\btask exist(?:s|ed)?\b", re.IGNORECASE)
_TASK_ID = re.compile(r"taskId is\s*([A-Za-z0-9_-]+)")
_NOT_EXIST = "task not exist"
_OTHER_APP = "task not belong to bizTag"
BAD_PAGE_TOKEN = "nextToken is invalid"


class TodoTask(NamedTuple):
    """One to-do as get (by id or by sourceId) answers it (§6)."""

    task_id: str
    subject: str
    description: str | None
    due_time_ms: int | None
    priority: int | None
    done: bool
    executor_ids: tuple[str, ...]
    app_url: str | None
    pc_url: str | None
    source_id: str | None
    creator_id: str | None
    biz_tag: str | None
    created_ms: int | None
    modified_ms: int | None
    finish_ms: int | None
    only_show_executor: bool


class TodoCard(NamedTuple):
    """One card of the creator's list: no executors and no description (§10.2)."""

    task_id: str
    subject: str
    due_time_ms: int | None
    priority: int | None
    done: bool
    app_url: str | None
    pc_url: str | None
    source_id: str | None
    creator_id: str | None
    biz_tag: str | None
    created_ms: int | None
    modified_ms: int | None


class TaskNotExist(ApiError):
    """ "task not exist": turned into None / False by get, update and delete."""


class SlowDown(Retryable):
    """A refusal for pace (rate limit, flow control): retry after ``min_wait`` and slow the
    client-side limiter of that API. Nothing was applied, so even a create may go again."""

    def __init__(
        self, error: ApiError | TransportError, wait: float, limit: int | None = None
    ) -> None:
        super().__init__(error, maybe_committed=False, min_wait=wait, limit=limit)


def v1_answer(
    api: str, shown: str, status: int, payload: object, scrub: Callable[[str], str]
) -> dict[str, Any]:
    """Success is a 2xx with a JSON object; failures map by their string code (§11)."""
    code = payload.get("code") if isinstance(payload, dict) else None
    if status >= 500:
        # A 5xx (the proxy's page or todo.*.systemError) leaves the outcome unknown.
        what = f" {code}" if isinstance(code, str) else ""
        lost = TransportError(f"{api}: HTTP {status}{what} [{shown}]", maybe_committed=True)
        raise Retryable(lost, maybe_committed=True)
    if 200 <= status < 300:
        if isinstance(payload, dict):
            return payload
        lost = TransportError(
            f"{api}: HTTP {status} without a JSON answer [{shown}]", maybe_committed=True
        )
        raise Retryable(lost, maybe_committed=True)
    if not isinstance(payload, dict) or not isinstance(code, str) or not code:
        unread = TransportError(f"{api}: HTTP {status} without a DingTalk answer [{shown}]")
        if status == 429:
            raise SlowDown(unread, RATE_LIMIT_MIN_WAIT)
        raise unread
    message = scrub(str(payload.get("message") or "").strip() or code)
    request_id = payload.get("requestid") or payload.get("requestId")
    error = v1_error(api, status, code, message, payload)
    error.request_id = str(request_id) if request_id else None
    annotate(error, f"[{shown}]")
    if code in _QPS_CODES or code == _QPM_CODE or status == 429:
        wait = rate_limit_wait(message, datetime.now(timezone.utc))
        if code == _QPM_CODE and wait <= RATE_LIMIT_MIN_WAIT:
            wait = RATE_LIMIT_MAX_WAIT  # a per-minute window, end not given (§11.2)
        raise SlowDown(error, wait)
    if code == _FLOW_CODE:
        raise SlowDown(error, RATE_LIMIT_MIN_WAIT, limit=_FLOW_RETRIES)
    if code == _LOCK_CODE:
        # Nothing was created; the same body (same sourceId) goes again (§5.5).
        raise Retryable(error, maybe_committed=False, limit=_LOCK_RETRIES)
    raise error


def v1_error(
    api: str, status: int, code: str, message: str, payload: Mapping[str, Any]
) -> ApiError:
    """The error class says what a caller must do; the text says how to fix it."""
    cls: type[ApiError] = ApiError
    text = message
    task_id: str | None = None
    if code in _AUTH_CODES:
        cls = AuthError
    elif code == _QUOTA_CODE:
        cls, text = QuotaExceededError, _quota_text(message)
    elif code == _PERMISSION_CODE:
        cls, text = PermissionDeniedError, _permission_text(api, message, payload)
    elif code == _IP_LIST_CODE:
        cls, text = PermissionDeniedError, _ip_list_text(message)
    elif code in _QPS_CODES or code in (_QPM_CODE, _FLOW_CODE) or status == 429:
        cls = RateLimitError
    elif code == _LOCK_CODE:
        cls = TransientApiError
    elif _NOT_EXIST in message:
        cls = TaskNotExist
    elif api == CREATE and _TASK_EXISTS.search(message):
        match = _TASK_ID.search(message)
        task_id = match.group(1) if match else None
        cls = TaskExistsError
    elif _OTHER_APP in message:
        # Only the creating app may edit its to-dos (§7.5).
        text = f"{message} (another app created this to-do; only that app may change it)"
    elif code.endswith(".paramError"):
        cls = InvalidParameterError
    if cls is TaskExistsError:
        error: ApiError = TaskExistsError(api, status, text, task_id=task_id)
    else:
        error = cls(api, status, text)
    # ``reason`` is what callers branch on: for v1.0 the string code (§11.1).
    error.reason = code
    error.args = (f"{api}: DingTalk error {code} (HTTP {status}): {text}",)
    return error


def topapi_answer(
    api: str, shown: str, status: int, payload: object, scrub: Callable[[str], str]
) -> dict[str, Any]:
    """The legacy envelope of ``topapi/v2/user/get``: HTTP 200 and errcode 0 (§3.2)."""
    if not isinstance(payload, dict) or "errcode" not in payload:
        unread = TransportError(f"{api}: HTTP {status} without a DingTalk answer [{shown}]")
        if status >= 500 or status == 429:  # a read: safe to send again
            raise Retryable(unread, maybe_committed=status >= 500)
        raise unread
    try:
        errcode = int(payload["errcode"])
    except (TypeError, ValueError):
        raise TransportError(f"{api}: malformed errcode [{shown}]") from None
    if errcode == 0 and status == 200:
        return payload
    sub_code = payload.get("sub_code")
    sub = str(sub_code) if sub_code not in (None, "") else None
    reason = sub if errcode == 88 and sub else str(errcode)
    errmsg = str(payload.get("errmsg") or "").strip()
    sub_msg = str(payload.get("sub_msg") or "").strip()
    message = scrub(f"{errmsg}: {sub_msg}" if sub_msg and sub_msg not in errmsg else errmsg)
    if reason == "60011":
        message = _permission_text(api, message, {})
    elif reason == "60020":
        message = _ip_list_text(message)
    elif reason == "90020":
        message = _quota_text(message)
    cls = _TOPAPI_CLASSES.get(reason, ApiError)
    request_id = payload.get("request_id")
    error = cls(api, errcode, message, sub, str(request_id) if request_id else None)
    annotate(error, f"[{shown}]")
    if reason in _TOPAPI_RATE:
        wait = rate_limit_wait(f"{errmsg} {sub_msg}", datetime.now(timezone.utc))
        raise SlowDown(error, wait)
    if reason == "-1":
        raise Retryable(error, maybe_committed=False, limit=_BUSY_RETRIES)
    raise error


def _permission_text(api: str, message: str, payload: Mapping[str, Any]) -> str:
    """Name the permission to grant and where (§4.2), plus what DingTalk asked for."""
    needed = _PERMISSIONS.get(api, "the permission this call needs")
    detail = payload.get("accessdenieddetail")
    scopes = detail.get("requiredScopes") if isinstance(detail, dict) else None
    asked = ""
    if isinstance(scopes, list) and scopes:
        asked = f"; DingTalk names {', '.join(str(s) for s in scopes)}"
    return (
        f"the app lacks the permission {needed}: grant it in the developer console "
        f"(开发者后台 → 应用 → 权限管理), then run again{asked} (DingTalk: {message})"
    )


def _ip_list_text(message: str) -> str:
    """The allow-list of server egress IPs and what to do about it (§12.5)."""
    return (
        "this machine's IP address is not in the app's allowed server IPs: add it in the "
        "developer console (开发者后台 → 应用 → 安全设置 → 服务器出口IP) or run from a fixed "
        f"egress address (DingTalk: {message})"
    )


def _quota_text(message: str) -> str:
    """The monthly quota stops the run (§12.2)."""
    return (
        "the organisation's monthly DingTalk API quota is used up; no metered call succeeds "
        f"until next month or an edition upgrade (DingTalk: {message})"
    )


def describe(payload: object, legacy: bool) -> str:
    """The code part of a log line: ``errcode=0``, a v1.0 code, ``ok`` or ``non-JSON``."""
    if not isinstance(payload, dict):
        return "non-JSON"
    if legacy:
        sub = payload.get("sub_code")
        code = f"errcode={payload.get('errcode')}"
        return f"{code}/{sub}" if sub else code
    v1_code = payload.get("code")
    return v1_code if isinstance(v1_code, str) and v1_code else "ok"


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _urls(item: Mapping[str, Any]) -> tuple[str | None, str | None]:
    detail = item.get("detailUrl")
    if not isinstance(detail, dict):
        return None, None
    app, pc = detail.get("appUrl"), detail.get("pcUrl")
    return (app if isinstance(app, str) else None, pc if isinstance(pc, str) else None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def task_of(api: str, payload: Mapping[str, Any]) -> TodoTask:
    task_id = payload.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise TransportError(f"{api}: DingTalk answered success without a task id")
    app_url, pc_url = _urls(payload)
    executors = payload.get("executorIds")
    return TodoTask(
        task_id=task_id,
        subject=str(payload.get("subject") or ""),
        description=_text(payload.get("description")),
        due_time_ms=_optional_int(payload.get("dueTime")),
        priority=_optional_int(payload.get("priority")),
        done=payload.get("done") is True,
        executor_ids=tuple(str(e) for e in executors) if isinstance(executors, list) else (),
        app_url=app_url,
        pc_url=pc_url,
        source_id=_text(payload.get("sourceId")),
        creator_id=_text(payload.get("creatorId")),
        biz_tag=_text(payload.get("bizTag")),
        created_ms=_optional_int(payload.get("createdTime")),
        modified_ms=_optional_int(payload.get("modifiedTime")),
        finish_ms=_optional_int(payload.get("finishTime")),
        only_show_executor=payload.get("isOnlyShowExecutor") is True,
    )


def card_of(item: object) -> TodoCard:
    if not isinstance(item, dict) or not isinstance(item.get("taskId"), str):
        raise TransportError(f"{QUERY}: DingTalk sent a card without a taskId")
    app_url, pc_url = _urls(item)
    return TodoCard(
        task_id=item["taskId"],
        subject=str(item.get("subject") or ""),
        due_time_ms=_optional_int(item.get("dueTime")),
        priority=_optional_int(item.get("priority")),
        done=item.get("isDone") is True,
        app_url=app_url,
        pc_url=pc_url,
        source_id=_text(item.get("sourceId")),
        creator_id=_text(item.get("creatorId")),
        biz_tag=_text(item.get("bizTag")),
        created_ms=_optional_int(item.get("createdTime")),
        modified_ms=_optional_int(item.get("modifiedTime")),
    )
