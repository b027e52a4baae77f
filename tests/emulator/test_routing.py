"""Routing: known calls, errcode 22 for unknown topapi names, 404 elsewhere.

See docs/dingtalk-workrecord.md §6.2, §7.3 and §10.1.
"""

from __future__ import annotations

import pytest

from dingsync.emulator import CALL_NAMES


def invalid_method(name):
    detail = f"不合法ApiName，ApiName = {name}"
    return {"errcode": 22, "sub_msg": detail, "errmsg": f"Invalid method[submsg={detail}]"}


def without_request_id(reply):
    assert len(reply.pop("request_id")) in (12, 13)
    return reply


def test_workrecord_get_is_an_unknown_method_by_default(api):
    reply = api.call("workrecord/get", {"userid": "alice01", "record_id": "x"})
    assert without_request_id(reply) == invalid_method("dingtalk.oapi.workrecord.get")
    assert list(reply) == ["errcode", "sub_msg", "errmsg"]


def test_unknown_topapi_name_is_22_with_dotted_api_name(api):
    reply = api.call("process/workrecord/task/query", {})
    assert without_request_id(reply) == invalid_method(
        "dingtalk.oapi.process.workrecord.task.query"
    )


def test_22_comes_before_the_token_check(api):
    response = api.http.get(f"{api.url}/topapi/app/remove_auth", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert without_request_id(response.json()) == invalid_method("dingtalk.oapi.app.remove_auth")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_http_method_on_a_known_call_is_22(api, method):
    url = f"{api.url}/topapi/workrecord/add?access_token={api.token()}"
    response = api.http.request(method, url, timeout=5)
    assert response.status_code == 200
    assert response.json()["errcode"] == 22
    assert "dingtalk.oapi.workrecord.add" in response.json()["errmsg"]


@pytest.mark.parametrize("path", ["/", "/v2.0/todo/users/u/tasks", "/topapix/workrecord/add"])
def test_other_paths_are_404_with_http_200(api, path):
    response = api.http.post(f"{api.url}{path}", json={}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert response.json() == {"errcode": 404, "errmsg": "请求的URI地址不存在"}


def test_every_request_is_counted_by_api_name(api, emu):
    api.gettoken(appsecret="wrong")
    api.token()
    api.add_ok()
    api.call("workrecord/add", {}, token="")
    api.update("alice01", "record-unknown")
    api.page("alice01")
    api.call("workrecord/get", {})
    api.call("calendar/list", {})
    api.http.get(f"{api.url}/nowhere", timeout=5)
    api.control("GET", "records")  # control calls are not DingTalk calls
    counts = emu.call_counts()
    assert {name: n for name, n in counts.items() if n} == {
        "gettoken": 2,
        "workrecord/add": 2,
        "workrecord/update": 1,
        "workrecord/getbyuserid": 1,
        "workrecord/get": 1,
        "other": 2,
    }
    assert set(counts) == set(CALL_NAMES)
