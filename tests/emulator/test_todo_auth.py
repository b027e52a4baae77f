"""The v1.0 app token, the token header, and topapi/v2/user/get.

See docs/dingtalk-todo.md §2 and §3.2.
"""

from __future__ import annotations

import re

import pytest

from dingsync.emulator import DEFAULT_APPKEY
from dingsync.emulator.directory import derived_union_id
from tests.emulator.conftest import error_of


def test_access_token_answers_token_and_expiry(todo, emu):
    response = todo.access_token()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["accessToken", "expireIn"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["accessToken"])
    assert body["expireIn"] == 7200
    assert emu.issued_tokens() == [body["accessToken"]]


def test_access_token_and_gettoken_share_the_live_token(todo, api, emu):
    first = todo.access_token().json()["accessToken"]
    emu.advance_clock(7000)
    assert api.gettoken().json()["access_token"] == first
    emu.advance_clock(7000)  # renewed at 7000 s by gettoken
    assert todo.access_token().json()["accessToken"] == first
    assert todo.query(emu.union_id("hr-bot01"), token=first).status_code == 200
    assert emu.issued_tokens() == [first]


def test_a_new_token_after_expiry(todo, emu):
    first = todo.access_token().json()["accessToken"]
    emu.advance_clock(7200)
    second = todo.access_token().json()["accessToken"]
    assert second != first
    assert emu.issued_tokens() == [first, second]


@pytest.mark.parametrize(
    "body",
    [
        {"appKey": DEFAULT_APPKEY, "appSecret": "wrong"},
        {"appKey": "unknown-app", "appSecret": "dingsync-sandbox-secret"},
        {"appKey": DEFAULT_APPKEY},
        {"appSecret": "dingsync-sandbox-secret"},
        {"appKey": 5, "appSecret": 6},
    ],
)
def test_bad_key_or_secret_is_400_invalid_client(todo, emu, body):
    response = todo.access_token(body)
    error_of(response, 400, "invalidClientIdOrSecret", "无效的clientId或者clientSecret")
    assert emu.issued_tokens() == []


def test_token_call_needs_a_json_body(todo):
    form = {"appKey": DEFAULT_APPKEY, "appSecret": "dingsync-sandbox-secret"}
    error_of(todo.access_token(data=form), 400, "InvalidParameter", "body is mandatory")


def test_token_call_is_post_only(todo):
    response = todo.http.get(f"{todo.url}/v1.0/oauth2/accessToken", timeout=5)
    error_of(response, 404, "InvalidAction.NotFound")


def test_missing_token_header_is_401(todo, people):
    response = todo.http.post(
        f"{todo.url}/v1.0/todo/users/{people['hr-bot01']}/org/tasks/query", json={}, timeout=5
    )
    error_of(response, 401, "Unauthorized")


def test_token_in_the_query_string_is_not_read(todo, people):
    url = f"{todo.url}/v1.0/todo/users/{people['hr-bot01']}/org/tasks/query"
    response = todo.http.post(url, params={"access_token": todo.token()}, json={}, timeout=5)
    error_of(response, 401, "Unauthorized")


def test_unknown_token_is_400_invalid_authentication(todo, people):
    response = todo.query(people["hr-bot01"], token="0" * 32)
    error_of(response, 400, "InvalidAuthentication", "不合法的access_token")


def test_expired_token_is_400_invalid_authentication(todo, emu, people):
    token = todo.token()
    emu.advance_clock(7199)
    assert todo.query(people["hr-bot01"], token=token).status_code == 200
    emu.advance_clock(1)
    error_of(todo.query(people["hr-bot01"], token=token), 400, "InvalidAuthentication")


def test_revoked_token_is_refused_and_a_new_one_works(todo, emu, people):
    token = todo.token()
    emu.revoke_tokens()
    error_of(todo.query(people["hr-bot01"], token=token), 400, "InvalidAuthentication")
    fresh = todo.access_token().json()["accessToken"]
    assert fresh != token
    assert todo.query(people["hr-bot01"], token=fresh).status_code == 200


def test_token_ttl_is_configurable(start_emulator, connect_todo):
    todo = connect_todo(start_emulator(token_ttl=60))
    assert todo.access_token().json()["expireIn"] == 60


def test_a_refused_token_creates_nothing(todo, emu, people):
    response = todo.request("POST", f"todo/users/{people['hr-bot01']}/tasks", {}, token="bad")
    error_of(response, 400, "InvalidAuthentication")
    assert emu.todos() == []


# topapi/v2/user/get


def test_user_get_gives_the_unionid(todo, emu):
    reply = todo.user_get("alice01")
    assert reply["errcode"] == 0 and reply["errmsg"] == "ok"
    assert reply["result"] == {
        "userid": "alice01",
        "unionid": derived_union_id("alice01"),
        "name": "alice01",
    }
    assert re.fullmatch(r"[0-9a-z]{12,13}", reply["request_id"])
    assert emu.union_id("alice01") == reply["result"]["unionid"]


def test_derived_unionids_are_stable_and_distinct():
    assert derived_union_id("alice01") == derived_union_id("alice01")
    assert derived_union_id("alice01") != derived_union_id("alice02")
    assert re.fullmatch(r"[0-9A-Za-z]{24}", derived_union_id("张三"))


def test_user_get_takes_the_v1_token_and_the_legacy_one(todo, api):
    assert todo.user_get("alice01")["errcode"] == 0  # todo.token() is a v1.0 token
    response = api.post("v2/user/get", {"userid": "alice01"})  # a gettoken token
    assert response.json()["result"]["unionid"] == derived_union_id("alice01")


def test_user_get_of_a_non_member_is_33012(todo, emu):
    emu.set_users({"alice01"})
    assert todo.user_get("bob02")["errcode"] == 33012
    assert todo.user_get("bob02")["errmsg"] == "无效的userid"
    assert todo.user_get("alice01")["errcode"] == 0
    with pytest.raises(KeyError):
        emu.union_id("bob02")


@pytest.mark.parametrize("userid", ["", None, 5])
def test_user_get_without_a_userid_is_400002(todo, userid):
    assert todo.user_get(userid)["errcode"] == 400002


def test_configured_unionids_win(start_emulator, connect_todo):
    emu = start_emulator(union_ids={"alice01": "PUoiinWIpalice"})
    todo = connect_todo(emu)
    assert todo.union_id("alice01") == "PUoiinWIpalice"
    assert todo.union_id("bob02") == derived_union_id("bob02")
    with pytest.raises(ValueError):
        start_emulator(union_ids={"a": "same", "b": "same"})


def test_user_get_is_throttled_but_not_metered(start_emulator, connect_todo):
    emu = start_emulator(qps=1, monthly_quota=0, clock=lambda: 1796090400.0)
    todo = connect_todo(emu)
    assert todo.user_get("alice01")["errcode"] == 0
    reply = todo.user_get("alice01")
    assert (reply["errcode"], reply["sub_code"]) == (88, "90018")
    assert "apiPath(dingtalk.oapi.v2.user.get)" in reply["sub_msg"]
