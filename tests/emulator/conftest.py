"""Fixtures for the emulator's own tests: a real emulator on 127.0.0.1 and a small caller."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

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


APP_URL = "https://intranet.example.com/it/laptop"
PC_URL = "https://intranet.example.com/it/laptop?pc=1"


class TodoApi:
    """Calls the emulator's v1.0 side over HTTP as the reference describes, one session."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.url = emulator.url
        self.http = requests.Session()
        self.appkey = DEFAULT_APPKEY
        self.appsecret = DEFAULT_APPSECRET
        self._token: str | None = None
        self._token_expires = 0.0

    def close(self) -> None:
        self.http.close()

    def access_token(self, body: Any = None, **kw: Any) -> requests.Response:
        if body is None and "data" not in kw:
            body = {"appKey": self.appkey, "appSecret": self.appsecret}
        url = f"{self.url}/v1.0/oauth2/accessToken"
        return self.http.post(url, json=body, timeout=5, **kw)

    def token(self) -> str:
        """A cached token, fetched again once the emulator's clock passed its expiry."""
        now = self.emulator.now()
        if self._token is None or now >= self._token_expires:
            reply = self.access_token().json()
            self._token = reply["accessToken"]
            self._token_expires = now + reply["expireIn"]
        return self._token

    def use_app(self, appkey: str, appsecret: str) -> None:
        self.appkey, self.appsecret, self._token = appkey, appsecret, None

    def user_get(self, userid: Any) -> dict[str, Any]:
        response = self.http.post(
            f"{self.url}/topapi/v2/user/get",
            params={"access_token": self.token()},
            json={"userid": userid, "language": "zh_CN"},
            timeout=5,
        )
        assert response.status_code == 200
        return response.json()

    def union_id(self, userid: str) -> str:
        reply = self.user_get(userid)
        assert reply["errcode"] == 0, reply
        return reply["result"]["unionid"]

    def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None, **kw: Any
    ) -> requests.Response:
        """``path`` after ``/v1.0/``; the token goes in the v1.0 header."""
        headers = {"x-acs-dingtalk-access-token": self.token() if token is None else token}
        if body is not None:
            kw["json"] = body
        return self.http.request(
            method, f"{self.url}/v1.0/{path}", headers=headers, timeout=5, **kw
        )

    def create(self, creator: str, **fields: Any) -> requests.Response:
        body = {
            "subject": "领取笔记本电脑",
            "detailUrl": {"appUrl": APP_URL, "pcUrl": PC_URL},
            **fields,
        }
        body = {k: v for k, v in body.items() if v is not None}
        params = {"operatorId": creator}
        return self.request("POST", f"todo/users/{creator}/tasks", body, params=params)

    def create_ok(self, creator: str, **fields: Any) -> dict[str, Any]:
        response = self.create(creator, **fields)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, user: str, task_id: str) -> requests.Response:
        return self.request("GET", f"todo/users/{user}/tasks/{task_id}")

    def get_by_source(self, user: str, source_id: str) -> requests.Response:
        return self.request("GET", f"todo/users/{user}/tasks/sources/{quote(source_id, '')}")

    def update(self, user: str, task_id: str, body: Any) -> requests.Response:
        params = {"operatorId": user}
        return self.request("PUT", f"todo/users/{user}/tasks/{task_id}", body, params=params)

    def delete(self, user: str, task_id: str) -> requests.Response:
        params = {"operatorId": user}
        return self.request("DELETE", f"todo/users/{user}/tasks/{task_id}", params=params)

    def executor_status(self, user: str, task_id: str, statuses: Any) -> requests.Response:
        path = f"todo/users/{user}/tasks/{task_id}/executorStatus"
        body = {"executorStatusList": statuses}
        return self.request("PUT", path, body, params={"operatorId": user})

    def query(self, user: str, *, token: str | None = None, **body: Any) -> requests.Response:
        return self.request("POST", f"todo/users/{user}/org/tasks/query", body, token=token)

    def cards(self, user: str, **body: Any) -> list[dict[str, Any]]:
        """Every card of the list, following nextToken to the end."""
        cards: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(1000):
            page = self.query(user, **body, **({"nextToken": token} if token else {}))
            assert page.status_code == 200, page.text
            cards += page.json()["todoCards"]
            token = page.json().get("nextToken")
            if token is None:
                return cards
        raise AssertionError("nextToken never ran out")

    def control(self, method: str, path: str, body: Any = None) -> requests.Response:
        return self.http.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=5)


def error_of(response: requests.Response, status: int, code: str, message: str | None = None):
    """Assert a v1.0 error answer: status, {code, message, requestid}; return the body."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["code", "message", "requestid"]
    assert body["code"] == code
    assert re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", body["requestid"])
    if message is not None:
        assert body["message"] == message
    return body


@pytest.fixture
def connect_todo():
    made: list[TodoApi] = []

    def make(emulator: Emulator) -> TodoApi:
        made.append(TodoApi(emulator))
        return made[-1]

    yield make
    for api in made:
        api.close()


@pytest.fixture
def todo(emu, connect_todo) -> TodoApi:
    return connect_todo(emu)


@pytest.fixture
def people(emu):
    """unionIds of a creator (the service user) and two assignees, as user/get gives them."""
    return {name: emu.union_id(name) for name in ("hr-bot01", "alice01", "bob02")}
