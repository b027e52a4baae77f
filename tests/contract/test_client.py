"""The real client over real HTTP against the real emulator: wire format, errors, faults."""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from dingsync.backend import Backend
from dingsync.client import ADD
from dingsync.client import CREDENTIALS_HINT
from dingsync.client import GET
from dingsync.client import LIST
from dingsync.client import UPDATE
from dingsync.client import DingTalkClient
from dingsync.client import rate_limit_wait
from dingsync.emulator import Emulator
from dingsync.endpoint import check_endpoint
from dingsync.errors import ApiError
from dingsync.errors import AuthError
from dingsync.errors import CredentialsError
from dingsync.errors import DailyLimitError
from dingsync.errors import DuplicateError
from dingsync.errors import EndpointError
from dingsync.errors import InvalidParameterError
from dingsync.errors import InvalidUserError
from dingsync.errors import IpBlockedError
from dingsync.errors import QuotaExceededError
from dingsync.errors import RateLimitError
from dingsync.errors import TransientApiError
from dingsync.errors import TransportError
from dingsync.errors import UnknownMethodError
from dingsync.model import Content

from .conftest import APP_SECRET
from .conftest import MakeClient
from .conftest import StartEmulator
from .conftest import Transcript

CREATE_TIME = 1_764_000_000_000  # ms


def content(title: str = "领取笔记本电脑", **overrides: object) -> Content:
    fields: dict[str, object] = {
        "title": title,
        "url": "https://intranet.example.com/it/laptop",
        "form": (("任务描述", "到 IT 服务台领取并签收"), ("截止日期", "2026-12-05")),
    }
    fields.update(overrides)
    return Content(**fields)  # type: ignore[arg-type]


def create(client: DingTalkClient, userid: str, n: int, **overrides: object) -> str:
    """Create a to-do numbered ``n`` (distinct title and biz_id) and return its record_id."""
    return client.create(userid, content(f"待办 {n}", **overrides), f"biz-{userid}-{n}", n)


# -- the happy path and the wire format -----------------------------------------------------


def test_client_satisfies_the_backend_protocol(make_client: MakeClient) -> None:
    backend: Backend = make_client()
    assert backend.call_counts["gettoken"] == 0


def test_create_then_list_returns_it_with_every_field(
    emu: Emulator, make_client: MakeClient
) -> None:
    client = make_client()
    sent = content(
        pc_url="https://intranet.example.com/it/laptop?pc=1",
        source_name="入职流程",
        originator_userid="manager7078",
        pc_open_type=2,
    )
    record_id = client.create("alice01", sent, "dingsync-abc-0", CREATE_TIME)

    assert re.fullmatch(r"record[0-9a-f]{32}", record_id)
    [stored] = emu.records()
    assert stored["record_id"] == record_id
    assert stored["userid"] == "alice01"
    assert stored["biz_id"] == "dingsync-abc-0"
    assert stored["create_time"] == CREATE_TIME
    assert stored["title"] == sent.title
    assert stored["url"] == sent.url
    assert stored["pcUrl"] == sent.pc_url
    assert stored["formItemList"] == [
        {"title": "任务描述", "content": "到 IT 服务台领取并签收"},
        {"title": "截止日期", "content": "2026-12-05"},
    ]
    assert stored["source_name"] == "入职流程"
    assert stored["originator_user_id"] == "manager7078"
    assert stored["pc_open_type"] == 2
    assert stored["status"] == 0

    [listed] = client.list_records("alice01", "open")
    assert listed.record_id == record_id
    assert listed.userid == "alice01"
    assert listed.create_time_ms == CREATE_TIME
    assert listed.title == sent.title
    assert listed.url == sent.url
    assert listed.form == sent.form
    assert listed.status == "open"
    assert list(client.list_records("alice01", "done")) == []


def test_optional_fields_are_left_out_when_unset(emu: Emulator, make_client: MakeClient) -> None:
    make_client().create("alice01", content(), "biz-1", CREATE_TIME)
    [stored] = emu.records()
    for name in ("pcUrl", "source_name", "originator_user_id", "pc_open_type"):
        assert stored[name] is None, name


def test_list_pages_through_more_than_fifty_records(emu: Emulator, make_client: MakeClient) -> None:
    client = make_client()
    created = {create(client, "bob02", n) for n in range(120)}
    create(client, "carol03", 0)  # another user's record stays out of bob02's list

    listed = list(client.list_records("bob02", "open"))

    assert {r.record_id for r in listed} == created
    assert len(listed) == 120
    assert client.call_counts[LIST] == 3  # offsets 0, 50, 100
    assert emu.call_counts()["workrecord/getbyuserid"] == 3


def test_list_is_lazy_and_stops_when_the_caller_does(make_client: MakeClient) -> None:
    client = make_client()
    for n in range(60):
        create(client, "bob02", n)
    records = client.list_records("bob02", "open")
    assert client.call_counts[LIST] == 0
    first = [next(records) for _ in range(10)]
    assert len({r.record_id for r in first}) == 10
    assert client.call_counts[LIST] == 1


def test_list_of_an_exact_page_makes_one_call(make_client: MakeClient) -> None:
    client = make_client()
    for n in range(50):
        create(client, "bob02", n)
    assert len(list(client.list_records("bob02", "open"))) == 50
    assert client.call_counts[LIST] == 1


def test_complete_by_record_id_and_by_biz_id(emu: Emulator, make_client: MakeClient) -> None:
    client = make_client()
    by_id = client.create("alice01", content("一"), "biz-one", CREATE_TIME)
    by_biz = client.create("alice01", content("二"), "biz-two", CREATE_TIME)

    assert client.complete("alice01", by_id) is True
    assert client.complete("alice01", "biz-two") is True
    assert client.complete("alice01", by_id) is True  # completing twice is harmless

    assert {r["record_id"]: r["status"] for r in emu.records()} == {by_id: 1, by_biz: 1}
    done = {r.record_id: r.status for r in client.list_records("alice01", "done")}
    assert done == {by_id: "done", by_biz: "done"}
    assert list(client.list_records("alice01", "open")) == []


def test_complete_of_an_unknown_or_foreign_record_is_false(make_client: MakeClient) -> None:
    client = make_client()
    record_id = client.create("alice01", content(), "biz-1", CREATE_TIME)
    assert client.complete("alice01", "record" + "0" * 32) is False
    assert client.complete("bob02", record_id) is False


# -- the access token -----------------------------------------------------------------------


def test_one_token_serves_many_calls(emu: Emulator, make_client: MakeClient) -> None:
    client = make_client()
    for n in range(5):
        record_id = create(client, "alice01", n)
        client.complete("alice01", record_id)
        list(client.list_records("alice01", "done"))
    assert client.call_counts["gettoken"] == 1
    assert emu.call_counts()["gettoken"] == 1
    assert len(emu.issued_tokens()) == 1


def test_token_is_fetched_once_by_many_threads(emu: Emulator, make_client: MakeClient) -> None:
    client = make_client(pool_size=16)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            create(client, f"user{n}", n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(emu.records()) == 16
    assert client.call_counts["gettoken"] == 1
    assert emu.call_counts()["gettoken"] == 1


def test_revoked_token_is_refreshed_once_and_the_call_retried(
    emu: Emulator, make_client: MakeClient
) -> None:
    client = make_client()
    create(client, "alice01", 1)
    emu.revoke_tokens()

    record_id = create(client, "alice01", 2)  # 88/40014, new token, same request again

    assert record_id in {r["record_id"] for r in emu.records()}
    assert len(emu.records()) == 2
    assert client.call_counts["gettoken"] == 2
    assert client.call_counts[ADD] == 3


def test_expired_token_is_refreshed(emu: Emulator, make_client: MakeClient) -> None:
    client = make_client()
    create(client, "alice01", 1)
    emu.advance_clock(7200 + 60)  # the emulator's token has expired: 88/42001

    assert len(list(client.list_records("alice01", "open"))) == 1
    assert client.call_counts["gettoken"] == 2
    assert len(emu.issued_tokens()) == 2


def test_short_lived_token_is_renewed_before_it_expires(
    start_emulator: StartEmulator, make_client: MakeClient
) -> None:
    emu = start_emulator(token_ttl=1)
    client = make_client(emu.url)
    create(client, "alice01", 1)
    time.sleep(0.95)  # past 90% of the lifetime: the client renews on its own
    create(client, "alice01", 2)
    assert client.call_counts["gettoken"] == 2
    assert client.call_counts[ADD] == 2  # no call was refused for an old token


def test_token_refused_twice_is_an_auth_error(
    start_emulator: StartEmulator, make_client: MakeClient, transcript: Transcript
) -> None:
    # A clock that leaps three hours at every reading: each token has expired by the
    # time it is checked, so the retry with a fresh one is refused as well.
    ticks = iter(range(0, 10**9, 3 * 3600))
    emu = start_emulator(clock=lambda: 1.7e9 + next(ticks))
    client = make_client(emu.url)
    with pytest.raises(AuthError) as caught:
        list(client.list_records("alice01", "open"))
    transcript.texts.append(str(caught.value))
    assert caught.value.fatal
    assert caught.value.reason == "42001"
    assert "freshly fetched" in str(caught.value)
    assert client.call_counts["gettoken"] == 2
    assert client.call_counts[LIST] == 2


def test_wrong_secret_is_a_credentials_error(
    make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client(app_secret="not-the-secret-at-all")
    with pytest.raises(CredentialsError) as caught:
        client.create("alice01", content(), "biz-1", CREATE_TIME)
    message = str(caught.value)
    transcript.texts.append(message)
    assert message == (
        "DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET: 40096 不合法的appKey或appSecret"
        f" ({CREDENTIALS_HINT})"
    )
    assert "not-the-secret-at-all" not in message
    assert client.call_counts == {
        "gettoken": 1,
        ADD: 0,
        UPDATE: 0,
        LIST: 0,
        GET: 0,
    }


def test_unknown_app_key_is_a_credentials_error(make_client: MakeClient) -> None:
    client = make_client(app_key="someone-elses-appkey")
    with pytest.raises(CredentialsError, match="40096"):
        list(client.list_records("alice01", "open"))


# -- DingTalk's per-record errors map to their classes, and are not retried ----------------


def test_unknown_userid_is_invalid_user(emu: Emulator, make_client: MakeClient) -> None:
    emu.set_users({"alice01"})
    client = make_client()
    with pytest.raises(InvalidUserError) as caught:
        client.create("mallory", content(), "biz-1", CREATE_TIME)
    assert caught.value.reason == "33012"
    assert not caught.value.fatal
    with pytest.raises(InvalidUserError):
        list(client.list_records("mallory", "open"))
    with pytest.raises(InvalidUserError):
        client.complete("mallory", "biz-1")
    assert client.call_counts[ADD] == 1
    assert emu.records() == []


def test_title_over_fifty_characters_is_invalid_parameter(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client()
    with pytest.raises(InvalidParameterError) as caught:
        client.create("alice01", content("长" * 51), "biz-1", CREATE_TIME)
    transcript.texts.append(str(caught.value))
    assert caught.value.reason == "40035"
    assert caught.value.api == ADD
    assert "title" in caught.value.errmsg  # DingTalk's own words are kept
    assert "/topapi/workrecord/add?access_token=***" in str(caught.value)
    assert client.call_counts[ADD] == 1
    # Exactly fifty is accepted.
    client.create("alice01", content("长" * 50), "biz-2", CREATE_TIME)


def test_empty_title_is_invalid_parameter(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(InvalidParameterError) as caught:
        client.create("alice01", content(""), "biz-1", CREATE_TIME)
    assert caught.value.reason == "400002"


def test_empty_form_content_is_invalid_parameter(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(InvalidParameterError) as caught:
        client.create("alice01", content(form=(("说明", ""),)), "biz-1", CREATE_TIME)
    assert caught.value.reason == "400002"


def test_repeated_biz_id_is_duplicate(emu: Emulator, make_client: MakeClient) -> None:
    client = make_client()
    client.create("alice01", content("一"), "biz-same", CREATE_TIME)
    with pytest.raises(DuplicateError) as caught:
        client.create("alice01", content("二"), "biz-same", CREATE_TIME)
    assert caught.value.reason == "854001"
    assert len(emu.records()) == 1
    assert client.call_counts[ADD] == 2
    # The same biz_id for another user is fine.
    client.create("bob02", content("二"), "biz-same", CREATE_TIME)


def test_same_title_and_form_on_one_day_is_duplicate(make_client: MakeClient) -> None:
    client = make_client()
    client.create("alice01", content(), "biz-1", CREATE_TIME)
    with pytest.raises(DuplicateError):
        client.create("alice01", content(), "biz-2", CREATE_TIME)


def test_daily_cap_is_daily_limit(start_emulator: StartEmulator, make_client: MakeClient) -> None:
    emu = start_emulator(daily_limit=2)
    client = make_client(emu.url)
    create(client, "alice01", 1)
    create(client, "alice01", 2)
    with pytest.raises(DailyLimitError) as caught:
        create(client, "alice01", 3)
    assert caught.value.reason == "854002"
    assert client.call_counts[ADD] == 3
    create(client, "bob02", 3)  # the cap is per user


def test_monthly_quota_stops_with_a_clear_message(
    start_emulator: StartEmulator, make_client: MakeClient
) -> None:
    emu = start_emulator(monthly_quota=1)
    client = make_client(emu.url)
    create(client, "alice01", 1)
    with pytest.raises(QuotaExceededError) as caught:
        list(client.list_records("alice01", "open"))
    assert caught.value.fatal
    assert caught.value.reason == "90020"
    assert "monthly DingTalk API quota is used up" in str(caught.value)
    assert "您的企业本月api调用量已超过限制" in str(caught.value)
    assert client.call_counts[LIST] == 1  # not retried


def test_workrecord_get_is_an_unknown_method_on_dingtalk(make_client: MakeClient) -> None:
    client = make_client()
    record_id = create(client, "alice01", 1)
    with pytest.raises(UnknownMethodError) as caught:
        client.get_record("alice01", record_id)
    assert caught.value.reason == "22"
    assert "dingtalk.oapi.workrecord.get" in str(caught.value)
    assert client.call_counts[GET] == 1  # not retried


def test_workrecord_get_where_the_gateway_serves_it(
    start_emulator: StartEmulator, make_client: MakeClient
) -> None:
    emu = start_emulator(serve_workrecord_get=True)
    client = make_client(emu.url)
    record_id = client.create("alice01", content(), "biz-1", CREATE_TIME)

    record = client.get_record("alice01", record_id)
    assert record is not None
    assert record.record_id == record_id
    assert record.userid == "alice01"
    assert record.create_time_ms == CREATE_TIME
    assert record.title == content().title
    assert record.url == content().url
    assert record.form == content().form
    assert record.status == "open"

    emu.complete(record_id)
    done = client.get_record("alice01", record_id)
    assert done is not None and done.status == "done"
    assert client.get_record("alice01", "record" + "0" * 32) is None
    assert client.get_record("bob02", record_id) is None


# -- rate limits ----------------------------------------------------------------------------


def test_parallel_calls_over_the_server_limit_all_succeed(
    emu: Emulator, make_client: MakeClient
) -> None:
    emu.set_faults(qps=5)
    client = make_client(max_qps=50, pool_size=20, backoff_base=0.1, backoff_cap=1.0)
    client.create("alice01", content(), "biz-1", CREATE_TIME)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            count = len(list(client.list_records("alice01", "open")))
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(count)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert results == [1] * 20
    refused = client.call_counts[LIST] - 20
    assert refused > 0  # the emulator did refuse some...
    assert client.limiter.rate(LIST) < 50  # ...and the client slowed down


def test_client_pacing_at_the_server_limit_is_never_refused(
    emu: Emulator, make_client: MakeClient
) -> None:
    emu.set_faults(qps=10)
    client = make_client(max_qps=10, pool_size=8)
    client.create("alice01", content(), "biz-1", CREATE_TIME)
    threads = [
        threading.Thread(target=lambda: list(client.list_records("alice01", "open")))
        for _ in range(16)  # more than the emulator's bucket holds
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.call_counts[LIST] == 16  # no 90018, so no retry
    assert emu.call_counts()["workrecord/getbyuserid"] == 16


def test_rate_limit_on_every_attempt_escapes_as_rate_limit_error(
    emu: Emulator, make_client: MakeClient
) -> None:
    emu.set_faults(rate=1.0, kinds=["qps-global"])
    sleeps: list[float] = []
    client = make_client(max_retries=2, sleep=sleeps.append)
    with pytest.raises(RateLimitError) as caught:
        list(client.list_records("alice01", "open"))
    assert caught.value.reason == "90002"
    assert client.call_counts[LIST] == 3
    # Each retry waits at least the 1 s window; the unpaced limiter then waits out what
    # is left of the server's pause (all of it: the fake sleep does not move its clock).
    backoffs, pauses = sleeps[0::2], sleeps[1::2]
    assert len(backoffs) == 2 and all(s >= 1.0 for s in backoffs)
    assert len(pauses) == 2 and all(s > 0.5 for s in pauses)


def test_rate_limited_create_is_retried(emu: Emulator, make_client: MakeClient) -> None:
    # A rate-limit answer is a refusal: nothing was stored, so the create may go again.
    emu.set_faults(rate=0.5, kinds=["qps-global"], seed=3)
    client = make_client(sleep=lambda _s: None)
    for n in range(6):
        create(client, "alice01", n)
    assert len(emu.records()) == 6
    assert client.call_counts[ADD] > 6


def test_rate_limit_wait_honours_the_end_time_in_the_message() -> None:
    now = datetime(2026, 9, 2, 16, 1, 0, tzinfo=timezone.utc)  # 00:01:00 in Beijing
    message = (
        "ding talk error[subcode=90018,submsg=从 2026-09-03 00:01:00 到 2026-09-03 00:01:00 "
        "请求总次数超过 20 次, 限制将在 2026-09-03 00:01:03 结束.]"
    )
    assert rate_limit_wait(message, now) == 3.0
    assert rate_limit_wait(message.replace("限制", "处罚"), now) == 3.0
    # Measured on DingTalk's clock (the window's end), not the local one: an hour of skew
    # either way costs nothing.
    for skew in (timedelta(hours=1), timedelta(hours=-1)):
        assert rate_limit_wait(message, now + skew) == 3.0
    assert rate_limit_wait(message.replace("00:01:03", "00:00:59"), now) == 1.0
    assert rate_limit_wait(message.replace("00:01:03", "05:00:00"), now) == 60.0
    assert rate_limit_wait("系统繁忙", now) == 1.0


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["errcode-1", "http500", "reset", "lost_ack"])
def test_reads_and_completions_survive_injected_faults(
    emu: Emulator, make_client: MakeClient, kind: str
) -> None:
    client = make_client(max_retries=8)
    record_ids = [create(client, "alice01", n) for n in range(3)]
    emu.set_faults(rate=0.5, kinds=[kind], seed=11)

    for _ in range(5):
        assert len(list(client.list_records("alice01", "open"))) == 3
    for record_id in record_ids:
        assert client.complete("alice01", record_id) is True
    emu.set_faults(rate=0.0)
    assert len(list(client.list_records("alice01", "done"))) == 3
    assert client.call_counts[LIST] + client.call_counts[UPDATE] > 5 + 3 + 1


def test_system_busy_is_retried_at_most_three_times(emu: Emulator, make_client: MakeClient) -> None:
    emu.set_faults(rate=1.0, kinds=["errcode-1"])
    client = make_client(max_retries=8)
    with pytest.raises(TransientApiError) as caught:
        list(client.list_records("alice01", "open"))
    assert caught.value.reason == "-1"
    assert "gave up after 4 attempts" in str(caught.value)
    assert client.call_counts[LIST] == 4


def test_system_busy_on_create_is_retried(emu: Emulator, make_client: MakeClient) -> None:
    # errcode -1 is a definite refusal: re-sending the create is safe.
    emu.set_faults(rate=0.5, kinds=["errcode-1"], seed=4)
    client = make_client()
    for n in range(6):
        create(client, "alice01", n)
    assert len(emu.records()) == 6
    assert client.call_counts[ADD] > 6


def test_http_5xx_on_reads_gives_up_after_the_retries(
    emu: Emulator, make_client: MakeClient
) -> None:
    emu.set_faults(rate=1.0, kinds=["http500"])
    client = make_client(max_retries=3)
    with pytest.raises(TransportError) as caught:
        list(client.list_records("alice01", "open"))
    assert not isinstance(caught.value, IpBlockedError)
    assert re.search(r"HTTP 50[02]", str(caught.value))
    assert client.call_counts[LIST] == 4


@pytest.mark.parametrize("kind", ["http500", "reset"])
def test_create_that_may_have_reached_the_server_is_never_resent(
    emu: Emulator, make_client: MakeClient, transcript: Transcript, kind: str
) -> None:
    client = make_client()
    emu.set_faults(rate=1.0, kinds=[kind])
    with pytest.raises(TransportError) as caught:
        client.create("alice01", content(), "biz-1", CREATE_TIME)
    transcript.texts.append(str(caught.value))
    assert caught.value.maybe_committed
    assert "not sent again" in str(caught.value)
    assert client.call_counts[ADD] == 1
    assert emu.call_counts()["workrecord/add"] == 1


def test_lost_answer_to_a_create_is_maybe_committed_and_stored(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client()
    emu.set_faults(rate=1.0, kinds=["lost_ack"])
    with pytest.raises(TransportError) as caught:
        client.create("alice01", content(), "biz-lost", CREATE_TIME)
    transcript.texts.append(str(caught.value))
    assert caught.value.maybe_committed
    assert client.call_counts[ADD] == 1
    [stored] = emu.records()
    assert stored["biz_id"] == "biz-lost"
    # What the applier then does: re-sending with the same biz_id is refused as a
    # duplicate, and the record can be completed through its biz_id.
    emu.set_faults(rate=0.0)
    with pytest.raises(DuplicateError):
        client.create("alice01", content(), "biz-lost", CREATE_TIME)
    assert client.complete("alice01", "biz-lost") is True


def test_read_timeout_on_create_is_maybe_committed(emu: Emulator, make_client: MakeClient) -> None:
    emu.set_faults(latency_ms=400)
    client = make_client(timeout=(2.0, 0.1))
    with pytest.raises(TransportError) as caught:
        client.create("alice01", content(), "biz-slow", CREATE_TIME)
    assert caught.value.maybe_committed
    assert "no answer within 0.1 s" in str(caught.value)
    assert client.call_counts[ADD] == 1
    assert [r["biz_id"] for r in emu.records()] == ["biz-slow"]


def test_ip_block_is_fatal_and_not_retried(emu: Emulator, make_client: MakeClient) -> None:
    emu.set_faults(rate=1.0, kinds=["ipblock"])
    client = make_client()
    with pytest.raises(IpBlockedError) as caught:
        list(client.list_records("alice01", "open"))
    assert caught.value.fatal
    assert client.call_counts[LIST] == 1
    # Nothing more is sent while the block lasts.
    with pytest.raises(IpBlockedError):
        client.complete("alice01", "biz-1")
    assert client.call_counts[UPDATE] == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_fails_fast_and_is_not_committed(make_client: MakeClient) -> None:
    client = make_client(f"http://127.0.0.1:{closed_port()}", max_retries=3)
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        client.create("alice01", content(), "biz-1", CREATE_TIME)
    assert time.monotonic() - started < 2.0
    assert not caught.value.maybe_committed
    assert "cannot connect" in str(caught.value)
    assert "gave up after 4 attempts" in str(caught.value)
    assert sum(client.call_counts.values()) == 0  # nothing was ever sent


def test_connection_refused_on_create_is_retried_until_the_server_is_up(
    start_emulator: StartEmulator, make_client: MakeClient
) -> None:
    # Nothing reached the server, so the client may try the create again.
    emu = start_emulator()
    port = int(emu.url.rsplit(":", 1)[1])
    sleeps: list[float] = []

    def sleep_then_restart(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            emu.start(port=port)

    client = make_client(emu.url, sleep=sleep_then_restart)
    assert list(client.list_records("alice01", "open")) == []  # holds a token now
    emu.stop()

    client.create("alice01", content(), "biz-1", CREATE_TIME)

    assert len(sleeps) == 2
    assert len(emu.records()) == 1
    assert client.call_counts[ADD] == 1  # the refused attempts were never sent
    assert client.call_counts["gettoken"] == 1


# -- endpoint and secrets -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://oapi.dingtalk.com", "https://oapi.dingtalk.com"),
        ("  HTTPS://OAPI.dingtalk.com/  ", "https://oapi.dingtalk.com"),
        ("https://gw.example.com:8443/dingtalk/", "https://gw.example.com:8443/dingtalk"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.1.2.3", "http://127.1.2.3"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_check_endpoint_accepts_https_and_loopback_http(given: str, expected: str) -> None:
    assert check_endpoint(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "http://oapi.dingtalk.com",
        "http://10.0.0.5:8080",
        "http://128.0.0.1",
        "http://localhost.example.com",
        "ftp://oapi.dingtalk.com",
        "oapi.dingtalk.com",
        "https://",
        "https://user:pw@oapi.dingtalk.com",
        "https://oapi.dingtalk.com/?access_token=abc",
        "https://oapi.dingtalk.com:99999",
    ],
)
def test_check_endpoint_refuses_the_rest(given: str) -> None:
    with pytest.raises(EndpointError) as caught:
        check_endpoint(given)
    assert "pw" not in str(caught.value)
    assert "abc" not in str(caught.value)


def test_client_refuses_plain_http_to_a_remote_host() -> None:
    with pytest.raises(EndpointError, match="loopback"):
        DingTalkClient("http://oapi.dingtalk.com", "key", "secret")


def test_log_lines_show_each_call_with_the_token_redacted(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client()
    create(client, "alice01", 1)
    base = re.escape(emu.url)
    assert re.fullmatch(
        rf"GET {base}/gettoken\?appkey=\*\*\*&appsecret=\*\*\* -> 200 errcode=0 \(\d+ ms\)",
        transcript.lines[0],
    )
    assert re.fullmatch(
        rf"POST {base}/topapi/workrecord/add\?access_token=\*\*\* -> 200 errcode=0 \(\d+ ms\)",
        transcript.lines[1],
    )


def test_no_secret_anywhere_after_every_kind_of_failure(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client(max_retries=1, sleep=lambda _s: None)
    create(client, "alice01", 0)
    failures: list[Exception] = []
    for kind in ("http500", "reset", "lost_ack", "errcode-1", "qps-global"):
        emu.set_faults(rate=1.0, kinds=[kind])
        expected = ApiError if kind in ("errcode-1", "qps-global") else TransportError
        calls = (
            lambda n: create(client, "alice01", n),
            lambda _n: list(client.list_records("alice01", "open")),
        )
        for call in calls:
            with pytest.raises(expected) as caught:
                call(len(failures) + 10)
            failures.append(caught.value)
    emu.set_faults(rate=0.0)
    emu.revoke_tokens()
    create(client, "alice01", 2)
    dead = make_client(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransportError) as refused:
        list(dead.list_records("alice01", "open"))
    failures.append(refused.value)
    with pytest.raises(CredentialsError) as bad:
        make_client(app_secret=APP_SECRET + "x").create("a", content(), "b", 1)
    failures.append(bad.value)

    transcript.texts.extend(str(f) for f in failures)
    transcript.texts.extend(repr(f) for f in failures)
    assert len(transcript.lines) > 20
    assert repr(client) == f"DingTalkClient(endpoint={emu.url!r})"
    # The fixture then scans every line and text for the key, the secret and all tokens.


def test_the_secret_scan_sees_tokens_of_privately_started_emulators(
    start_emulator: StartEmulator, make_client: MakeClient, transcript: Transcript
) -> None:
    # Regression: the scan once looked only at the shared emulator, so a token of a private
    # one could leak into a log line and the test would still pass.
    private = start_emulator(token_ttl=60)
    client = make_client(private.url)
    assert list(client.list_records("alice01", "open")) == []
    tokens = private.issued_tokens()
    assert tokens
    transcript.log(f"GET /topapi/x?access_token={tokens[0]}")
    assert make_client.leaks() == [tokens[0]]
    transcript.lines.clear()  # the planted leak must not fail this test's own check
