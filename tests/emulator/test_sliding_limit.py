"""The sliding-window rate limit: the calls of the last second, refused ones included."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from dingsync.emulator import EmulatorConfig
from dingsync.emulator.limits import BucketLimiter
from dingsync.emulator.limits import SlidingWindowLimiter
from dingsync.emulator.limits import make_limiter

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=SHANGHAI).timestamp()
LIST_BODY = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}


class Steps:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def test_a_call_is_refused_when_the_last_second_holds_the_limit():
    limiter = SlidingWindowLimiter(3)
    assert [limiter.spend("app", "api", NOW + t) for t in (0.0, 0.4, 0.8)] == [None] * 3
    # A bucket would have refilled 0.15 calls by now; the window still holds three.
    free_at = limiter.spend("app", "api", NOW + 0.95)
    assert free_at == pytest.approx(NOW + 1.0)
    # The refused call counts: at 1.05 the window (0.05, 1.05] holds 0.4, 0.8 and 0.95.
    assert limiter.spend("app", "api", NOW + 1.05) == pytest.approx(NOW + 1.4)
    assert limiter.spend("app", "api", NOW + 1.95) is None  # only 1.05 is left in it


def test_calls_paced_just_over_a_second_per_limit_always_pass():
    limiter = SlidingWindowLimiter(20)
    spacing = 1.0 / 20 + 1e-6
    assert all(limiter.spend("app", "api", NOW + n * spacing) is None for n in range(200))


def test_calls_a_hair_too_close_are_refused_where_a_bucket_lets_them_pass():
    sliding, bucket = SlidingWindowLimiter(20), BucketLimiter(20)
    # Paced at the limit, but the 21st arrives 1 ms early: jitter a bucket absorbs.
    times = [NOW + n / 20 for n in range(20)] + [NOW + 1.0 - 0.001]
    assert [bucket.spend("app", "api", t) for t in times] == [None] * 21
    answers = [sliding.spend("app", "api", t) for t in times]
    assert answers[:20] == [None] * 20 and answers[20] is not None


def test_each_app_and_api_has_its_own_window():
    limiter = SlidingWindowLimiter(1)
    assert limiter.spend("a", "add", NOW) is None
    assert limiter.spend("a", "add", NOW + 0.5) is not None
    assert limiter.spend("a", "update", NOW + 0.5) is None
    assert limiter.spend("b", "add", NOW + 0.5) is None


def test_no_limit_and_a_new_limit():
    limiter = SlidingWindowLimiter(0)
    assert all(limiter.spend("a", "add", NOW) is None for _ in range(100))
    limiter.set_qps(1)
    assert limiter.spend("a", "add", NOW) is None
    assert limiter.spend("a", "add", NOW) is not None


def test_the_kind_is_chosen_by_name():
    assert make_limiter("sliding", 5).kind == "sliding"
    assert make_limiter("bucket", 5).kind == "bucket"
    with pytest.raises(ValueError, match="unknown limiter"):
        EmulatorConfig(limiter="fixed").check()


def test_the_emulator_answers_90018_from_its_sliding_window(start_emulator, connect):
    clock = Steps()
    emu = start_emulator(qps=2, limiter="sliding", clock=clock)
    api = connect(emu)
    assert api.call("workrecord/getbyuserid", LIST_BODY)["errcode"] == 0
    clock.now += 0.5
    assert api.call("workrecord/getbyuserid", LIST_BODY)["errcode"] == 0
    clock.now += 0.4  # a bucket of 2 at 2/s would have refilled enough for this call
    reply = api.call("workrecord/getbyuserid", LIST_BODY)
    assert reply["errcode"] == 88 and reply["sub_code"] == "90018"
    assert "限制将在 2026-12-01 10:00:02 结束" in reply["errmsg"]
    clock.now += 0.5  # the window now holds the second call and the refused one
    assert api.call("workrecord/getbyuserid", LIST_BODY)["sub_code"] == "90018"
    clock.now += 1.0
    assert api.call("workrecord/getbyuserid", LIST_BODY)["errcode"] == 0
