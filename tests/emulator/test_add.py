"""workrecord/add: its fields, its validation order and its duplicate and daily rules.

See docs/dingtalk-workrecord.md §3 (the order of checks: §10.2).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import pytest

from tests.emulator.conftest import FORM

SHANGHAI = timezone(timedelta(hours=8))


def error(reply):
    return reply["errcode"], reply["errmsg"]


def test_add_answers_record_id_and_request_id_only(api, emu):
    reply = api.add()
    assert list(reply) == ["errcode", "record_id", "request_id"]
    assert reply["errcode"] == 0
    assert re.fullmatch(r"record[0-9a-f]{32}", reply["record_id"])
    assert re.fullmatch(r"[0-9a-z]{12,13}", reply["request_id"])


def test_add_stores_every_field(api, emu):
    record_id = api.add_ok(
        pcUrl="https://intranet.example.com/it/laptop?pc=1",
        originator_user_id="manager7078",
        source_name="入职流程",
        pc_open_type=2,
        biz_id="dingsync-abc-0",
        pc_url="ignored: not a DingTalk field name",
    )
    (record,) = emu.records()
    created_at = record.pop("created_at")
    assert abs(created_at - emu.now()) < 5
    assert record == {
        "record_id": record_id,
        "userid": "alice01",
        "biz_id": "dingsync-abc-0",
        "title": "领取笔记本电脑",
        "url": "https://intranet.example.com/it/laptop",
        "pcUrl": "https://intranet.example.com/it/laptop?pc=1",
        "formItemList": FORM,
        "originator_user_id": "manager7078",
        "source_name": "入职流程",
        "pc_open_type": 2,
        "create_time": 1764547200000,
        "status": 0,
        "app": "dingsync-sandbox-key",
    }


def test_numbers_may_be_numeric_strings(api, emu):
    api.add_ok(create_time="1599580799000", pc_open_type="4")
    (record,) = emu.records()
    assert record["create_time"] == 1599580799000 and record["pc_open_type"] == 4


def test_form_encoded_body_with_form_items_as_json_string(api, emu):
    body = {
        "userid": "alice01",
        "create_time": "1599580799000",
        "title": "学习任务",
        "url": "https://oa.dingtalk.com",
        "formItemList": json.dumps([{"title": "新人学习", "content": "产品学习"}]),
    }
    reply = api.call("workrecord/add", data=body)
    assert reply["errcode"] == 0
    (record,) = emu.records()
    assert record["formItemList"] == [{"title": "新人学习", "content": "产品学习"}]
    assert record["create_time"] == 1599580799000


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"\xff\xfe{}", b'"text"'])
def test_unusable_body_is_40035_missing_json(api, raw):
    reply = api.call("workrecord/add", data=raw, headers={"Content-Type": "application/json"})
    assert error(reply) == (40035, "缺少参数 json")


@pytest.mark.parametrize("name", ["userid", "create_time", "title", "url", "formItemList"])
def test_missing_required_field_is_40035_naming_it(api, name):
    assert error(api.add(**{name: None})) == (40035, f"缺少参数 {name}")


def test_required_fields_are_checked_in_order_before_rules(api):
    # title is empty (a rule) but url is missing (a required field): the latter wins.
    assert error(api.add(title="", url=None)) == (40035, "缺少参数 url")
    assert error(api.add(userid=None, create_time=None)) == (40035, "缺少参数 userid")


def test_empty_title_is_400002(api):
    assert api.add(title="")["errcode"] == 400002


@pytest.mark.parametrize("item", [{"title": "说明", "content": ""}, {"title": "说明"}])
def test_empty_form_content_is_400002(api, item):
    assert api.add(formItemList=[*FORM, item])["errcode"] == 400002


def test_title_of_50_characters_passes_51_is_40035(api):
    assert api.add(title="验" * 50)["errcode"] == 0  # characters, not UTF-8 bytes
    assert api.add(title="验" * 51)["errcode"] == 40035


def test_a_title_is_counted_in_utf16_units_as_a_java_server_would(api):
    # The safe reading (docs/dingtalk-workrecord.md §3.3): an emoji counts 2.
    assert api.add(title="验" * 48 + "🎉")["errcode"] == 0
    assert api.add(title="验" * 49 + "🎉")["errcode"] == 40035


def test_20_form_items_pass_21_are_40035(api):
    items = [{"title": f"第{i}项", "content": "内容"} for i in range(21)]
    assert api.add(formItemList=items[:20])["errcode"] == 0
    assert api.add(title="另一个", formItemList=items)["errcode"] == 40035


def test_empty_form_item_list_is_40035(api):
    assert api.add(formItemList=[])["errcode"] == 40035


@pytest.mark.parametrize(
    "fields",
    [
        {"create_time": "yesterday"},
        {"create_time": 1.5},
        {"pc_open_type": "browser"},
        {"formItemList": "not json"},
        {"formItemList": {"title": "a", "content": "b"}},
        {"formItemList": ["a"]},
        {"title": ["a"]},
    ],
)
def test_malformed_fields_are_40035(api, fields):
    assert api.add(**fields)["errcode"] == 40035


def test_rules_come_before_the_userid_check(start_emulator, connect):
    api = connect(start_emulator(users={"alice01"}))
    assert api.add(userid="nobody", title="")["errcode"] == 400002
    assert error(api.add(userid="nobody")) == (33012, "无效的userid")
    assert api.add(userid="alice01")["errcode"] == 0


def test_set_users_switches_the_userid_check(api, emu):
    emu.set_users(["bob02"])
    assert api.add(userid="alice01")["errcode"] == 33012
    emu.set_users(None)
    assert api.add(userid="alice01")["errcode"] == 0


# Duplicates (854001)


def test_same_biz_id_for_the_same_user_is_854001_forever(api, emu):
    record_id = api.add_ok(biz_id="dingsync-x-0")
    assert api.add(title="完全不同的标题", biz_id="dingsync-x-0")["errcode"] == 854001
    emu.complete(record_id)
    emu.advance_clock(400 * 86400)
    assert api.add(title="又一个标题", biz_id="dingsync-x-0")["errcode"] == 854001
    emu.delete(record_id)
    assert api.add(title="第三个标题", biz_id="dingsync-x-0")["errcode"] == 854001
    assert len(emu.records()) == 0


def test_biz_id_is_per_user(api):
    api.add_ok(userid="alice01", biz_id="dingsync-x-0")
    assert api.add(userid="bob02", biz_id="dingsync-x-0")["errcode"] == 0


def test_same_title_and_form_the_same_day_is_854001_even_when_done(api, emu):
    record_id = api.add_ok(biz_id="b-1")
    api.update("alice01", record_id)
    reply = api.add(biz_id="b-2", url="https://elsewhere.example.com", create_time=1)
    assert reply["errcode"] == 854001
    assert api.add(userid="bob02")["errcode"] == 0  # another user
    emu.advance_clock(86400)
    assert api.add(biz_id="b-3")["errcode"] == 0  # the next day


def test_a_changed_title_or_form_the_same_day_is_not_a_duplicate(api):
    api.add_ok()
    assert api.add(title="领取笔记本电脑（新）")["errcode"] == 0
    two = [{"title": "a", "content": "1"}, {"title": "b", "content": "2"}]
    assert api.add(formItemList=two)["errcode"] == 0
    assert api.add(formItemList=two[::-1])["errcode"] == 0  # order matters
    assert api.add(formItemList=two)["errcode"] == 854001


def test_a_removed_record_frees_its_content_but_not_its_biz_id(api, emu):
    record_id = api.add_ok(biz_id="b-1")
    emu.delete(record_id)
    assert api.add(biz_id="b-1")["errcode"] == 854001
    assert api.add(biz_id="b-2")["errcode"] == 0


def test_the_content_rule_sees_a_record_as_modified_on_the_dingtalk_side(api, emu):
    record_id = api.add_ok()
    emu.modify(record_id, title="管理员改过的标题")
    assert api.add(title="管理员改过的标题")["errcode"] == 854001
    assert api.add()["errcode"] == 0


def test_the_day_is_the_asia_shanghai_calendar_day(start_emulator, connect):
    # 23:59:59 on 1 Dec 2026 in China is 15:59:59 UTC; one second later is a new day.
    late = datetime(2026, 12, 1, 23, 59, 59, tzinfo=SHANGHAI).timestamp()
    api = connect(start_emulator(clock=lambda: late))
    api.add_ok()
    assert api.add()["errcode"] == 854001
    api.emulator.advance_clock(1)
    assert api.add()["errcode"] == 0


# Daily cap (854002)


def test_the_101st_add_of_a_day_is_854002(api, emu):
    for n in range(100):
        api.add_ok(title=f"任务 {n}")
    assert error(api.add(title="任务 100")) == (854002, "待办任务超过每日限额")
    assert api.add(userid="bob02", title="任务 100")["errcode"] == 0
    emu.advance_clock(86400)
    assert api.add(title="任务 100")["errcode"] == 0


def test_rejected_adds_do_not_count_towards_the_cap(start_emulator, connect):
    api = connect(start_emulator(daily_limit=2))
    api.add_ok(title="一")
    assert api.add(title="一")["errcode"] == 854001
    assert api.add(title="")["errcode"] == 400002
    api.add_ok(title="二")
    assert api.add(title="三")["errcode"] == 854002


def test_duplicate_is_checked_before_the_cap(start_emulator, connect):
    api = connect(start_emulator(daily_limit=1))
    api.add_ok(biz_id="b-1")
    assert api.add(title="新标题", biz_id="b-1")["errcode"] == 854001
    assert api.add(title="新标题", biz_id="b-2")["errcode"] == 854002
