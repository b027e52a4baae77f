"""The per-app, per-API call rate limit, two ways of counting.

DingTalk's limit: docs/dingtalk-workrecord.md §8.1 (v1.0: docs/dingtalk-todo.md §12.1); the
emulator's bucket: docs/dingtalk-workrecord.md §10.8.

``bucket`` (the default) is a token bucket: lenient to a client that paces itself at exactly
the limit. ``sliding`` counts every call in the last second, as a strict server may: a call
is refused when ``qps`` calls already arrived within the second before it, so arrival jitter
alone can trip a client paced at exactly the limit.

Both APIs share the limiter; the legacy side answers a refusal with the wrapped 90018, the
v1.0 side with HTTP 403 ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``.
"""

from __future__ import annotations

import math
from collections import deque

from dingsync.emulator.config import LIMITER_KINDS
from dingsync.emulator.store import shanghai_time
from dingsync.emulator.wire import Rejection

WINDOW_SECONDS = 1.0

# A real throttling answer's message, in its own words (docs/dingtalk-workrecord.md §8.2):
# the client may parse the end time "限制将在 <time> 结束" to know how long to wait.
_LIMIT_DETAIL = (
    "应用调用该接口的频率超过限制, apiPath({api_name}), 从 {start} 到 {end} "
    "请求总次数超过 {limit} 次, 限制将在 {until} 结束."
)


class BucketLimiter:
    """One bucket per (app, API), holding up to ``qps`` calls and refilled at ``qps``/s.

    A bucket rather than fixed one-second windows, so that a client pacing itself at
    exactly the limit is never refused because of jitter at a window edge.
    """

    kind = "bucket"

    def __init__(self, qps: float | None) -> None:
        self.qps = qps
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def set_qps(self, qps: float | None) -> None:
        self.qps = qps
        self._buckets.clear()

    def take(self, app: str, api: str, now: float) -> None:
        """Spend one call, or raise the wrapped 90018 answer when the limit is reached."""
        free_at = self.spend(app, api, now)
        if free_at is not None:
            detail = limit_detail("dingtalk.oapi." + api.replace("/", "."), self.qps, now, free_at)
            raise Rejection(88, detail, sub_code="90018")

    def spend(self, app: str, api: str, now: float) -> float | None:
        """Spend one call and return None, or return when the next call will be allowed."""
        if not self.qps:
            return None
        capacity = max(self.qps, 1.0)
        tokens, last = self._buckets.get((app, api), (capacity, now))
        # max(): an injected clock may step back; never refill from negative time.
        tokens = min(capacity, tokens + max(0.0, now - last) * self.qps)
        if tokens >= 1.0:
            self._buckets[(app, api)] = (tokens - 1.0, now)
            return None
        self._buckets[(app, api)] = (tokens, now)
        return now + (1.0 - tokens) / self.qps


class SlidingWindowLimiter(BucketLimiter):
    """Counts the calls of each (app, API) in the last second, refused ones included.

    A call is refused when ``qps`` (at least one) calls arrived in ``(now - 1 s, now]``;
    the refused call counts too, as DingTalk's words say: the total of requests.
    """

    kind = "sliding"

    def __init__(self, qps: float | None) -> None:
        super().__init__(qps)
        self._arrivals: dict[tuple[str, str], deque[float]] = {}

    def set_qps(self, qps: float | None) -> None:
        super().set_qps(qps)
        self._arrivals.clear()

    def spend(self, app: str, api: str, now: float) -> float | None:
        if not self.qps:
            return None
        limit = max(math.floor(self.qps), 1)
        arrivals = self._arrivals.setdefault((app, api), deque())
        while arrivals and arrivals[0] <= now - WINDOW_SECONDS:
            arrivals.popleft()
        allowed = len(arrivals) < limit
        free_at = None if allowed else arrivals[len(arrivals) - limit] + WINDOW_SECONDS
        arrivals.append(now)
        # Bounded: only the newest ``limit`` arrivals decide any later answer.
        while len(arrivals) > limit:
            arrivals.popleft()
        return free_at


def make_limiter(kind: str, qps: float | None) -> BucketLimiter:
    """The limiter of kind ``bucket`` or ``sliding``."""
    if kind == "sliding":
        return SlidingWindowLimiter(qps)
    if kind == "bucket":
        return BucketLimiter(qps)
    raise ValueError(f"unknown limiter {kind!r}; known: {', '.join(LIMITER_KINDS)}")


def limit_detail(api_name: str, qps: float | None, now: float, free_at: float) -> str:
    """The words of a throttling answer, naming the API and when the limit ends."""
    # Whole seconds, rounded up, so that waiting until the stated end always suffices.
    until = max(math.ceil(free_at), math.floor(now) + 1)
    return _LIMIT_DETAIL.format(
        api_name=api_name,
        start=shanghai_time(math.floor(now)),
        end=shanghai_time(math.floor(now)),
        limit=f"{qps or 0.0:g}",
        until=shanghai_time(until),
    )
