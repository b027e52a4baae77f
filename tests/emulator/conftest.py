"""Fixtures for the emulator's own tests: a real emulator on 127.0.0.1 and a small caller."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from dingsync.emulator import DEFAULT_APPKEY
from dingsync.emulator import DEFAULT_APPSECRET
from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig

FORM = [{"title": "任务描述", "content": "到 IT 服务台领取并签收"}]


class Api:
    """Calls the emulator over HTTP as a client would, with one pooled session."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.url = emulator.url
        self.http = requests.Session()
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        self.http.close()

    def gettoken(self, **params: str) -> requests.Response:
        query = {"appkey": DEFAULT_APPKEY, "appsecret": DEFAULT_APPSECRET, **params}
        return self.http.get(f"{self.url}/gettoken", params=query, timeout=5)

    def token(self) -> str:
        """A cached token, fetched again once the emulator's clock passed its expiry."""
        now = self.emulator.now()
        if self._token is None or now >= self._token_expires:
            reply = self.gettoken().json()
            self._token = reply["access_token"]
            self._token_expires = now + reply["expires_in"]
        return self._token

    def use_app(self, appkey: str, appsecret: str) -> None:
        reply = self.gettoken(appkey=appkey, appsecret=appsecret).json()
        self._token = reply["access_token"]
        self._token_expires = self.emulator.now() + reply["expires_in"]

    def post(self, api: str, body: Any = None, *, token: str | None = None, **kw: Any):
        """POST to /topapi/<api>; ``body`` goes as JSON unless ``data=`` is given."""
        params = {"access_token": token if token is not None else self.token()}
        if body is not None:
            kw["json"] = body
        return self.http.post(f"{self.url}/topapi/{api}", params=params, timeout=5, **kw)

    def call(self, api: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        response = self.post(api, body, **kw)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
        return response.json()

    def add(self, userid: str = "alice01", title: str = "领取笔记本电脑", **fields: Any):
        body = {
            "userid": userid,
            "create_time": 1764547200000,
            "title": title,
            "url": "https://intranet.example.com/it/laptop",
            "formItemList": FORM,
            **fields,
        }
        return self.call("workrecord/add", {k: v for k, v in body.items() if v is not None})

    def add_ok(self, userid: str = "alice01", title: str = "领取笔记本电脑", **fields: Any) -> str:
        reply = self.add(userid, title, **fields)
        assert reply["errcode"] == 0, reply
        return reply["record_id"]

    def update(self, userid: str, record_id: str) -> dict[str, Any]:
        return self.call("workrecord/update", {"userid": userid, "record_id": record_id})

    def page(self, userid: str, status: int = 0, offset: Any = 0, limit: Any = 50):
        body = {"userid": userid, "offset": offset, "limit": limit, "status": status}
        return self.call("workrecord/getbyuserid", body)

    def control(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=5)


@pytest.fixture(scope="session")
def shared_emulator():
    with Emulator(EmulatorConfig(qps=0)) as emulator:
        yield emulator


@pytest.fixture
def emu(shared_emulator):
    """The shared emulator, back to its configured state (no rate limit, no faults)."""
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def start_emulator():
    """Start an emulator of one's own; ``qps`` defaults to 0 (no limit)."""
    started: list[Emulator] = []

    def start(**settings: Any) -> Emulator:
        settings.setdefault("qps", 0)
        emulator = Emulator(EmulatorConfig(**settings))
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def connect():
    """Make an ``Api`` for any running emulator; sessions are closed afterwards."""
    made: list[Api] = []

    def make(emulator: Emulator) -> Api:
        made.append(Api(emulator))
        return made[-1]

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(emu, connect) -> Api:
    return connect(emu)
