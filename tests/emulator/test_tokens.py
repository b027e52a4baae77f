"""gettoken and the token checks on topapi calls.

See docs/dingtalk-workrecord.md §1, §2.1, §7.2 and §10.7.
"""

from __future__ import annotations

import re

from dingsync.emulator import DEFAULT_APPKEY

LIST_BODY = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}


def wrapped(reply, sub_code, sub_msg):
    assert reply["errcode"] == 88
    assert reply["sub_code"] == sub_code
    assert reply["sub_msg"] == sub_msg
    assert reply["errmsg"] == f"ding talk error[subcode={sub_code},submsg={sub_msg}]"
    assert re.fullmatch(r"[0-9a-z]{12,13}", reply["request_id"])


def test_gettoken_issues_a_32_hex_token(api):
    response = api.gettoken()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["errcode", "access_token", "errmsg", "expires_in"]
    assert body["errcode"] == 0 and body["errmsg"] == "ok" and body["expires_in"] == 7200
    assert re.fullmatch(r"[0-9a-f]{32}", body["access_token"])
    assert api.emulator.issued_tokens() == [body["access_token"]]


def test_live_token_is_returned_again_and_renewed(api, emu):
    first = api.gettoken().json()["access_token"]
    emu.advance_clock(7000)
    assert api.gettoken().json()["access_token"] == first
    # Renewed at 7000 s: still valid 7000 s later, 14000 s after it was issued.
    emu.advance_clock(7000)
    assert api.call("workrecord/getbyuserid", LIST_BODY, token=first)["errcode"] == 0
    assert emu.issued_tokens() == [first]


def test_new_token_after_expiry(api, emu):
    first = api.gettoken().json()["access_token"]
    emu.advance_clock(7200)
    second = api.gettoken().json()["access_token"]
    assert second != first
    assert emu.issued_tokens() == [first, second]


def test_token_ttl_is_configurable(start_emulator, connect):
    api = connect(start_emulator(token_ttl=60))
    reply = api.gettoken().json()
    assert reply["expires_in"] == 60
    api.emulator.advance_clock(60)
    token = reply["access_token"]
    wrapped(api.call("workrecord/getbyuserid", LIST_BODY, token=token), "42001", "access_token超时")


def test_bad_secret_is_40096_not_wrapped(api):
    response = api.gettoken(appsecret="wrong")
    assert response.status_code == 200
    assert response.json() == {"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}
    assert api.gettoken(appkey="unknown-app").json()["errcode"] == 40096


def test_missing_appkey_is_40035(api):
    response = api.http.get(f"{api.url}/gettoken", params={"appsecret": "x"}, timeout=5)
    assert response.json() == {"errcode": 40035, "errmsg": "缺少参数 corpid or appkey"}


def test_gettoken_reads_only_the_query_string(api):
    # The doc's curl sample sends a form body with -X GET; DingTalk ignores that body.
    body = {"appkey": DEFAULT_APPKEY, "appsecret": "dingsync-sandbox-secret"}
    response = api.http.request("GET", f"{api.url}/gettoken", data=body, timeout=5)
    assert response.json()["errcode"] == 40035


def test_missing_token_is_88_40000(api):
    wrapped(api.call("workrecord/add", {}, token=""), "40000", "access_token is blank")


def test_token_in_the_v1_header_is_ignored(api):
    token = api.token()
    response = api.http.post(
        f"{api.url}/topapi/workrecord/getbyuserid",
        json=LIST_BODY,
        headers={"x-acs-dingtalk-access-token": token},
        timeout=5,
    )
    wrapped(response.json(), "40000", "access_token is blank")


def test_token_in_a_form_body_is_read(api):
    body = {**LIST_BODY, "access_token": api.token()}
    response = api.http.post(f"{api.url}/topapi/workrecord/getbyuserid", data=body, timeout=5)
    assert response.json()["errcode"] == 0


def test_unknown_token_is_88_40014(api):
    wrapped(
        api.call("workrecord/getbyuserid", LIST_BODY, token="0" * 32),
        "40014",
        "不合法的access_token",
    )


def test_revoked_token_is_88_40014_and_a_new_one_is_issued(api, emu):
    token = api.token()
    assert emu.revoke_tokens() == 1
    reply = api.call("workrecord/getbyuserid", LIST_BODY, token=token)
    wrapped(reply, "40014", "不合法的access_token")
    fresh = api.gettoken().json()["access_token"]
    assert fresh != token
    assert api.call("workrecord/getbyuserid", LIST_BODY, token=fresh)["errcode"] == 0


def test_expired_token_is_88_42001(api, emu):
    token = api.token()
    emu.advance_clock(7199)
    assert api.call("workrecord/getbyuserid", LIST_BODY, token=token)["errcode"] == 0
    emu.advance_clock(1)
    wrapped(api.call("workrecord/getbyuserid", LIST_BODY, token=token), "42001", "access_token超时")


def test_token_checks_come_before_the_body(api):
    reply = api.call("workrecord/add", None, token="", data=b"not json")
    assert reply["sub_code"] == "40000"
