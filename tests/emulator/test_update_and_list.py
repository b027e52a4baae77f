"""workrecord/update, workrecord/getbyuserid and the optional workrecord/get.

See docs/dingtalk-workrecord.md §4, §5 and §6 (the emulator's workrecord/get: §10.10).
"""

from __future__ import annotations

import pytest

from tests.emulator.conftest import FORM


def status_of(emu, record_id):
    return {r["record_id"]: r["status"] for r in emu.records()}[record_id]


# update


def test_update_completes_by_record_id(api, emu):
    record_id = api.add_ok()
    reply = api.update("alice01", record_id)
    assert list(reply) == ["errcode", "result", "request_id"]
    assert reply["errcode"] == 0 and reply["result"] is True
    assert status_of(emu, record_id) == 1
    assert api.update("alice01", record_id)["result"] is True  # already done: still true


def test_update_completes_by_biz_id(api, emu):
    record_id = api.add_ok(biz_id="dingsync-key-0")
    assert api.update("alice01", "dingsync-key-0")["result"] is True
    assert status_of(emu, record_id) == 1


def test_update_of_an_unknown_or_foreign_record_is_result_false(api, emu):
    record_id = api.add_ok(userid="alice01", biz_id="b-1")
    assert api.update("alice01", "record" + "0" * 32)["result"] is False
    assert api.update("alice01", "nope")["result"] is False
    assert api.update("bob02", record_id)["result"] is False
    assert api.update("bob02", "b-1")["result"] is False
    assert status_of(emu, record_id) == 0


def test_update_unknown_result_is_configurable(start_emulator, connect):
    api = connect(start_emulator(update_unknown_result=True))
    reply = api.update("alice01", "record-unknown")
    assert reply["errcode"] == 0 and reply["result"] is True


def test_update_of_a_deleted_record_is_result_false(api, emu):
    record_id = api.add_ok(biz_id="b-1")
    emu.delete(record_id)
    assert api.update("alice01", record_id)["result"] is False
    assert api.update("alice01", "b-1")["result"] is False


@pytest.mark.parametrize("name", ["userid", "record_id"])
def test_update_missing_field_is_40035(api, name):
    body = {"userid": "alice01", "record_id": "r"}
    del body[name]
    reply = api.call("workrecord/update", body)
    assert (reply["errcode"], reply["errmsg"]) == (40035, f"缺少参数 {name}")


def test_update_of_an_unknown_userid_is_33012(start_emulator, connect):
    api = connect(start_emulator(users={"alice01"}))
    assert api.update("ghost", "r")["errcode"] == 33012


# getbyuserid


def test_list_item_shape(api):
    record_id = api.add_ok(pcUrl="https://pc", biz_id="b-1", source_name="s", pc_open_type=2)
    reply = api.page("alice01")
    assert list(reply) == ["errcode", "records", "request_id"]
    assert reply["records"] == {
        "has_more": False,
        "list": [
            {
                "record_id": record_id,
                "create_time": 1764547200000,
                "title": "领取笔记本电脑",
                "url": "https://intranet.example.com/it/laptop",
                "forms": FORM,
            }
        ],
    }


def test_list_filters_by_user_and_status(api, emu):
    open_id = api.add_ok(title="开放")
    done_id = api.add_ok(title="完成")
    api.add_ok(userid="bob02", title="别人的")
    api.update("alice01", done_id)
    assert [r["record_id"] for r in api.page("alice01", 0)["records"]["list"]] == [open_id]
    assert [r["record_id"] for r in api.page("alice01", 1)["records"]["list"]] == [done_id]
    assert api.page("carol03")["records"] == {"has_more": False, "list": []}


def test_list_orders_by_create_time_then_creation_and_pages_stably(api):
    times = [5, 9, 5, 1, 9, 7, 5]
    ids = [api.add_ok(title=f"任务 {i}", create_time=t) for i, t in enumerate(times)]
    expected = [ids[4], ids[1], ids[5], ids[6], ids[2], ids[0], ids[3]]
    seen, offset = [], 0
    while True:
        records = api.page("alice01", offset=offset, limit=3)["records"]
        seen += [r["record_id"] for r in records["list"]]
        offset += 3
        assert records["has_more"] == (offset < len(ids))
        if not records["has_more"]:
            break
    assert seen == expected
    assert api.page("alice01", offset=7, limit=3)["records"] == {"has_more": False, "list": []}


def test_list_has_more_is_false_on_an_exact_last_page(api):
    for n in range(4):
        api.add_ok(title=f"任务 {n}")
    assert api.page("alice01", offset=2, limit=2)["records"]["has_more"] is False
    assert api.page("alice01", offset=1, limit=2)["records"]["has_more"] is True


def test_list_accepts_numeric_strings(api):
    api.add_ok()
    reply = api.page("alice01", status="0", offset="0", limit="50")
    assert len(reply["records"]["list"]) == 1


def test_list_returns_records_of_every_app(start_emulator, connect):
    apps = {"app-one": "secret-one", "app-two": "secret-two"}
    emu = start_emulator(apps=apps)
    one, two = connect(emu), connect(emu)
    one.use_app("app-one", "secret-one")
    two.use_app("app-two", "secret-two")
    one.add_ok(title="一号应用")
    two.add_ok(title="二号应用")
    assert len(one.page("alice01")["records"]["list"]) == 2
    assert sorted(r["app"] for r in emu.records()) == ["app-one", "app-two"]


@pytest.mark.parametrize("offset", [-1, "-5", "first", 1.5])
def test_bad_offset_is_40068(api, offset):
    reply = api.page("alice01", offset=offset)
    assert (reply["errcode"], reply["errmsg"]) == (40068, "无效的offset")


@pytest.mark.parametrize("limit", [0, 51, -1, "many", "0"])
def test_bad_limit_is_40069(api, limit):
    assert api.page("alice01", limit=limit)["errcode"] == 40069


def test_limit_bounds_1_and_50_pass(api):
    assert api.page("alice01", limit=1)["errcode"] == 0
    assert api.page("alice01", limit="50")["errcode"] == 0


@pytest.mark.parametrize("status", [2, "open", -1])
def test_bad_status_is_40035(api, status):
    assert api.page("alice01", status=status)["errcode"] == 40035


@pytest.mark.parametrize("name", ["userid", "offset", "limit", "status"])
def test_list_missing_field_is_40035(api, name):
    body = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}
    del body[name]
    reply = api.call("workrecord/getbyuserid", body)
    assert (reply["errcode"], reply["errmsg"]) == (40035, f"缺少参数 {name}")


def test_list_of_an_unknown_userid_is_33012_after_the_field_rules(start_emulator, connect):
    api = connect(start_emulator(users={"alice01"}))
    assert api.page("ghost", offset=-1)["errcode"] == 40068
    assert api.page("ghost")["errcode"] == 33012


# workrecord/get, served only when asked for


def test_workrecord_get_when_served(start_emulator, connect):
    api = connect(start_emulator(serve_workrecord_get=True))
    record_id = api.add_ok()
    reply = api.call("workrecord/get", {"userid": "alice01", "record_id": record_id})
    assert list(reply) == ["errcode", "record", "request_id"]
    assert reply["record"] == {
        "record_id": record_id,
        "create_time": 1764547200000,
        "title": "领取笔记本电脑",
        "url": "https://intranet.example.com/it/laptop",
        "forms": FORM,
        "status": 0,
    }
    api.update("alice01", record_id)
    done = api.call("workrecord/get", {"userid": "alice01", "record_id": record_id})
    assert done["record"]["status"] == 1


def test_workrecord_get_of_an_unknown_or_foreign_record_is_null(start_emulator, connect):
    api = connect(start_emulator(serve_workrecord_get=True))
    record_id = api.add_ok()
    for body in (
        {"userid": "bob02", "record_id": record_id},
        {"userid": "alice01", "record_id": "x"},
    ):
        reply = api.call("workrecord/get", body)
        assert reply["errcode"] == 0 and reply["record"] is None
    reply = api.call("workrecord/get", {"userid": "alice01"})
    assert (reply["errcode"], reply["errmsg"]) == (40035, "缺少参数 record_id")
