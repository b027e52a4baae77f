"""A client for DingTalk's v1.0 to-do API (``api.dingtalk.com/v1.0/todo``).

The counterpart of ``dingsync.client`` for ``api: todo``: the app token and its reuse, the
userid → unionId lookup, create / get / update / delete / list of to-dos, retries with
backoff, the per-API rate limit and the mapping of DingTalk's answers onto the errors of
``dingsync.errors``, classified by what a caller has to do. Section numbers (§) refer to
``docs/dingtalk-todo.md``.

Two envelopes meet here (§11.1): the v1.0 calls answer success with a bare JSON object and
failure with an HTTP 4xx/5xx and ``{"code", "message", "requestid"}``; the one legacy call,
``topapi/v2/user/get``, keeps HTTP 200 with ``errcode``. Their parsers, the result types
and the error mapping live in ``dingsync.todo_answers``.

Secrets never leave this module: the app key, the app secret and the access token are
redacted from every log line and exception text (the token header is logged as ``***``),
and ``repr`` shows only the endpoints.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import quote
from urllib.parse import urlencode

import requests

from dingsync.client import IP_BLOCK_SECONDS
from dingsync.endpoint import DEFAULT_ENDPOINT as DEFAULT_TOPAPI_ENDPOINT
from dingsync.endpoint import check_endpoint
from dingsync.errors import ApiError
from dingsync.errors import AuthError
from dingsync.errors import CredentialsError
from dingsync.errors import DingsyncError
from dingsync.errors import InvalidParameterError
from dingsync.errors import InvalidUserError
from dingsync.errors import IpBlockedError
from dingsync.errors import TransportError
from dingsync.redaction import redact
from dingsync.todo_answers import ACCESS_TOKEN
from dingsync.todo_answers import API_NAMES
from dingsync.todo_answers import BAD_CREDENTIALS
from dingsync.todo_answers import BAD_PAGE_TOKEN
from dingsync.todo_answers import CREATE
from dingsync.todo_answers import DELETE
from dingsync.todo_answers import GET
from dingsync.todo_answers import GET_BY_SOURCE
from dingsync.todo_answers import QUERY
from dingsync.todo_answers import RENEW_TOKEN
from dingsync.todo_answers import TOPAPI_RENEW
from dingsync.todo_answers import UPDATE
from dingsync.todo_answers import USER_GET
from dingsync.todo_answers import SlowDown
from dingsync.todo_answers import TaskNotExist
from dingsync.todo_answers import TodoCard
from dingsync.todo_answers import TodoTask
from dingsync.todo_answers import card_of
from dingsync.todo_answers import describe
from dingsync.todo_answers import task_of
from dingsync.todo_answers import topapi_answer
from dingsync.todo_answers import v1_answer
from dingsync.transport import RESENDABLE
from dingsync.transport import HttpClient
from dingsync.transport import Retryable
from dingsync.transport import annotate
from dingsync.transport import elapsed_ms
from dingsync.transport import full_jitter
from dingsync.transport import is_ip_block
from dingsync.transport import nothing_sent

# The result types and every API name belong to this module's public face.
__all__ = [
    "ACCESS_TOKEN",
    "API_NAMES",
    "CREATE",
    "DEFAULT_V1_ENDPOINT",
    "DELETE",
    "GET",
    "GET_BY_SOURCE",
    "QUERY",
    "TOKEN_HEADER",
    "UPDATE",
    "USER_GET",
    "TodoCard",
    "TodoClient",
    "TodoTask",
    "todo_endpoints",
]

DEFAULT_V1_ENDPOINT = "https://api.dingtalk.com"
TOKEN_HEADER = "x-acs-dingtalk-access-token"  # the raw token, no "Bearer" (§2.3)


def todo_endpoints(endpoint: str) -> tuple[str, str]:
    """The base URLs of the v1.0 and the topapi path families for ``endpoint``.

    DingTalk serves them on two hosts (§2.1, §3.2); any other endpoint (an emulator, a
    gateway: DINGSYNC_ENDPOINT or --endpoint) is one base URL that serves both.
    """
    base = check_endpoint(endpoint)
    if base in (DEFAULT_V1_ENDPOINT, DEFAULT_TOPAPI_ENDPOINT):
        return DEFAULT_V1_ENDPOINT, DEFAULT_TOPAPI_ENDPOINT
    return base, base


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float  # clock time after which a new token is fetched


class TodoClient(HttpClient):
    """The v1.0 to-do calls (§5–§10) and the userid lookup (§3.2), over one pooled session.

    Thread-safe. Every to-do call takes the unionId of the user it acts as (the creator):
    it is the path ``unionId``, ``creatorId`` and ``operatorId`` alike (§3.4). ``sleep``,
    ``rng`` and ``clock`` (the token's lifetime) are injectable for tests.
    """

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        app_secret: str,
        *,
        max_qps: float | None = 20.0,
        log: Callable[[str], None] | None = None,
        pool_size: int = 8,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not app_key or not app_secret:
            raise CredentialsError("DINGTALK_APP_KEY and DINGTALK_APP_SECRET must both be set")
        self._v1_base, self._topapi_base = todo_endpoints(endpoint)
        super().__init__(
            app_key,
            app_secret,
            API_NAMES,
            timeout=timeout,
            max_qps=max_qps,
            pool_size=pool_size,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            log=log,
            sleep=sleep,
            rng=rng,
        )
        self._clock = clock
        self._token: _Token | None = None
        self._ids_lock = threading.Lock()
        self._union_ids: dict[str, str] = {}
        self._blocked_until = -float("inf")

    def __repr__(self) -> str:
        return f"TodoClient(endpoint={self._v1_base!r}, topapi={self._topapi_base!r})"

    @property
    def endpoint(self) -> str:
        """The base URL of the v1.0 calls."""
        return self._v1_base

    # -- identity (§3) ----------------------------------------------------------------------

    def union_id(self, userid: str) -> str:
        """The unionId of ``userid`` via ``topapi/v2/user/get``; asked once per client.

        The call carries the v1.0 token as ``access_token`` (§2.5): one token serves both
        families, and the lookup is not metered (§3.2).
        """
        with self._ids_lock:
            known = self._union_ids.get(userid)
        if known is not None:
            return known
        try:
            payload = self._topapi(USER_GET, {"userid": userid, "language": "zh_CN"})
        except InvalidUserError as exc:
            # The hint of InvalidUserError says where userids are found.
            text = f"{userid!r} is not a userid of this organisation [{exc.errmsg}]"
            error = InvalidUserError(USER_GET, exc.errcode, text, exc.sub_code, exc.request_id)
            raise error from None
        result = payload.get("result")
        value = result.get("unionid") if isinstance(result, dict) else None
        if not isinstance(value, str) or not value:
            raise TransportError(f"{USER_GET}: DingTalk answered success without a unionid")
        with self._ids_lock:
            self._union_ids[userid] = value
        return value

    # -- to-dos (§5–§10) -------------------------------------------------------------------

    def create(
        self,
        union_id: str,
        source_id: str,
        fields: Mapping[str, Any],
        executor_ids: Sequence[str] = (),
    ) -> str:
        """Create a to-do as ``union_id`` and return its taskId (§5).

        ``fields`` is the to-do's part of the body, named as the v1.0 API names it
        (``subject`` and ``detailUrl`` at least, §5.2): ``dingsync.todo_backend`` maps a
        to-do's content onto it. Re-sent only after a definite refusal (rate limit, lock,
        flow control, a refused token, a connection never made), always with the same
        ``sourceId``. When it may have landed without an answer,
        ``TransportError(maybe_committed=True)`` is raised and the caller settles it by
        ``source_id`` (§5.9). A used ``sourceId`` raises ``TaskExistsError``.
        """
        if not source_id:
            raise ValueError("a create needs a sourceId: it is what settles a lost answer")
        if "subject" not in fields or "detailUrl" not in fields:
            raise ValueError("a create needs a subject and a detailUrl (§5.2)")
        body: dict[str, Any] = {**fields, "sourceId": source_id, "creatorId": union_id}
        if executor_ids:
            body["executorIds"] = list(executor_ids)
        payload = self._v1(CREATE, "POST", _tasks(union_id), body, union_id, resend_safe=False)
        task_id = payload.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise TransportError(
                f"{CREATE}: DingTalk answered success without a task id", maybe_committed=True
            )
        return task_id

    def get(self, union_id: str, task_id: str) -> TodoTask | None:
        """The to-do ``task_id``, or None when DingTalk says "task not exist" (§6.1)."""
        try:
            payload = self._v1(GET, "GET", f"{_tasks(union_id)}/{_seg(task_id)}")
        except TaskNotExist:
            return None
        return task_of(GET, payload)

    def get_by_source_id(self, union_id: str, source_id: str) -> TodoTask | None:
        """The to-do created with ``source_id``, or None on "task not exist" (§6.2).

        Any other refusal raises: an unexpected answer is "unknown", never "absent" (§6.3).
        """
        path = f"{_tasks(union_id)}/sources/{_seg(source_id)}"
        try:
            payload = self._v1(GET_BY_SOURCE, "GET", path)
        except TaskNotExist:
            return None
        return task_of(GET_BY_SOURCE, payload)

    def update(self, union_id: str, task_id: str, fields: Mapping[str, Any]) -> bool:
        """Change only ``fields`` (§7.3), named as the v1.0 API names them; ``done``
        completes or reopens (§7.4).

        Returns False when the to-do does not exist. Idempotent, so retried like a read.
        """
        if not fields:
            raise ValueError("an update needs at least one field to change")
        body = dict(fields)
        path = f"{_tasks(union_id)}/{_seg(task_id)}"
        try:
            payload = self._v1(UPDATE, "PUT", path, body, union_id)
        except TaskNotExist:
            return False
        return payload.get("result") is True

    def delete(self, union_id: str, task_id: str) -> bool:
        """Delete a to-do (§9); False when it does not exist (already deleted)."""
        path = f"{_tasks(union_id)}/{_seg(task_id)}"
        try:
            payload = self._v1(DELETE, "DELETE", path, None, union_id)
        except TaskNotExist:
            return False
        return payload.get("result") is True

    def list_created(self, union_id: str, done: bool) -> Iterator[TodoCard]:
        """The open (or done) to-dos ``union_id`` created, one page per call, on demand (§10).

        Stops on a missing, empty or "0" ``nextToken``, on an empty page and on a token
        seen before (a faulty server cannot loop it); an invalid token restarts the listing
        once from the start (§10.5), skipping cards already yielded.
        """
        path = f"/v1.0/todo/users/{_seg(union_id)}/org/tasks/query"
        yielded: set[str] = set()
        tokens: set[str] = set()
        token: str | None = None
        restarted = False
        while True:
            body: dict[str, Any] = {"isDone": done, "roleTypes": [["creator"]]}
            if token is not None:
                body["nextToken"] = token
            try:
                page = self._v1(QUERY, "POST", path, body)
            except InvalidParameterError as exc:
                if token is None or restarted or BAD_PAGE_TOKEN not in exc.errmsg:
                    raise
                self._log(f"{QUERY}: DingTalk refused its own page token; listing again")
                restarted, token = True, None
                tokens.clear()
                continue
            cards = page.get("todoCards") or []
            for item in cards:
                card = card_of(item)
                if card.task_id not in yielded:
                    yielded.add(card.task_id)
                    yield card
            following = page.get("nextToken")
            if not cards or not isinstance(following, str) or following in ("", "0"):
                return
            if following in tokens:
                return
            tokens.add(following)
            token = following

    # -- token (§2) ------------------------------------------------------------------------

    def _current_token(self) -> str:
        with self._token_lock:
            if self._token is None or self._clock() >= self._token.refresh_at:
                self._token = self._fetch_token()
            return self._token.value

    def _drop_token(self, stale: str) -> None:
        with self._token_lock:
            if self._token is not None and self._token.value == stale:
                self._token = None

    def _fetch_token(self) -> _Token:
        started = self._clock()
        body = {"appKey": self._app_key, "appSecret": self._app_secret}
        url = f"{self._v1_base}/v1.0/oauth2/accessToken"
        try:
            payload = self._call(ACCESS_TOKEN, "POST", url, body)
        except ApiError as exc:
            if exc.reason == BAD_CREDENTIALS:
                raise CredentialsError(
                    "DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET: "
                    f"{exc.reason} {self._scrub(exc.errmsg)}"
                ) from None
            raise
        value = payload.get("accessToken")
        if not isinstance(value, str) or not value:
            raise TransportError(f"{ACCESS_TOKEN}: DingTalk answered success without a token")
        self._secrets.add(value)
        try:
            ttl = float(payload.get("expireIn", 7200))
        except (TypeError, ValueError):
            ttl = 7200.0
        # Refresh ahead: 10 minutes before expiry as the calling guide says (§2.2), or 10%
        # of a short lifetime. A renewal inside the lifetime returns the same token.
        margin = min(600.0, ttl * 0.1)
        return _Token(value=value, refresh_at=started + ttl - margin)

    # -- calls -----------------------------------------------------------------------------

    def _v1(
        self,
        api: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        operator: str | None = None,
        *,
        resend_safe: bool = True,
    ) -> dict[str, Any]:
        """A v1.0 call with the token header; ``operator`` goes as ``?operatorId``."""
        query = f"?{urlencode({'operatorId': operator})}" if operator is not None else ""
        url = f"{self._v1_base}{path}{query}"

        def send(token: str) -> dict[str, Any]:
            return self._call(api, method, url, body, token=token, resend_safe=resend_safe)

        return self._with_token(send)

    def _topapi(self, api: str, body: Mapping[str, Any]) -> dict[str, Any]:
        def send(token: str) -> dict[str, Any]:
            url = f"{self._topapi_base}/topapi/{api}?{urlencode({'access_token': token})}"
            return self._call(api, "POST", url, body, legacy=True)

        return self._with_token(send)

    def _with_token(self, send: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """Send with the current token; a refused token is renewed once (§2.6).

        The refusal means the call was not applied, so even a create may go again.
        """
        token = self._current_token()
        try:
            return send(token)
        except AuthError as exc:
            if exc.reason not in RENEW_TOKEN and exc.reason not in TOPAPI_RENEW:
                raise
            self._drop_token(token)
        token = self._current_token()
        try:
            return send(token)
        except AuthError as exc:
            raise annotate(exc, "(refused again with a freshly fetched access token)") from None

    def _call(
        self,
        api: str,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        *,
        token: str | None = None,
        legacy: bool = False,
        resend_safe: bool = True,
    ) -> dict[str, Any]:
        """Send one call, retrying what may be retried; return the successful answer."""
        retries = 0
        while True:
            try:
                return self._attempt(api, method, url, body, token, legacy)
            except Retryable as failure:
                if failure.maybe_committed and not resend_safe:
                    note = "(not sent again: DingTalk may have applied it; settle by sourceId)"
                    raise annotate(failure.error, note) from None
                limit = self._max_retries
                if failure.limit is not None:
                    limit = min(limit, failure.limit)
                if retries >= limit:
                    attempts = "attempt" if retries == 0 else "attempts"
                    raise annotate(
                        failure.error, f"(gave up after {retries + 1} {attempts})"
                    ) from None
                delay = failure.min_wait + full_jitter(
                    self._rng, self._backoff_base, self._backoff_cap, retries
                )
                retries += 1
                answer = failure.error.answer
                self._log(f"retry {retries}/{limit} of {api} in {delay:.2f} s: {answer}")
                self._sleep(delay)

    def _attempt(
        self,
        api: str,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        token: str | None,
        legacy: bool,
    ) -> dict[str, Any]:
        """One HTTP exchange, classified: the answer, a ``Retryable``, or a final error."""
        shown = f"{method} {redact(url)}" + (f" [{TOKEN_HEADER}: ***]" if token else "")
        if self._clock() < self._blocked_until:
            raise IpBlockedError(f"{api}: not sent, DingTalk blocked this IP a moment ago")
        if api != ACCESS_TOKEN:  # the token call is not metered per API (§2.2)
            self._limiter.acquire(api)
        headers: dict[str, str] = {}
        data: bytes | None = None
        if token is not None:
            headers[TOKEN_HEADER] = token
        if body is not None:
            # Real JSON in UTF-8: a form body is refused (§2.1).
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json;charset=UTF-8"
        started = time.monotonic()
        try:
            response = self._session.request(
                method, url, data=data, headers=headers, timeout=self._timeout
            )
        except requests.RequestException as exc:
            sent = not nothing_sent(exc)
            if sent:
                self._count(api)
            self._log(f"{shown} -> {type(exc).__name__} ({elapsed_ms(started)} ms)")
            raise self._transport_failure(api, shown, exc, sent) from None
        self._count(api)
        try:
            payload: object = json.loads(response.content)
        except ValueError:
            payload = None
        status = response.status_code
        self._log(f"{shown} -> {status} {describe(payload, legacy)} ({elapsed_ms(started)} ms)")
        if is_ip_block(response, payload):
            self._blocked_until = self._clock() + IP_BLOCK_SECONDS
            raise IpBlockedError(
                f"{api}: DingTalk blocked this IP address (HTTP {status}, no API answer); "
                f"such a block lasts about 5 minutes: wait, then run again [{shown}]"
            )
        check = topapi_answer if legacy else v1_answer
        try:
            return check(api, shown, status, payload, self._scrub)
        except SlowDown as refusal:
            self._penalize(api, refusal.min_wait)
            raise

    def _transport_failure(
        self, api: str, shown: str, exc: requests.RequestException, sent: bool
    ) -> DingsyncError | Retryable:
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, requests.exceptions.SSLError):
            return TransportError(f"{api}: TLS failure [{shown}]: {detail}")
        if not sent:
            error = TransportError(f"{api}: cannot connect [{shown}]: {detail}")
            return Retryable(error, maybe_committed=False)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            what = f"no answer within {self._timeout[1]:g} s"
        else:
            what = "connection lost before the answer"
        error = TransportError(
            f"{api}: {what}; the server may have acted on it [{shown}]: {detail}",
            maybe_committed=True,
        )
        return Retryable(error, maybe_committed=True) if isinstance(exc, RESENDABLE) else error

    # -- helpers ---------------------------------------------------------------------------

    def _penalize(self, api: str, pause: float) -> None:
        if api != ACCESS_TOKEN:
            self._limiter.penalize(api, pause)


def _seg(value: str) -> str:
    """One URL path segment: a sourceId or id may hold characters a path cannot (§6.2)."""
    return quote(value, safe="")


def _tasks(union_id: str) -> str:
    return f"/v1.0/todo/users/{_seg(union_id)}/tasks"
