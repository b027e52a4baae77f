"""Each DingTalk refusal a user can cause says, in the error's own text, why and what to do.

The legacy client against the emulator's real answers (wrong secret, unknown userid, the
防骚扰限制, the daily cap, the global rate limit, the monthly quota, the IP block), and
against a small scripted server for the two answers the emulator never gives: a missing
permission (60011) and an address outside the app's allow-list (60020).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from dingsync.client import DingTalkClient
from dingsync.emulator import Emulator
from dingsync.errors import CredentialsError
from dingsync.errors import DailyLimitError
from dingsync.errors import DuplicateError
from dingsync.errors import InvalidUserError
from dingsync.errors import IpBlockedError
from dingsync.errors import IpNotAllowedError
from dingsync.errors import MissingPermissionError
from dingsync.errors import PermissionDeniedError
from dingsync.errors import QuotaExceededError
from dingsync.errors import RateLimitError
from dingsync.model import Content

from .conftest import MakeClient
from .conftest import StartEmulator
from .conftest import Transcript

CREATE_TIME = 1_764_000_000_000  # ms
CONTENT = Content(
    title="签署劳动合同与保密协议",
    url="https://intranet.example.com/hr/contract",
    form=(("任务描述", "在电子签平台完成签署"),),
)


def said(transcript: Transcript, error: BaseException) -> str:
    """The error's text, kept for the secret scan of ``make_client``."""
    text = str(error)
    transcript.texts.append(text)
    return text


def test_wrong_secret_says_where_the_client_id_and_secret_are(
    make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client(app_secret="not-the-secret-at-all")
    with pytest.raises(CredentialsError) as caught:
        list(client.list_records("zhangwei01", "open"))
    text = said(transcript, caught.value)
    assert "40096 不合法的appKey或appSecret" in text
    assert "Client ID（原 AppKey）" in text and "Client Secret（原 AppSecret）" in text
    assert "凭证与基础信息" in text


def test_missing_credentials_say_which_values_they_are() -> None:
    with pytest.raises(CredentialsError) as caught:
        DingTalkClient("http://127.0.0.1:9", "", "")
    assert "must both be set" in str(caught.value)
    assert "Client ID" in str(caught.value) and "凭证与基础信息" in str(caught.value)


def test_unknown_userid_says_where_userids_are_found(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    emu.set_users({"zhangwei01"})
    client = make_client()
    with pytest.raises(InvalidUserError) as caught:
        client.create("13800138000", CONTENT, "biz-1", CREATE_TIME)
    text = said(transcript, caught.value)
    assert "DingTalk error 33012" in text
    assert "管理后台 → 通讯录 → 成员管理" in text
    assert "工号" in text and "phone number" in text and "unionId" in text


def test_same_title_and_form_today_names_the_anti_harassment_rule(
    make_client: MakeClient, transcript: Transcript
) -> None:
    client = make_client()
    client.create("zhangwei01", CONTENT, "biz-1", CREATE_TIME)
    with pytest.raises(DuplicateError) as caught:
        client.create("zhangwei01", CONTENT, "biz-2", CREATE_TIME)
    text = said(transcript, caught.value)
    assert "DingTalk error 854001" in text
    assert "防骚扰限制" in text
    assert "same title and form per person per day" in text
    assert "change the title or form, or send it tomorrow" in text


def test_daily_cap_says_when_the_rest_is_sent(
    start_emulator: StartEmulator, make_client: MakeClient, transcript: Transcript
) -> None:
    emu = start_emulator(daily_limit=1)
    client = make_client(emu.url)
    client.create("zhangwei01", CONTENT, "biz-1", CREATE_TIME)
    other = CONTENT._replace(title="领取笔记本电脑")
    with pytest.raises(DailyLimitError) as caught:
        client.create("zhangwei01", other, "biz-2", CREATE_TIME)
    text = said(transcript, caught.value)
    assert "DingTalk error 854002" in text
    assert "防骚扰限制" in text and "after midnight China time" in text


def test_rate_limit_says_dingsync_already_slowed_down(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    emu.set_faults(rate=1.0, kinds=["qps-global"])
    client = make_client(max_retries=1, sleep=lambda _s: None)
    with pytest.raises(RateLimitError) as caught:
        list(client.list_records("zhangwei01", "open"))
    text = said(transcript, caught.value)
    assert "90002" in text
    assert "slowed down and retried on its own" in text
    assert "--max-qps" in text
    # A retry's log line gives no advice meant for the final failure, which keeps it.
    retries = [line for line in transcript.lines if line.startswith("retry ")]
    assert retries and "90002" in retries[0]
    assert "run again" not in retries[0]
    assert "run again" in text


def test_monthly_quota_says_when_calls_work_again_and_how_to_spend_less(
    start_emulator: StartEmulator, make_client: MakeClient, transcript: Transcript
) -> None:
    emu = start_emulator(monthly_quota=0)
    client = make_client(emu.url)
    with pytest.raises(QuotaExceededError) as caught:
        list(client.list_records("zhangwei01", "open"))
    text = said(transcript, caught.value)
    assert "DingTalk error 90020" in text
    assert "monthly DingTalk API quota is used up" in text
    assert "until next month or an edition upgrade" in text
    assert "--no-refresh" in text


def test_ip_block_says_why_and_how_long(
    emu: Emulator, make_client: MakeClient, transcript: Transcript
) -> None:
    emu.set_faults(rate=1.0, kinds=["ipblock"])
    client = make_client()
    with pytest.raises(IpBlockedError) as caught:
        list(client.list_records("zhangwei01", "open"))
    text = said(transcript, caught.value)
    assert "DingTalk blocked this IP address" in text
    assert "10,000 calls in 20 seconds" in text
    assert "about 5 minutes: wait, then run again" in text
    with pytest.raises(IpBlockedError) as again:
        client.complete("zhangwei01", "biz-1")
    assert "wait about 5 minutes, then run again" in said(transcript, again.value)


# -- the answers the emulator does not give: a scripted legacy server -----------------------


class LegacyScript:
    """gettoken succeeds; every topapi call gets the same wrapped (errcode 88) refusal."""

    TOKEN = "scripted-legacy-token-8c2f71"

    def __init__(self, sub_code: str, sub_msg: str) -> None:
        refusal = {
            "errcode": 88,
            "errmsg": "鉴权异常",
            "sub_code": sub_code,
            "sub_msg": sub_msg,
            "request_id": "16l4ew3d47pdp",
        }
        token = {"errcode": 0, "access_token": self.TOKEN, "expires_in": 7200}

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                reply = token if self.path.startswith("/gettoken") else refusal
                data = json.dumps(reply, ensure_ascii=False).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def legacy_script() -> Iterator[type[LegacyScript]]:
    servers: list[LegacyScript] = []

    class Started(LegacyScript):
        def __init__(self, sub_code: str, sub_msg: str) -> None:
            super().__init__(sub_code, sub_msg)
            servers.append(self)

    yield Started
    for server in servers:
        server.close()


def test_missing_permission_says_where_to_look_and_that_it_cannot_be_granted(
    legacy_script: type[LegacyScript], make_client: MakeClient, transcript: Transcript
) -> None:
    server = legacy_script("60011", "没有调用该接口的权限")
    client = make_client(server.url)
    with pytest.raises(MissingPermissionError) as caught:
        client.create("zhangwei01", CONTENT, "biz-1", CREATE_TIME)
    text = said(transcript, caught.value)
    assert isinstance(caught.value, PermissionDeniedError) and caught.value.fatal
    assert "workrecord/add: DingTalk error 88/60011: 鉴权异常: 没有调用该接口的权限" in text
    assert "旧版「待办任务」接口" in text
    assert "权限管理" in text and "暂不支持新增申请" in text
    assert LegacyScript.TOKEN not in text


def test_address_outside_the_allow_list_says_where_the_list_is(
    legacy_script: type[LegacyScript], make_client: MakeClient, transcript: Transcript
) -> None:
    server = legacy_script("60020", "访问ip不在白名单之中,请参考FAQ")
    client = make_client(server.url)
    with pytest.raises(IpNotAllowedError) as caught:
        list(client.list_records("zhangwei01", "open"))
    text = said(transcript, caught.value)
    assert isinstance(caught.value, PermissionDeniedError) and caught.value.fatal
    assert "DingTalk error 88/60020" in text
    assert "安全设置 → 服务器出口IP" in text
    assert client.call_counts["workrecord/getbyuserid"] == 1  # not retried
