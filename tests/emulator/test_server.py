"""The HTTP server: keep-alive, concurrency, clean stops, persistence and ``serve``."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from dingsync.emulator import EmulatorDataError

NOW = 1796090400.0  # 2026-12-01 10:00 in China
LIST_BODY = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}


def test_keep_alive_reuses_one_connection(api, emu):
    before = emu.connections_accepted
    for n in range(20):
        api.add_ok(title=f"任务 {n}")
    assert emu.connections_accepted - before == 1


def test_two_requests_on_one_raw_connection(api, emu):
    parts = urlsplit(emu.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        path = f"/topapi/workrecord/getbyuserid?access_token={api.token()}"
        conn.request("POST", path, body=json.dumps(LIST_BODY))
        sock = conn.sock
        first = conn.getresponse()
        assert first.getheader("Content-Length") == str(len(first.read()))
        conn.request("POST", path, body=json.dumps(LIST_BODY))
        assert conn.sock is sock
        assert json.loads(conn.getresponse().read())["errcode"] == 0
    finally:
        conn.close()


def test_chunked_request_body(api):
    body = json.dumps(LIST_BODY).encode()
    response = api.http.post(
        f"{api.url}/topapi/workrecord/getbyuserid",
        params={"access_token": api.token()},
        data=iter([body[:10], body[10:]]),
        timeout=5,
    )
    assert response.json()["errcode"] == 0


def test_http_1_0_client_gets_connection_close(emu):
    parts = urlsplit(emu.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"GET /nowhere HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert json.loads(body)["errcode"] == 404


def test_concurrent_clients(api, emu, connect):
    token = api.token()
    errors = []

    def worker(n):
        client = connect(emu)
        client._token, client._token_expires = token, float("inf")
        for i in range(40):
            reply = client.add(userid=f"user{n:02d}", title=f"任务 {i}")
            if reply["errcode"] != 0:
                errors.append(reply)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert time.monotonic() - started < 5
    records = emu.records()
    assert len(records) == len({r["record_id"] for r in records}) == 320
    assert emu.call_counts()["workrecord/add"] == 320


def test_stop_is_quick_with_idle_keep_alive_connections(connect):
    emulator = Emulator(EmulatorConfig(qps=0))
    emulator.start()
    api = connect(emulator)
    api.page("alice01")  # leaves a pooled, idle connection open
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 1
    with pytest.raises(requests.ConnectionError):
        api.page("alice01")
    with pytest.raises(RuntimeError):
        emulator.url  # noqa: B018


def test_start_twice_is_refused(emu):
    with pytest.raises(RuntimeError):
        emu.start()


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        Emulator(EmulatorConfig(fault_kinds=("http500", "meteor")))
    with pytest.raises(ValueError):
        Emulator(EmulatorConfig(users="alice01"))
    with pytest.raises(ValueError):
        Emulator(EmulatorConfig(qps=-1))


# Persistence


def test_data_survives_a_restart(tmp_path, start_emulator, connect):
    path = tmp_path / "emulator.json"
    settings = {"data_path": path, "clock": lambda: NOW, "daily_limit": 3}
    first = start_emulator(**settings)
    api = connect(first)
    older = api.add_ok(title="一", biz_id="b-1")
    api.add_ok(title="二", biz_id="b-2")
    api.update("alice01", "b-2")
    before = first.records()
    first.stop()
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["emulator.json"]  # no temp files left

    second = start_emulator(**settings)
    api = connect(second)
    assert second.records() == before
    assert api.add(title="三", biz_id="b-1")["errcode"] == 854001  # biz_id history kept
    assert api.add(title="一", biz_id="b-3")["errcode"] == 854001  # same content today
    newer = api.add_ok(title="三", biz_id="b-4")
    assert api.add(title="四", biz_id="b-5")["errcode"] == 854002  # day counter kept
    listed = [r["record_id"] for r in api.page("alice01")["records"]["list"]]
    assert listed == [newer, older]  # creation sequence continues after the restart


def test_day_counters_of_past_days_are_dropped(tmp_path, start_emulator, connect):
    path = tmp_path / "emulator.json"
    emulator = start_emulator(data_path=path, clock=lambda: NOW)
    api = connect(emulator)
    api.add_ok(title="一")
    emulator.advance_clock(86400)
    api.add_ok(title="二")
    emulator.stop()
    adds = json.loads(path.read_text(encoding="utf-8"))["adds"]
    assert list(adds.values()) == [{"alice01": 1}]  # only the new day's count is left


def test_changes_reach_the_file_without_a_stop(tmp_path, start_emulator, connect):
    path = tmp_path / "data" / "emulator.json"
    api = connect(start_emulator(data_path=path))
    record_id = api.add_ok()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if path.exists() and record_id in path.read_text(encoding="utf-8"):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the record did not reach the data file within 3 s")


def test_unreadable_data_file_is_a_clear_error(tmp_path):
    path = tmp_path / "emulator.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(EmulatorDataError, match="not valid JSON"):
        Emulator(EmulatorConfig(data_path=path))
    path.write_text('{"format": 1, "records": [{"title": "x"}]}', encoding="utf-8")
    with pytest.raises(EmulatorDataError, match="malformed"):
        Emulator(EmulatorConfig(data_path=path))
    path.write_text('{"format": 99}', encoding="utf-8")
    with pytest.raises(EmulatorDataError):
        Emulator(EmulatorConfig(data_path=path))


# serve(), the `dingsync emulator` command


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_serve_announces_itself_stays_quiet_and_saves_on_ctrl_c(tmp_path):
    path = tmp_path / "emulator.json"
    code = (
        "from dingsync.emulator import EmulatorConfig, serve\n"
        f"serve(EmulatorConfig(qps=0, data_path={str(path)!r}), '127.0.0.1', 0)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stderr.readline()
        match = re.fullmatch(r"DingTalk emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        url = match.group(1)
        with requests.Session() as http:
            token = http.get(
                f"{url}/gettoken",
                params={"appkey": "dingsync-sandbox-key", "appsecret": "dingsync-sandbox-secret"},
                timeout=5,
            ).json()["access_token"]
            body = {
                "userid": "alice01",
                "create_time": 1,
                "title": "任务",
                "url": "https://x.example.com",
                "formItemList": [{"title": "a", "content": "b"}],
            }
            add = http.post(
                f"{url}/topapi/workrecord/add", params={"access_token": token}, json=body, timeout=5
            )
            assert add.json()["errcode"] == 0
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert out == "" and err == ""  # nothing per request, no traceback on Ctrl-C
    assert token not in line
    (record,) = json.loads(path.read_text(encoding="utf-8"))["records"]
    assert record["title"] == "任务"
