"""HTTP pieces both DingTalk clients share: retry signals, backoff, the session.

``dingsync.client`` (legacy ``topapi/workrecord``) and ``dingsync.todo_client`` (the v1.0
to-do API) speak different envelopes but fail over the same transport in the same ways, so
the classification of a failed request (was anything sent?) and the pooled session live
here, once.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from typing import TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError
from urllib3.exceptions import MaxRetryError

from dingsync import __version__
from dingsync.errors import DingsyncError
from dingsync.ratelimit import RateLimiter
from dingsync.redaction import scrub

_E = TypeVar("_E", bound=BaseException)


def annotate(exc: _E, note: str) -> _E:
    """Append ``note`` to an exception's one-line message, keeping its attributes."""
    exc.args = (f"{exc.args[0]} {note}" if exc.args else note,)
    return exc


def full_jitter(rng: random.Random, base: float, cap: float, retry: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**retry)]."""
    ceiling = min(cap, base * 2**retry)
    return rng.uniform(0.0, ceiling)


class Retryable(Exception):
    """One attempt failed in a way a later attempt may not.

    ``error`` is what the caller gets if no retry is left (or allowed); ``maybe_committed``
    says whether the server may have acted on the request; ``min_wait`` is a floor for the
    pause; ``limit`` caps the retries for this kind of failure.
    """

    def __init__(
        self,
        error: DingsyncError,
        *,
        maybe_committed: bool,
        min_wait: float = 0.0,
        limit: int | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.maybe_committed = maybe_committed
        self.min_wait = min_wait
        self.limit = limit


def is_ip_block(response: requests.Response, payload: object) -> bool:
    """The IP block is an HTML page or ``{"status":1111,…,"punish":"deny"}``.

    See docs/dingtalk-workrecord.md §7.4 and docs/dingtalk-todo.md §12.4.
    """
    if isinstance(payload, dict):
        return str(payload.get("punish", "")).lower() == "deny"
    if response.status_code >= 500:
        return False
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def _caused_by_handshake(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__
    return False


def nothing_sent(exc: requests.RequestException) -> bool:
    """True when the failure happened before any byte of the request left (connect phase)."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        # Only a failed handshake (certificate, protocol) proves nothing was sent; a TLS
        # error while reading the answer may follow a request that was applied.
        return _caused_by_handshake(exc)
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        reason = exc.args[0]
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        # NewConnectionError (refused, DNS failure) is a subclass of ConnectTimeoutError.
        return isinstance(reason, ConnectTimeoutError)
    return False


# The failures after which a request that may have been applied is worth sending again
# (when it is safe to resend at all).
RESENDABLE = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def new_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # Retries are ours: urllib3 must never re-send a create on its own.
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"dingsync/{__version__}"
    session.headers["Accept"] = "application/json"
    session.verify = True
    return session


_Client = TypeVar("_Client", bound="HttpClient")


class HttpClient:
    """What both DingTalk clients keep alike: the retry settings, the pacer, one pooled
    session, the count of calls by API and the secrets to keep out of every text."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        api_names: Iterable[str],
        *,
        timeout: tuple[float, float],
        max_qps: float | None,
        pool_size: int,
        max_retries: int,
        backoff_base: float,
        backoff_cap: float,
        log: Callable[[str], None] | None,
        sleep: Callable[[float], None],
        rng: random.Random | None,
    ) -> None:
        self._app_key = app_key
        self._app_secret = app_secret
        self._timeout = timeout
        self._max_retries = max(0, max_retries)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._log_line = log
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._limiter = RateLimiter(max_qps, sleep=sleep)
        self._session = new_session(pool_size)
        self._token_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._counts = dict.fromkeys(api_names, 0)
        self._secrets: set[str] = {s for s in (app_key, app_secret) if s}

    def __enter__(self: _Client) -> _Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    @property
    def call_counts(self) -> dict[str, int]:
        """HTTP requests sent so far by API name; retries count, connects that failed do not."""
        with self._counts_lock:
            return dict(self._counts)

    def close(self) -> None:
        self._session.close()

    def _count(self, api: str) -> None:
        with self._counts_lock:
            self._counts[api] = self._counts.get(api, 0) + 1

    def _scrub(self, text: str) -> str:
        """Redact secret query values, then any literal secret or token still present."""
        return scrub(text, list(self._secrets))

    def _log(self, line: str) -> None:
        if self._log_line is not None:
            self._log_line(self._scrub(line))
