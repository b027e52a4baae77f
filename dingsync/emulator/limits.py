"""The per-app, per-API call rate limit (dingtalk-api.md §7.3), as token buckets."""

from __future__ import annotations

import math

from dingsync.emulator.store import shanghai_time
from dingsync.emulator.wire import Rejection

# The message of a real throttling answer, in its own words (§7.3): the client may parse
# the end time "限制将在 <time> 结束" to know how long to wait.
_LIMIT_DETAIL = (
    "应用调用该接口的频率超过限制, apiPath({api_name}), 从 {start} 到 {end} "
    "请求总次数超过 {limit} 次, 限制将在 {until} 结束."
)


class RateLimiter:
    """One bucket per (app, API), holding up to ``qps`` calls and refilled at ``qps``/s.

    A bucket rather than fixed one-second windows, so that a client pacing itself at
    exactly the limit is never refused because of jitter at a window edge.
    """

    def __init__(self, qps: float | None) -> None:
        self.qps = qps
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def set_qps(self, qps: float | None) -> None:
        self.qps = qps
        self._buckets.clear()

    def take(self, app: str, api: str, now: float) -> None:
        """Spend one call, or raise the wrapped 90018 answer when the bucket is empty."""
        if not self.qps:
            return
        capacity = max(self.qps, 1.0)
        tokens, last = self._buckets.get((app, api), (capacity, now))
        # max(): an injected clock may step back; never refill from negative time.
        tokens = min(capacity, tokens + max(0.0, now - last) * self.qps)
        if tokens >= 1.0:
            self._buckets[(app, api)] = (tokens - 1.0, now)
            return
        self._buckets[(app, api)] = (tokens, now)
        raise self._refusal(api, now, now + (1.0 - tokens) / self.qps)

    def _refusal(self, api: str, now: float, free_at: float) -> Rejection:
        qps = self.qps or 0.0
        # Whole seconds, rounded up, so that waiting until the stated end always suffices.
        until = max(math.ceil(free_at), math.floor(now) + 1)
        detail = _LIMIT_DETAIL.format(
            api_name="dingtalk.oapi." + api.replace("/", "."),
            start=shanghai_time(math.floor(now)),
            end=shanghai_time(math.floor(now)),
            limit=f"{qps:g}",
            until=shanghai_time(until),
        )
        return Rejection(88, detail, sub_code="90018")
