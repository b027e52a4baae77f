"""The limiter on a fake clock: window bound, adaptation, unlimited mode, threads."""

from __future__ import annotations

import itertools
import math
import threading

import pytest

from dingsync.ratelimit import RateLimiter


class FakeClock:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds

    def advance(self, seconds: float) -> None:
        self.sleep(seconds)


def make(max_qps: float | None = 20.0, **kwargs: float) -> tuple[RateLimiter, FakeClock]:
    """A limiter on a fake clock; without a window guard unless one is asked for, so that
    the spacing is exactly ``1 / rate``."""
    clock = FakeClock()
    kwargs.setdefault("window_guard", 0.0)
    return RateLimiter(max_qps, clock=clock, sleep=clock.sleep, **kwargs), clock


def grant_times(limiter: RateLimiter, clock: FakeClock, n: int, api: str = "a") -> list[float]:
    times = []
    for _ in range(n):
        limiter.acquire(api)
        times.append(clock())
    return times


def max_in_any_window(times: list[float], width: float = 1.0) -> int:
    """Most grants in any half-open window [t, t + width), allowing for float rounding."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, sum(1 for t in ordered[i:] if t < start + width - 1e-9))
    return best


@pytest.mark.parametrize("qps", [20.0, 5.0, 2.5, 1.0])
def test_never_more_than_qps_grants_in_any_second(qps: float) -> None:
    limiter, clock = make(qps)
    times = grant_times(limiter, clock, 100)
    # Slots 1/qps apart: at most ceil(qps) fit in a half-open second (qps itself if whole).
    assert max_in_any_window(times) <= math.ceil(qps)
    # ...and it is not needlessly slow: 100 grants take about 100 / qps seconds.
    assert times[-1] - times[0] == pytest.approx(99 / qps)


def test_first_grant_is_immediate_and_apis_are_paced_independently() -> None:
    limiter, clock = make(20.0)
    assert limiter.acquire("workrecord/add") == 0.0
    assert limiter.acquire("workrecord/getbyuserid") == 0.0
    assert limiter.acquire("workrecord/add") == pytest.approx(0.05)


def test_idle_time_does_not_build_up_a_burst() -> None:
    limiter, clock = make(10.0)
    grant_times(limiter, clock, 3)
    clock.advance(60)
    times = grant_times(limiter, clock, 30)
    assert max_in_any_window(times) <= 10


def test_threads_get_distinct_spaced_slots() -> None:
    # The clock stands still and sleeping does not move it: every thread's slot is
    # "now + wait", so the slots show what the limiter handed out under contention.
    clock = FakeClock()
    limiter = RateLimiter(20.0, clock=clock, sleep=lambda _s: None, window_guard=0.0)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            wait = limiter.acquire("a")
            with lock:
                slots.append(clock() + wait)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(slots) == 80
    ordered = sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) == pytest.approx(0.05)
    assert max_in_any_window(slots) <= 20


def test_the_guard_leaves_room_for_arrival_jitter_in_every_window() -> None:
    limiter, clock = make(20.0, window_guard=0.02)
    times = grant_times(limiter, clock, 100)
    # Any 20 grants in a row span a second and the guard: jitter under 20 ms is absorbed.
    assert min(times[n + 20] - times[n] for n in range(80)) == pytest.approx(1.02)
    assert RateLimiter(20.0).acquire("a") == 0.0  # the guard is on by default


def limited(limiter: RateLimiter, clock: FakeClock, api: str = "a") -> None:
    """Two episodes of rate-limit answers, two seconds apart: limiting that goes on."""
    limiter.penalize(api)
    clock.advance(2.0)
    limiter.penalize(api)


def test_a_stray_answer_pauses_one_window_and_keeps_the_rate() -> None:
    limiter, clock = make(20.0)
    limiter.acquire("a")
    limiter.penalize("a", pause=1.0)
    assert limiter.rate("a") == 20.0
    start = clock()
    limiter.acquire("a")
    assert clock() - start == pytest.approx(1.0)
    # Straight back at the maximum: 20 grants in the next second.
    times = grant_times(limiter, clock, 40)
    assert times[-1] - times[0] == pytest.approx(39 / 20)


def test_a_stray_answer_costs_one_window_of_a_short_run() -> None:
    # 300 grants at 50/s take 6 s; one answer a third of the way in adds its pause only.
    limiter, clock = make(50.0)
    start = clock()
    grant_times(limiter, clock, 100)
    limiter.penalize("a", pause=1.0)
    grant_times(limiter, clock, 200)
    assert clock() - start == pytest.approx(299 / 50 + 1.0, abs=0.05)


def test_answers_that_keep_coming_halve_the_rate_and_pause() -> None:
    limiter, clock = make(20.0, quiet_period=100.0)
    limited(limiter, clock)
    assert limiter.rate("a") == 10.0
    start = clock()
    limiter.acquire("a")
    assert clock() - start == pytest.approx(1.0)
    times = grant_times(limiter, clock, 30)
    assert max_in_any_window(times) <= 10


def test_answers_after_a_calm_spell_are_stray_again() -> None:
    limiter, clock = make(20.0, calm_period=5.0, quiet_period=100.0)
    limiter.penalize("a")
    clock.advance(6.0)
    limiter.penalize("a")
    assert limiter.rate("a") == 20.0
    clock.advance(4.0)
    limiter.penalize("a")
    assert limiter.rate("a") == 10.0


def test_a_burst_of_refusals_is_one_episode() -> None:
    limiter, clock = make(20.0, decrease_cooldown=1.0, quiet_period=100.0)
    limiter.penalize("a")
    clock.advance(2.0)
    for _ in range(15):  # fifteen workers refused in the same instant
        limiter.penalize("a")
    assert limiter.rate("a") == 10.0
    clock.advance(1.0)
    limiter.penalize("a")
    assert limiter.rate("a") == 5.0


def test_rate_never_drops_below_the_floor() -> None:
    limiter, clock = make(20.0, min_qps=1.0, quiet_period=100.0)
    for _ in range(20):
        limiter.penalize("a")
        clock.advance(1.5)
    assert limiter.rate("a") == 1.0


def test_rate_recovers_additively_after_quiet_periods() -> None:
    limiter, clock = make(20.0, quiet_period=2.0, recovery_step=2.0)
    limited(limiter, clock)
    assert limiter.rate("a") == 10.0
    clock.advance(1.9)
    assert limiter.rate("a") == 10.0  # not quiet long enough yet
    clock.advance(0.1)
    assert limiter.rate("a") == 12.0
    clock.advance(5.0)  # two more full periods
    assert limiter.rate("a") == 16.0
    clock.advance(100.0)
    assert limiter.rate("a") == 20.0  # capped at the maximum


def test_the_default_recovery_is_back_at_the_maximum_within_seconds() -> None:
    limiter, clock = make(20.0)
    limited(limiter, clock)
    assert limiter.rate("a") == 10.0
    clock.advance(5.0)
    assert limiter.rate("a") == 20.0


def test_a_new_refusal_restarts_the_quiet_period() -> None:
    limiter, clock = make(
        20.0, quiet_period=2.0, recovery_step=2.0, decrease_cooldown=10.0, calm_period=20.0
    )
    limiter.penalize("a")
    clock.advance(10.0)
    limiter.penalize("a")  # the second episode, within the calm period: halved
    clock.advance(1.5)
    limiter.penalize("a")  # within the cooldown: no second halving, but not quiet either
    clock.advance(1.5)
    assert limiter.rate("a") == 10.0
    clock.advance(0.5)
    assert limiter.rate("a") == 12.0


def test_other_apis_keep_their_rate() -> None:
    limiter, clock = make(20.0, quiet_period=100.0)
    limited(limiter, clock, "workrecord/add")
    assert limiter.rate("workrecord/add") == 10.0
    assert limiter.rate("workrecord/getbyuserid") == 20.0
    assert limiter.acquire("workrecord/getbyuserid") == 0.0


@pytest.mark.parametrize("max_qps", [0, 0.0, None])
def test_unlimited_mode_never_paces_but_waits_out_a_rate_limit_pause(
    max_qps: float | None,
) -> None:
    limiter, clock = make(max_qps)
    assert limiter.unlimited
    start = clock()
    for _ in range(1000):
        assert limiter.acquire("a") == 0.0
    assert clock() == start
    limiter.penalize("a", pause=0.5)
    assert limiter.acquire("b") == 0.0  # another API goes on
    assert limiter.acquire("a") == pytest.approx(0.5)  # the server said when to come back
    assert limiter.acquire("a") == 0.0
    assert limiter.rate("a") == math.inf


def test_fractional_maximum_is_its_own_floor() -> None:
    limiter, clock = make(0.5)
    limiter.penalize("a")
    assert limiter.rate("a") == 0.5
    times = grant_times(limiter, clock, 4)
    assert times[-1] - times[0] == pytest.approx(6.0)


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(-1.0)
