"""The per-app, per-API rate limit (88/90018) and the monthly quota (90020).

See docs/dingtalk-workrecord.md §8.1 and §8.5 (the emulator's readings: §10.8).
"""

from __future__ import annotations

import re
from datetime import datetime
from datetime import timedelta
from datetime import timezone

SHANGHAI = timezone(timedelta(hours=8))
NOW = datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=SHANGHAI).timestamp()
LIST_BODY = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}


def listing(api):
    return api.call("workrecord/getbyuserid", LIST_BODY)


def test_rate_limit_answers_wrapped_90018_with_an_end_time(start_emulator, connect):
    api = connect(start_emulator(qps=2, clock=lambda: NOW))
    assert [listing(api)["errcode"] for _ in range(2)] == [0, 0]
    reply = listing(api)
    assert reply["errcode"] == 88 and reply["sub_code"] == "90018"
    assert reply["errmsg"] == f"ding talk error[subcode=90018,submsg={reply['sub_msg']}]"
    assert "apiPath(dingtalk.oapi.workrecord.getbyuserid)" in reply["sub_msg"]
    assert "从 2026-12-01 10:00:00 到 2026-12-01 10:00:00 请求总次数超过 2 次" in reply["sub_msg"]
    until = re.search(r"限制将在 (\S+ \S+) 结束", reply["errmsg"]).group(1)
    assert until == "2026-12-01 10:00:01"


def test_rate_limit_is_per_api_and_recovers(start_emulator, connect):
    emu = start_emulator(qps=1, clock=lambda: NOW)
    api = connect(emu)
    assert listing(api)["errcode"] == 0
    assert listing(api)["sub_code"] == "90018"
    assert api.add()["errcode"] == 0  # another API has its own budget
    emu.advance_clock(1)
    assert listing(api)["errcode"] == 0


def test_rate_limit_is_per_app(start_emulator, connect):
    emu = start_emulator(qps=1, clock=lambda: NOW, apps={"a": "sa", "b": "sb"})
    one, two = connect(emu), connect(emu)
    one.use_app("a", "sa")
    two.use_app("b", "sb")
    assert listing(one)["errcode"] == 0
    assert listing(one)["sub_code"] == "90018"
    assert listing(two)["errcode"] == 0


def test_rate_limited_calls_have_no_effect(start_emulator, connect):
    api = connect(start_emulator(qps=1, clock=lambda: NOW))
    api.add_ok(title="一")
    assert api.add(title="二")["sub_code"] == "90018"
    assert [r["title"] for r in api.emulator.records()] == ["一"]


def test_rate_limit_comes_after_the_token_check(start_emulator, connect):
    api = connect(start_emulator(qps=1, clock=lambda: NOW))
    for _ in range(3):
        assert api.call("workrecord/add", {}, token="bad")["sub_code"] == "40014"
    assert api.add()["errcode"] == 0


def test_qps_can_be_changed_at_run_time(start_emulator, connect):
    emu = start_emulator(qps=1, clock=lambda: NOW)
    api = connect(emu)
    listing(api)
    assert listing(api)["sub_code"] == "90018"
    emu.set_faults(qps=0)
    assert all(listing(api)["errcode"] == 0 for _ in range(30))


def test_monthly_quota_answers_plain_90020(start_emulator, connect):
    emu = start_emulator(monthly_quota=3, clock=lambda: NOW)
    api = connect(emu)
    for _ in range(3):
        assert api.gettoken().json()["errcode"] == 0  # gettoken is not metered
        assert api.call("workrecord/add", {}, token="bad")["errcode"] == 88  # nor refused tokens
    assert [listing(api)["errcode"] for _ in range(3)] == [0, 0, 0]
    reply = listing(api)
    assert list(reply) == ["errcode", "errmsg"]
    assert reply["errcode"] == 90020
    assert reply["errmsg"].startswith("您的企业本月api调用量已超过限制,调用量:4次,额度:3次")
    assert api.add()["errcode"] == 90020
    assert emu.records() == []
    emu.advance_clock(31 * 86400)  # a new calendar month
    assert listing(api)["errcode"] == 0
