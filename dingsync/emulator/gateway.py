"""DingTalk's front door: routing, token checks, throttling, faults and the legacy calls.

``Gateway.handle`` turns one HTTP request into an ``Outcome`` without doing any I/O, so the
whole behaviour is testable in memory. Section numbers (§) without a file name refer to
docs/dingtalk-workrecord.md. The checks run in the order of §10.2: method known, token
present, token valid and live, (fault draw,) rate limit, monthly quota, body parse, required
fields, field rules, userid known, then the add rules. ``/v1.0/`` paths go to
``TodoGateway``, which shares the store, clock and settings.

``topapi/v2/user/get`` (the contacts call that maps a userid to its unionId,
docs/dingtalk-todo.md §3.2) takes ``{"userid", "language"?}`` and answers ``{"errcode": 0,
"errmsg": "ok", "result": {"userid", "unionid", "name"}, "request_id"}``; a userid that is
not a member gets 33012 "无效的userid", a missing one 400002. It is throttled like any call
but not metered: contacts calls do not count against the monthly quota.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from dingsync.emulator.config import EmulatorConfig
from dingsync.emulator.directory import Directory
from dingsync.emulator.directory import check_union_ids
from dingsync.emulator.exchange import TOPAPI_JSON
from dingsync.emulator.exchange import Action
from dingsync.emulator.exchange import Clock
from dingsync.emulator.exchange import Outcome
from dingsync.emulator.exchange import Request
from dingsync.emulator.exchange import encode
from dingsync.emulator.faults import SHORT_CIRCUIT
from dingsync.emulator.faults import FaultPlan
from dingsync.emulator.faults import busy_body
from dingsync.emulator.faults import gateway_page
from dingsync.emulator.faults import global_limit_body
from dingsync.emulator.faults import ip_block_body
from dingsync.emulator.limits import BucketLimiter
from dingsync.emulator.limits import make_limiter
from dingsync.emulator.store import Store
from dingsync.emulator.todo_gateway import V1_CALL_NAMES
from dingsync.emulator.todo_gateway import V1_PREFIX
from dingsync.emulator.todo_gateway import TodoGateway
from dingsync.emulator.todo_gateway import todo_call_name
from dingsync.emulator.wire import Rejection
from dingsync.emulator.wire import is_form
from dingsync.emulator.wire import new_request_id
from dingsync.emulator.wire import parse_body
from dingsync.emulator.wire import read_add
from dingsync.emulator.wire import read_get
from dingsync.emulator.wire import read_list
from dingsync.emulator.wire import read_update
from dingsync.emulator.wire import unknown_method

__all__ = [
    "CALL_NAMES",
    "TOPAPI_JSON",
    "Clock",
    "Gateway",
    "Outcome",
    "Request",
    "Settings",
    "encode",
]

TOKEN_JSON = "application/json"  # gettoken answers without a charset (§1.2)
TOPAPI_PREFIX = "/topapi/"

ADD = "workrecord/add"
UPDATE = "workrecord/update"
LIST = "workrecord/getbyuserid"
GET = "workrecord/get"
USER_GET = "v2/user/get"
CALL_NAMES = ("gettoken", ADD, UPDATE, LIST, GET, USER_GET, *V1_CALL_NAMES, "other")


@dataclass
class Settings:
    """The knobs that can change while the emulator runs (``set_faults``, ``set_users``)."""

    apps: dict[str, str]
    directory: Directory
    limiter: BucketLimiter
    faults: FaultPlan
    latency: float
    token_ttl: float
    daily_limit: int
    monthly_quota: int | None
    serve_get: bool
    update_unknown_result: bool
    todo_page_size: int
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALL_NAMES, 0))

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Settings:
        return cls(
            apps=dict(config.apps),
            directory=directory_of(config.users, config.union_ids),
            limiter=make_limiter(config.limiter, config.qps),
            faults=FaultPlan(config.fault_rate, config.fault_kinds, config.seed),
            latency=config.latency_ms / 1000.0,
            token_ttl=config.token_ttl,
            daily_limit=config.daily_limit,
            monthly_quota=config.monthly_quota,
            serve_get=config.serve_workrecord_get,
            update_unknown_result=config.update_unknown_result,
            todo_page_size=config.todo_page_size,
        )


# A lock error belongs to the v1.0 create; the legacy calls never draw it.
LEGACY_IMPOSSIBLE = frozenset({"lockerror"})


def directory_of(users: Iterable[str] | None, union_ids: Mapping[str, str]) -> Directory:
    return Directory(user_set(users), check_union_ids(union_ids))


def user_set(users: Iterable[str] | None) -> frozenset[str] | None:
    if isinstance(users, str):
        # A bare string would silently become a set of one-letter userids.
        raise ValueError("users must be a collection of userids, not a string")
    return None if users is None else frozenset(users)


def call_name(method: str, path: str) -> str:
    if path == "/gettoken":
        return "gettoken"
    if path.startswith(TOPAPI_PREFIX):
        api = path[len(TOPAPI_PREFIX) :].strip("/")
        if api in (ADD, UPDATE, LIST, GET, USER_GET):
            return api
    if path.startswith(V1_PREFIX):
        return todo_call_name(method, path)
    return "other"


class Gateway:
    def __init__(self, store: Store, clock: Clock, settings: Settings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.todo = TodoGateway(self)

    def handle(self, request: Request) -> Outcome:
        with self.store.lock:
            self.settings.calls[call_name(request.method, request.path)] += 1
        if request.path == "/gettoken":
            return self._gettoken(request)
        if request.path.startswith(TOPAPI_PREFIX):
            return self._topapi(request)
        if request.path.startswith(V1_PREFIX):
            return self.todo.handle(request)
        return Outcome(body=encode({"errcode": 404, "errmsg": "请求的URI地址不存在"}))

    # gettoken: query string only (§1.1), never wrapped in 88 (§1.4), not metered (§1.5),
    # not throttled.

    def _gettoken(self, request: Request) -> Outcome:
        appkey = request.query.get("appkey", "")
        if not appkey:
            return _token_reply({"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"})
        secret = self.settings.apps.get(appkey)
        given = request.query.get("appsecret", "")
        if secret is None or not hmac.compare_digest(secret.encode(), given.encode()):
            return _token_reply({"errcode": 40096, "errmsg": "不合法的appKey或appSecret"})
        with self.store.lock:
            ttl = self.settings.token_ttl
            token = self.store.issue_token(appkey, self.clock.now(), ttl)
        return _token_reply(
            {"errcode": 0, "access_token": token.value, "errmsg": "ok", "expires_in": int(ttl)}
        )

    # topapi

    def _served(self) -> tuple[str, ...]:
        served = (ADD, UPDATE, LIST, USER_GET)
        return (*served, GET) if self.settings.serve_get else served

    def _topapi(self, request: Request) -> Outcome:
        api = request.path[len(TOPAPI_PREFIX) :].strip("/")
        request_id = new_request_id()
        delay = self.settings.latency
        # A wrong HTTP method is answered like an unknown name (a guess, §7.3), and both are
        # checked before the token: a bare GET without a token gets 22, not 88 (§7.3).
        if api not in self._served() or request.method != "POST":
            return Outcome(body=encode(unknown_method(api, request_id)), delay=delay)
        body = parse_body(request.content_type, request.body)
        token = request.query.get("access_token") or _form_token(request, body)
        fault: str | None = None
        with self.store.lock:
            try:
                app = self._authorise(token)
                fault = self.settings.faults.draw(exclude=LEGACY_IMPOSSIBLE)
                if fault in SHORT_CIRCUIT:
                    return self._fault_outcome(fault, api, delay)
                reply = self._checked_call(api, app, body, request_id)
            except Rejection as rejection:
                reply = rejection.body(request_id)
        # lost_ack: the call took full effect above; only the answer goes missing.
        action: Action = "drop" if fault == "lost_ack" else "answer"
        return Outcome(body=encode(reply), action=action, delay=delay)

    def _authorise(self, token: str | None) -> str:
        if not token:
            raise Rejection(88, "access_token is blank", sub_code="40000")
        return self.store.token_app(token, self.clock.now())

    def _fault_outcome(self, fault: str | None, api: str, delay: float) -> Outcome:
        if fault == "reset":
            return Outcome(action="reset", delay=delay)
        if fault == "http500":
            status = self.settings.faults.gateway_status()
            page = gateway_page(status)
            return Outcome(status=status, body=page, content_type="text/html", delay=delay)
        if fault == "ipblock":
            return Outcome(body=encode(ip_block_body()), delay=delay)
        if fault == "qps-global":
            return Outcome(body=encode(global_limit_body(api)), delay=delay)
        return Outcome(body=encode(busy_body()), delay=delay)

    def _checked_call(
        self, api: str, app: str, body: dict[str, Any] | None, request_id: str
    ) -> dict[str, Any]:
        now = self.clock.now()
        self.settings.limiter.take(app, api, now)
        if api != USER_GET:  # contacts calls are not metered (docs/dingtalk-todo.md §12.2)
            self._meter(now)
        if body is None:
            raise Rejection(40035, "缺少参数 json")
        if api == USER_GET:
            return self._user_get(body, request_id)
        if api == ADD:
            return self._add(app, body, request_id, now)
        if api == UPDATE:
            return self._update(body, request_id)
        if api == LIST:
            return self._list(body, request_id)
        return self._get(body, request_id)

    def _meter(self, now: float) -> None:
        message = self.quota_message(now)
        if message is not None:
            raise Rejection(90020, message, traced=False)

    def quota_message(self, now: float) -> str | None:
        """Count one metered call; the refusal's words when the month's quota is spent."""
        quota = self.settings.monthly_quota
        if quota is None:
            return None
        used = self.store.meter(now)
        if used <= quota:
            return None
        return (
            f"您的企业本月api调用量已超过限制,调用量:{used}次,额度:{quota}次,"
            "请下月再试或升级版本以获得更多额度"
        )

    def _check_user(self, userid: str) -> None:
        users = self.settings.directory.users
        if users is not None and userid not in users:
            raise Rejection(33012, "无效的userid")

    def _user_get(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        userid = body.get("userid")
        if not isinstance(userid, str) or not userid:
            raise Rejection(400002, "无效的参数: userid")
        union_id = self.settings.directory.union_id(userid)
        if union_id is None:
            raise Rejection(33012, "无效的userid")
        result = {"userid": userid, "unionid": union_id, "name": userid}
        return {"errcode": 0, "errmsg": "ok", "result": result, "request_id": request_id}

    def _add(self, app: str, body: dict[str, Any], request_id: str, now: float) -> dict[str, Any]:
        request = read_add(body)
        self._check_user(request.userid)
        record = self.store.add(request, app, now, self.settings.daily_limit)
        # No errmsg on success: DingTalk's current page leaves it out (§3.6).
        return {"errcode": 0, "record_id": record.record_id, "request_id": request_id}

    def _update(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        request = read_update(body)
        self._check_user(request.userid)
        record = self.store.find_for_user(request.userid, request.record_id)
        if record is None:
            result = self.settings.update_unknown_result
        else:
            self.store.complete(record)
            result = True
        return {"errcode": 0, "result": result, "request_id": request_id}

    def _list(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        request = read_list(body)
        self._check_user(request.userid)
        page, has_more = self.store.page(
            request.userid, request.status, request.offset, request.limit
        )
        records = {"has_more": has_more, "list": [r.list_item() for r in page]}
        return {"errcode": 0, "records": records, "request_id": request_id}

    def _get(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        request = read_get(body)
        self._check_user(request.userid)
        record = self.store.get_for_user(request.userid, request.record_id)
        detail = None if record is None else record.detail()
        return {"errcode": 0, "record": detail, "request_id": request_id}


def _token_reply(payload: dict[str, Any]) -> Outcome:
    return Outcome(body=encode(payload), content_type=TOKEN_JSON)


def _form_token(request: Request, body: dict[str, Any] | None) -> str | None:
    """A form-encoded body may carry the token; a JSON body's field is not read (§2.1)."""
    if body is None or not is_form(request.content_type):
        return None
    value = body.get("access_token")
    return value if isinstance(value, str) else None
