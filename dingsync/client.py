"""The DingTalk client: the only module that speaks HTTP to DingTalk (or to the emulator).

It implements ``dingsync.backend.Backend`` over the legacy ``topapi/workrecord`` calls and
hides every quirk of that API from the rest of the program: the access token and its
refresh, the error envelope with its ``errcode 88`` wrapper, retries with backoff, the
per-API rate limit and the pagination of ``getbyuserid``. Section numbers (§) refer to
``docs/dingtalk-workrecord.md``.

Secrets never leave this module: the app secret, the app key and the access token are
redacted from every log line and exception text, and ``repr`` shows only the endpoint.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from typing import Any
from urllib.parse import urlencode

import requests

from dingsync.chinatime import CHINA
from dingsync.endpoint import check_endpoint
from dingsync.errors import ApiError
from dingsync.errors import AuthError
from dingsync.errors import CredentialsError
from dingsync.errors import DailyLimitError
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import InvalidParameterError
from dingsync.errors import InvalidUserError
from dingsync.errors import IpBlockedError
from dingsync.errors import IpNotAllowedError
from dingsync.errors import MissingPermissionError
from dingsync.errors import QuotaExceededError
from dingsync.errors import RateLimitError
from dingsync.errors import TransientApiError
from dingsync.errors import TransportError
from dingsync.errors import UnknownMethodError
from dingsync.model import Content
from dingsync.model import RemoteRecord
from dingsync.model import Status
from dingsync.redaction import redact as _redact
from dingsync.transport import RESENDABLE
from dingsync.transport import HttpClient
from dingsync.transport import Retryable as _Retryable
from dingsync.transport import annotate as _annotate
from dingsync.transport import elapsed_ms as _ms
from dingsync.transport import full_jitter
from dingsync.transport import is_ip_block as _is_ip_block
from dingsync.transport import nothing_sent as _nothing_sent

GETTOKEN = "gettoken"
ADD = "workrecord/add"
UPDATE = "workrecord/update"
LIST = "workrecord/getbyuserid"
GET = "workrecord/get"
API_NAMES = (GETTOKEN, ADD, UPDATE, LIST, GET)

PAGE_SIZE = 50  # the largest page getbyuserid allows (§5.1)

# §7.5: reasons cured by a fresh token (once); §1.4: gettoken's answers to bad credentials.
_AUTH_REASONS = frozenset({"40014", "42001", "40001", "40000", "41001"})
_CREDENTIAL_REASONS = frozenset({"40096", "40089", "40035", "40001"})
# §8.1–§8.3: per-app, global, per-corp and per-appkey frequency limits; all worth waiting out.
_RATE_LIMIT_REASONS = frozenset({"90018", "90002", "90005", "90006"})
_BUSY = "-1"
_BUSY_RETRIES = 3  # on -1, DingTalk advises retrying at most 3 times (§7.5)

_ERROR_CLASSES: dict[str, type[ApiError]] = {
    "33012": InvalidUserError,
    "40035": InvalidParameterError,
    "400002": InvalidParameterError,
    "40068": InvalidParameterError,
    "40069": InvalidParameterError,
    # The add doc names both 854001 and 400001 for a duplicate (§3.9).
    "854001": DuplicateError,
    "400001": DuplicateError,
    "854002": DailyLimitError,
    "90018": RateLimitError,
    "90002": RateLimitError,
    "90005": RateLimitError,
    "90006": RateLimitError,
    "-1": TransientApiError,
    "22": UnknownMethodError,
    "90020": QuotaExceededError,
    "60011": MissingPermissionError,
    "60020": IpNotAllowedError,
    **dict.fromkeys(_AUTH_REASONS, AuthError),
}

# "…, 限制将在 2026-09-03 00:01:03 结束." (older replies: "处罚将在 … 结束"), Beijing time (§8.2).
_LIMIT_END = re.compile(r"(?:限制|处罚)将在\s*(\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2})\s*结束")
_LIMIT_WINDOW = re.compile(
    r"从\s*(\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2})\s*到\s*(\d{4}-\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2})"
)
RATE_LIMIT_MIN_WAIT = 1.0  # the limit window is one second; DingTalk advises waiting 1 s (§8.1)
RATE_LIMIT_MAX_WAIT = 60.0  # the longest documented window (per minute, 90005/90006)
IP_BLOCK_SECONDS = 300.0  # an IP block lasts five minutes (§8.4)

_STATUS_CODES: dict[Status, int] = {"open": 0, "done": 1}

# 40096 and the other refusals of gettoken: where the right pair is found.
CREDENTIALS_HINT = (
    "set them to the app's Client ID（原 AppKey）and Client Secret（原 AppSecret）from "
    "开发者后台 → 应用开发 → 企业内部应用 → the app → 凭证与基础信息"
)


def rate_limit_wait(message: str, now: datetime) -> float:
    """Seconds to wait after a rate-limit answer whose text is ``message``.

    DingTalk names the end of the penalty in Beijing time (§8.2), after the window it
    counted ("从 A 到 B ..."): the wait is measured from B, DingTalk's own clock, so a local
    clock that is off by minutes cannot turn a short penalty into the longest wait. Only
    without a window is ``now`` used. Without an end, or when it is already past, wait the
    one-second window; capped so that no answer stalls a run.
    """
    match = _LIMIT_END.search(message)
    if match is None:
        return RATE_LIMIT_MIN_WAIT
    end = _beijing(match.group(1))
    window = _LIMIT_WINDOW.search(message)
    reference = _beijing(window.group(2)) if window else now
    wait = (end - reference).total_seconds()
    return min(max(wait, RATE_LIMIT_MIN_WAIT), RATE_LIMIT_MAX_WAIT)


def _beijing(stamp: str) -> datetime:
    text = " ".join(stamp.split())
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)


def _truthy(value: object) -> bool:
    """DingTalk booleans may arrive as JSON booleans or as strings (§2.3)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float  # monotonic time after which a new token is fetched


class DingTalkClient(HttpClient):
    """``Backend`` over ``oapi.dingtalk.com/topapi/workrecord/*`` (§3–§6).

    Thread-safe: the applier calls ``create`` and ``complete`` from ``pool_size`` workers.
    ``sleep`` and ``rng`` are injectable so tests can make backoff instant and repeatable.
    """

    def __init__(
        self,
        endpoint: str,
        app_key: str,
        app_secret: str,
        *,
        timeout: tuple[float, float] = (5.0, 30.0),
        max_qps: float | None = 20.0,
        pool_size: int = 10,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        log: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not app_key or not app_secret:
            raise CredentialsError(
                "DINGTALK_APP_KEY and DINGTALK_APP_SECRET must both be set (to the app's "
                "Client ID and Client Secret, shown in 开发者后台 → the app → 凭证与基础信息)"
            )
        self._endpoint = check_endpoint(endpoint)
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
        self._token: _Token | None = None
        self._blocked_until = 0.0

    def __repr__(self) -> str:
        return f"DingTalkClient(endpoint={self._endpoint!r})"

    @property
    def endpoint(self) -> str:
        return self._endpoint

    # -- Backend ---------------------------------------------------------------------------

    def create(self, userid: str, content: Content, biz_id: str, create_time_ms: int) -> str:
        """``workrecord/add`` (§3). Never re-sent once it may have reached DingTalk (§7.7)."""
        body = _add_body(userid, content, biz_id, create_time_ms)
        payload = self._topapi(ADD, body, resend_safe=False)
        record_id = payload.get("record_id")
        if not isinstance(record_id, str) or not record_id:
            raise TransportError(
                f"{ADD}: DingTalk answered success without a record_id", maybe_committed=True
            )
        return record_id

    def complete(self, userid: str, record_id: str) -> bool:
        """``workrecord/update`` (§4): idempotent (§4.2), so retried like a read."""
        payload = self._topapi(UPDATE, {"userid": userid, "record_id": record_id})
        return _truthy(payload.get("result"))

    def list_records(self, userid: str, status: Status) -> Iterator[RemoteRecord]:
        """``workrecord/getbyuserid`` (§5.1), one page of 50 per call, fetched on demand."""
        offset = 0
        while True:
            body = {
                "userid": userid,
                "offset": offset,
                "limit": PAGE_SIZE,
                "status": _STATUS_CODES[status],
            }
            page = self._topapi(LIST, body).get("records")
            if not isinstance(page, dict):
                return  # no "records" object: nothing listed
            items = page.get("list") or []
            for item in items:
                yield self._remote_record(LIST, item, userid, status)
            # An empty page that claims more would loop forever; trust the emptiness.
            if not items or not _truthy(page.get("has_more")):
                return
            offset += PAGE_SIZE  # next offset = offset + limit (§5.1)

    def get_record(self, userid: str, record_id: str) -> RemoteRecord | None:
        """``workrecord/get``: not a DingTalk API (§6); some gateways and the emulator serve it.

        Raises ``UnknownMethodError`` (errcode 22) where it does not exist; the caller then
        falls back to the list (§6.3).
        """
        payload = self._topapi(GET, {"userid": userid, "record_id": record_id})
        item = payload.get("record")
        if not item:
            return None
        status: Status = "done" if str(item.get("status", 0)) == "1" else "open"
        return self._remote_record(GET, item, userid, status)

    # -- token (§1) ------------------------------------------------------------------------

    def _current_token(self) -> str:
        """The cached token, fetched at most once at a time however many threads ask."""
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token.refresh_at:
                self._token = self._fetch_token()
            return self._token.value

    def _drop_token(self, stale: str) -> None:
        """Forget ``stale`` unless another thread already replaced it."""
        with self._token_lock:
            if self._token is not None and self._token.value == stale:
                self._token = None

    def _fetch_token(self) -> _Token:
        started = time.monotonic()
        query = {"appkey": self._app_key, "appsecret": self._app_secret}
        try:
            payload = self._call(GETTOKEN, "GET", "/gettoken", query)
        except ApiError as exc:
            if exc.reason in _CREDENTIAL_REASONS:
                raise CredentialsError(
                    "DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET: "
                    f"{exc.reason} {self._scrub(exc.errmsg)} ({CREDENTIALS_HINT})"
                ) from None
            raise
        value = payload.get("access_token")
        if not isinstance(value, str) or not value:
            raise TransportError(f"{GETTOKEN}: DingTalk answered success without a token")
        self._secrets.add(value)
        try:
            ttl = float(payload.get("expires_in", 7200))
        except (TypeError, ValueError):
            ttl = 7200.0
        # Refresh early: 5 minutes before expiry, or 10% of a short lifetime (§1.6).
        margin = min(300.0, ttl * 0.1)
        return _Token(value=value, refresh_at=started + ttl - margin)

    # -- calls -----------------------------------------------------------------------------

    def _topapi(
        self, api: str, body: Mapping[str, Any], *, resend_safe: bool = True
    ) -> dict[str, Any]:
        """A topapi call with the token; an auth refusal gets one fresh token and one retry."""
        path = f"/topapi/{api}"
        token = self._current_token()
        try:
            return self._call(api, "POST", path, {"access_token": token}, body, resend_safe)
        except AuthError:
            # 40014/42001/40001/40000: the token was refused, so the request was not applied
            # and may be sent again whatever it is (§1.6).
            self._drop_token(token)
        token = self._current_token()
        try:
            return self._call(api, "POST", path, {"access_token": token}, body, resend_safe)
        except AuthError as exc:
            raise _annotate(exc, "(refused again with a freshly fetched access token)") from None

    def _call(
        self,
        api: str,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Mapping[str, Any] | None = None,
        resend_safe: bool = True,
    ) -> dict[str, Any]:
        """Send one API call, retrying what may be retried; return the successful answer.

        Every HTTP request of the client goes through here. ``resend_safe`` is false for
        creates: once a create may have reached DingTalk it is never sent again here.
        """
        url = f"{self._endpoint}{path}?{urlencode(query)}"
        retries = 0
        while True:
            try:
                return self._attempt(api, method, url, body)
            except _Retryable as failure:
                if failure.maybe_committed and not resend_safe:
                    note = "(not sent again: DingTalk may have applied it)"
                    raise _annotate(failure.error, note) from None
                limit = self._max_retries
                if failure.limit is not None:
                    limit = min(limit, failure.limit)
                if retries >= limit:
                    attempts = "attempt" if retries == 0 else "attempts"
                    raise _annotate(
                        failure.error, f"(gave up after {retries + 1} {attempts})"
                    ) from None
                delay = failure.min_wait + self._backoff(retries)
                retries += 1
                answer = failure.error.answer
                self._log(f"retry {retries}/{limit} of {api} in {delay:.2f} s: {answer}")
                self._sleep(delay)

    def _backoff(self, retry: int) -> float:
        """Exponential backoff with full jitter."""
        return full_jitter(self._rng, self._backoff_base, self._backoff_cap, retry)

    def _attempt(
        self, api: str, method: str, url: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """One HTTP exchange, classified: the answer, a ``_Retryable``, or a final error."""
        shown = f"{method} {_redact(url)}"
        if time.monotonic() < self._blocked_until:
            raise IpBlockedError(
                f"{api}: not sent, DingTalk blocked this IP a moment ago (wait about 5 minutes, "
                "then run again)"
            )
        if api != GETTOKEN:  # gettoken is not metered per API like the others (§1.5)
            self._limiter.acquire(api)
        started = time.monotonic()
        try:
            response = self._send(method, url, body)
        except requests.RequestException as exc:
            sent = not _nothing_sent(exc)
            if sent:
                self._count(api)
            self._log(f"{shown} -> {type(exc).__name__} ({_ms(started)} ms)")
            raise self._transport_failure(api, shown, exc, sent) from None
        self._count(api)
        payload = self._decode(api, shown, response, started)
        return self._check(api, shown, response.status_code, payload, body)

    def _send(self, method: str, url: str, body: Mapping[str, Any] | None) -> requests.Response:
        if body is None:
            return self._session.request(method, url, timeout=self._timeout)
        # JSON body in UTF-8, as the official SDKs send it (§2.2).
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json;charset=UTF-8"}
        return self._session.request(method, url, data=data, headers=headers, timeout=self._timeout)

    def _decode(
        self, api: str, shown: str, response: requests.Response, started: float
    ) -> dict[str, Any]:
        """Turn an HTTP answer into DingTalk's JSON envelope, or fail (§7.1)."""
        status = response.status_code
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        code = _describe(payload)
        self._log(f"{shown} -> {status} {code} ({_ms(started)} ms)")
        if _is_ip_block(response, payload):
            self._blocked_until = time.monotonic() + IP_BLOCK_SECONDS
            raise IpBlockedError(
                f"{api}: DingTalk blocked this IP address (HTTP {status}, no API answer); "
                "it blocks an address that sent more than 10,000 calls in 20 seconds, counting "
                "every program behind it (a shared CI egress, say); such a block lasts about "
                f"5 minutes: wait, then run again, from another address if it recurs [{shown}]"
            )
        if status >= 500:
            # A gateway's 5xx says nothing about whether the call behind it went through.
            raise _Retryable(
                TransportError(f"{api}: HTTP {status} [{shown}]", maybe_committed=True),
                maybe_committed=True,
            )
        if status == 429:
            error = TransportError(f"{api}: HTTP 429 too many requests [{shown}]")
            self._penalize(api, RATE_LIMIT_MIN_WAIT)
            raise _Retryable(error, maybe_committed=False, min_wait=RATE_LIMIT_MIN_WAIT)
        if not isinstance(payload, dict) or "errcode" not in payload:
            error = TransportError(
                f"{api}: HTTP {status} without a DingTalk answer [{shown}]",
                maybe_committed=status < 300,
            )
            if status < 300:  # something answered for the server: it may have acted
                raise _Retryable(error, maybe_committed=True)
            raise error
        return payload

    def _check(
        self,
        api: str,
        shown: str,
        status: int,
        payload: dict[str, Any],
        body: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Apply the success test of §7.1 and map failures to errors or retries (§7.5)."""
        try:
            errcode = int(payload["errcode"])
        except (TypeError, ValueError):
            raise _Retryable(
                TransportError(f"{api}: malformed errcode [{shown}]", maybe_committed=True),
                maybe_committed=True,
            ) from None
        if errcode == 0:
            if status != 200:  # success needs both (§7.1); a proxy may have answered
                # ...but the request did get through, and may have been applied.
                raise TransportError(
                    f"{api}: HTTP {status} with errcode 0 [{shown}]", maybe_committed=True
                )
            return payload
        sub_code = payload.get("sub_code")
        sub = str(sub_code) if sub_code not in (None, "") else None
        reason = sub if errcode == 88 and sub else str(errcode)
        error = self._api_error(api, shown, payload, errcode, sub, reason, body)
        if reason in _RATE_LIMIT_REASONS:
            text = f"{payload.get('errmsg', '')} {payload.get('sub_msg', '')}"
            wait = rate_limit_wait(text, datetime.now(timezone.utc))
            self._penalize(api, wait)
            raise _Retryable(error, maybe_committed=False, min_wait=wait)
        if reason == _BUSY:
            raise _Retryable(error, maybe_committed=False, limit=_BUSY_RETRIES)
        raise error

    def _api_error(
        self,
        api: str,
        shown: str,
        payload: Mapping[str, Any],
        errcode: int,
        sub_code: str | None,
        reason: str,
        body: Mapping[str, Any] | None,
    ) -> ApiError:
        cls = _ERROR_CLASSES.get(reason, ApiError)
        if reason == "400002" and api == ADD and body is not None and _fields_filled(body):
            # The add doc also uses 400002 for the daily cap (§3.9); with every field
            # filled in, an empty field cannot be what DingTalk means.
            cls = DailyLimitError
        text = self._scrub(_message(payload))
        if cls is QuotaExceededError:
            text = (
                "the organisation's monthly DingTalk API quota is used up; no metered call "
                "succeeds until next month or an edition upgrade (专业版/专属版); next month, "
                "spend less: fewer applies and drift checks, --no-refresh (DingTalk: " + text + ")"
            )
        request_id = payload.get("request_id")
        error = cls(api, errcode, text, sub_code, str(request_id) if request_id else None)
        return _annotate(error, f"[{shown}]")

    def _transport_failure(
        self, api: str, shown: str, exc: requests.RequestException, sent: bool
    ) -> DingsyncError | _Retryable:
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, requests.exceptions.SSLError):
            # A certificate problem does not cure itself; verification is never turned off.
            return TransportError(f"{api}: TLS failure [{shown}]: {detail}")
        if not sent:
            error = TransportError(f"{api}: cannot connect [{shown}]: {detail}")
            return _Retryable(error, maybe_committed=False)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            what = f"no answer within {self._timeout[1]:g} s"
        else:
            what = "connection lost before the answer"
        error = TransportError(
            f"{api}: {what}; the server may have acted on it [{shown}]: {detail}",
            maybe_committed=True,
        )
        retryable = isinstance(exc, RESENDABLE)
        return _Retryable(error, maybe_committed=True) if retryable else error

    # -- helpers ---------------------------------------------------------------------------

    def _remote_record(self, api: str, item: object, userid: str, status: Status) -> RemoteRecord:
        """Map a list item (``record_id, create_time, title, url, forms``) to a value (§5.2)."""
        if not isinstance(item, dict) or not item.get("record_id"):
            raise TransportError(f"{api}: DingTalk sent a record without a record_id")
        forms = item.get("forms") or []
        return RemoteRecord(
            record_id=str(item["record_id"]),
            userid=userid,
            create_time_ms=_integer(item.get("create_time")),
            title=str(item.get("title", "")),
            url=str(item.get("url", "")),
            form=tuple(
                (str(f.get("title", "")), str(f.get("content", "")))
                for f in forms
                if isinstance(f, dict)
            ),
            status=status,
        )

    def _penalize(self, api: str, pause: float) -> None:
        if api != GETTOKEN:
            self._limiter.penalize(api, pause)


def _add_body(userid: str, content: Content, biz_id: str, create_time_ms: int) -> dict[str, Any]:
    """The add request with DingTalk's exact, mixed-case field names (§3.2)."""
    body: dict[str, Any] = {
        "userid": userid,
        "create_time": int(create_time_ms),
        "title": content.title,
        "url": content.url,
    }
    if content.pc_url:
        body["pcUrl"] = content.pc_url
    body["formItemList"] = [{"title": t, "content": c} for t, c in content.form]
    if content.originator_userid:
        body["originator_user_id"] = content.originator_userid
    if content.source_name:
        body["source_name"] = content.source_name
    if content.pc_open_type is not None:
        body["pc_open_type"] = content.pc_open_type
    body["biz_id"] = biz_id
    return body


def _fields_filled(body: Mapping[str, Any]) -> bool:
    items = body.get("formItemList") or []
    return bool(str(body.get("title", "")).strip()) and all(
        str(item.get("title", "")).strip() and str(item.get("content", "")).strip()
        for item in items
    )


def _integer(value: object) -> int:
    """A number that may arrive as a JSON number or as a numeric string (§2.3); else 0."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def _message(payload: Mapping[str, Any]) -> str:
    """DingTalk's own words: errmsg, plus sub_msg when errmsg does not already hold it."""
    errmsg = str(payload.get("errmsg") or "").strip()
    sub_msg = str(payload.get("sub_msg") or "").strip()
    if sub_msg and sub_msg not in errmsg:
        return f"{errmsg}: {sub_msg}" if errmsg else sub_msg
    return errmsg or "(no message)"


def _describe(payload: object) -> str:
    """The code part of a log line: ``errcode=0``, ``errcode=88/90018`` or ``non-JSON``."""
    if not isinstance(payload, dict):
        return "non-JSON"
    sub = payload.get("sub_code")
    code = f"errcode={payload.get('errcode')}"
    return f"{code}/{sub}" if sub else code
