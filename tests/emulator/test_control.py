"""The /_emulator/ control API, over HTTP, as an out-of-process test would use it."""

from __future__ import annotations

import pytest

LIST_BODY = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}


def ok(response):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def test_records_lists_full_records(api):
    record_id = api.add_ok(biz_id="b-1", pcUrl="https://pc")
    (record,) = ok(api.control("GET", "records"))["records"]
    assert record["record_id"] == record_id
    assert record["biz_id"] == "b-1" and record["pcUrl"] == "https://pc"
    assert record["status"] == 0 and record["app"] == "dingsync-sandbox-key"


def test_complete_acts_as_the_assignee(api):
    record_id = api.add_ok()
    assert ok(api.control("POST", f"records/{record_id}/complete"))["record"]["status"] == 1
    assert api.page("alice01", status=1)["records"]["list"][0]["record_id"] == record_id


def test_delete_removes_the_record(api, emu):
    record_id = api.add_ok()
    assert ok(api.control("DELETE", f"records/{record_id}")) == {"ok": True}
    assert emu.records() == []
    assert api.control("DELETE", f"records/{record_id}").status_code == 404


def test_modify_changes_what_the_list_shows(api):
    record_id = api.add_ok()
    forms = [{"title": "说明", "content": "已改"}]
    body = {"title": "新标题", "url": "https://new.example.com", "forms": forms}
    assert (
        ok(api.control("POST", f"records/{record_id}/modify", body))["record"]["title"] == "新标题"
    )
    (item,) = api.page("alice01")["records"]["list"]
    assert (item["title"], item["url"], item["forms"]) == (
        "新标题",
        "https://new.example.com",
        forms,
    )


def test_modify_rejects_unknown_fields_and_records(api):
    record_id = api.add_ok()
    assert api.control("POST", f"records/{record_id}/modify", {"pc_url": "x"}).status_code == 400
    for bad in ({"forms": [{"title": "x"}]}, {"forms": "x"}, {"title": 5}):
        assert api.control("POST", f"records/{record_id}/modify", bad).status_code == 400
    assert api.control("POST", "records/record-nope/modify", {"title": "x"}).status_code == 404
    assert api.control("POST", "records/record-nope/complete").status_code == 404


def test_calls_and_tokens(api):
    token = api.token()
    api.page("alice01")
    calls = ok(api.control("GET", "calls"))["calls"]
    assert calls["gettoken"] == 1 and calls["workrecord/getbyuserid"] == 1
    assert ok(api.control("GET", "tokens")) == {"tokens": [token]}


def test_revoke_tokens(api):
    token = api.token()
    assert ok(api.control("POST", "tokens/revoke")) == {"ok": True, "revoked": 1}
    assert api.call("workrecord/getbyuserid", LIST_BODY, token=token)["sub_code"] == "40014"


def test_clock_advance_expires_tokens(api, emu):
    token = api.token()
    before = emu.now()
    now = ok(api.control("POST", "clock", {"advance": 7200}))["now"]
    assert now - before == pytest.approx(7200, abs=5)
    assert api.call("workrecord/getbyuserid", LIST_BODY, token=token)["sub_code"] == "42001"
    assert api.control("POST", "clock", {"advance": "soon"}).status_code == 400


def test_faults(api):
    body = {"rate": 1.0, "kinds": ["errcode-1"], "seed": 5, "latency_ms": 0, "qps": 0}
    settings = ok(api.control("POST", "faults", body))["faults"]
    assert settings == {"rate": 1.0, "kinds": ["errcode-1"], "seed": 5, "latency_ms": 0, "qps": 0}
    assert api.page("alice01")["errcode"] == -1
    assert api.control("POST", "faults", {"kinds": ["meteor"]}).status_code == 400
    assert api.control("POST", "faults", {"colour": "red"}).status_code == 400
    ok(api.control("POST", "faults", {"rate": 0}))
    assert api.page("alice01")["errcode"] == 0


def test_users(api):
    ok(api.control("POST", "users", {"users": ["bob02"]}))
    assert api.page("alice01")["errcode"] == 33012
    ok(api.control("POST", "users", {"users": None}))
    assert api.page("alice01")["errcode"] == 0
    assert api.control("POST", "users", {"users": "alice01"}).status_code == 400
    assert api.control("POST", "users", {}).status_code == 400


def test_reset(api, emu):
    api.add_ok()
    emu.set_faults(rate=1.0, kinds=["errcode-1"])
    assert ok(api.control("POST", "reset")) == {"ok": True}
    assert emu.records() == [] and emu.issued_tokens() == []
    assert set(emu.call_counts().values()) == {0}
    api._token = None
    assert api.page("alice01")["errcode"] == 0  # faults are back to the configured none


def test_unknown_route_and_bad_body(api):
    response = api.control("GET", "nothing/here")
    assert response.status_code == 404 and "error" in response.json()
    bad = api.http.post(f"{api.url}/_emulator/clock", data=b"{", timeout=5)
    assert bad.status_code == 400 and "error" in bad.json()


def test_in_process_helpers_raise_keyerror_for_unknown_records(emu):
    with pytest.raises(KeyError):
        emu.complete("record-nope")
    with pytest.raises(KeyError):
        emu.delete("record-nope")
    with pytest.raises(KeyError):
        emu.modify("record-nope", title="x")


def test_modify_accepts_pairs_in_process(api, emu):
    record_id = api.add_ok()
    record = emu.modify(record_id, forms=[("说明", "一"), ("备注", "二")])
    assert record["formItemList"] == [
        {"title": "说明", "content": "一"},
        {"title": "备注", "content": "二"},
    ]
