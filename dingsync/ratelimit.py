"""Client-side pacing of DingTalk calls: one adaptive limiter slot schedule per API.

DingTalk meters each app at 20 calls per second *per API* and answers the excess with
errcode 90018 (docs/dingtalk-workrecord.md §8.1; this pacer: §8.6). Its window is one second,
so the limiter spaces the grants for one API at least ``1 / rate`` seconds apart (and a small
guard more): then no half-open one-second window ever holds more than ``rate`` grants,
whatever the server's window alignment or bucket size, even when calls arrive with a little
jitter.

Every rate-limit answer pauses that API until the window it names is over. The rate itself
adapts in the usual additive-increase / multiplicative-decrease way, but only to limiting
that goes on: a stray answer after a calm spell (a server counting a sliding window can
refuse a client paced at exactly the limit when two calls arrive a little closer than they
were sent) costs the pause and nothing more, while answers that keep coming halve the rate
(down to a floor), and every quiet period gives some of it back, up to the maximum.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class _Schedule:
    """Pacing state of one API name."""

    rate: float  # grants per second now
    next_free: float = -math.inf  # earliest moment the next grant may happen
    paused_until: float = -math.inf  # set by a rate-limit answer
    last_episode: float = -math.inf  # first answer of the latest burst of answers
    quiet_since: float = -math.inf  # last rate-limit answer (or last recovery step)


class RateLimiter:
    """A thread-safe pacer with one schedule per API name.

    ``max_qps`` of 0 or None means unpaced: ``acquire`` waits only while a rate-limit
    answer's pause lasts (the server said when to come back; sending sooner only buys
    more refusals), and ``penalize`` pauses without lowering any rate. ``clock`` and
    ``sleep`` are injectable so tests can run on a fake clock.
    """

    def __init__(
        self,
        max_qps: float | None = 20.0,
        *,
        min_qps: float = 1.0,
        quiet_period: float = 1.0,
        recovery_step: float | None = None,
        decrease_cooldown: float = 1.0,
        calm_period: float = 5.0,
        window_guard: float = 0.02,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if max_qps is not None and max_qps < 0:
            raise ValueError("max_qps must be positive, or 0/None for unlimited")
        self._max = float(max_qps) if max_qps else 0.0
        self._floor = min(min_qps, self._max) if self._max else 0.0
        self._quiet = quiet_period
        # Climb from the floor back to the maximum in about ten quiet periods.
        self._step = recovery_step if recovery_step is not None else max(self._max / 10, 0.5)
        # Many workers tend to be refused in the same burst: answers within the cooldown of
        # the burst's first are one episode, and an episode halves the rate once at most.
        self._cooldown = decrease_cooldown
        # Grants are spaced (1 + guard) / rate apart, so that ``rate`` grants span a second
        # and ``guard`` more: a server counting a sliding one-second window then refuses none
        # though calls arrive up to ``guard`` s closer together than they left (issue 12
        # target: the sliding-window rows at the limit).
        self._guard = max(0.0, window_guard)
        # An episode halves the rate only when the one before it began less than this ago.
        self._calm = calm_period
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._schedules: dict[str, _Schedule] = {}

    @property
    def unlimited(self) -> bool:
        return self._max == 0.0

    @property
    def max_qps(self) -> float:
        return self._max

    def rate(self, api: str) -> float:
        """The current rate for ``api`` in grants per second (``inf`` when unlimited)."""
        if self.unlimited:
            return math.inf
        with self._lock:
            schedule = self._schedule(api)
            self._recover(schedule, self._clock())
            return schedule.rate

    def acquire(self, api: str) -> float:
        """Block until a call to ``api`` may be sent; return the seconds waited."""
        if self.unlimited:
            return self._wait_out_pause(api)
        with self._lock:
            now = self._clock()
            schedule = self._schedule(api)
            self._recover(schedule, now)
            # Reserve a slot under the lock, wait for it outside: threads queue up in order
            # without holding the lock while they sleep.
            start = max(now, schedule.next_free, schedule.paused_until)
            schedule.next_free = start + (1.0 + self._guard) / schedule.rate
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def penalize(self, api: str, pause: float = 1.0) -> None:
        """Record a rate-limit answer for ``api``: pause it ``pause`` s, and halve its rate
        when the limiting goes on (an earlier episode less than ``calm_period`` ago)."""
        if self.unlimited:
            with self._lock:
                schedule = self._schedule(api)
                schedule.paused_until = max(schedule.paused_until, self._clock() + pause)
            return
        with self._lock:
            now = self._clock()
            schedule = self._schedule(api)
            schedule.paused_until = max(schedule.paused_until, now + pause)
            since = now - schedule.last_episode
            if since >= self._cooldown:
                if since < self._calm:
                    schedule.rate = max(self._floor, schedule.rate / 2)
                schedule.last_episode = now
            schedule.quiet_since = now

    def _wait_out_pause(self, api: str) -> float:
        with self._lock:
            schedule = self._schedules.get(api)
            wait = 0.0 if schedule is None else schedule.paused_until - self._clock()
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def _schedule(self, api: str) -> _Schedule:
        schedule = self._schedules.get(api)
        if schedule is None:
            schedule = self._schedules[api] = _Schedule(rate=self._max)
        return schedule

    def _recover(self, schedule: _Schedule, now: float) -> None:
        """Give back ``step`` per full quiet period since the last rate-limit answer."""
        if schedule.rate >= self._max:
            return
        periods = math.floor((now - schedule.quiet_since) / self._quiet)
        if periods <= 0:
            return
        schedule.rate = min(self._max, schedule.rate + periods * self._step)
        schedule.quiet_since += periods * self._quiet
