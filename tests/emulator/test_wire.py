"""Pure pieces: ids, China-time days, and the gateway without any HTTP."""

from __future__ import annotations

import re

from dingsync.emulator import EmulatorConfig
from dingsync.emulator.gateway import Clock
from dingsync.emulator.gateway import Gateway
from dingsync.emulator.gateway import Request
from dingsync.emulator.gateway import Settings
from dingsync.emulator.store import Store
from dingsync.emulator.store import day_bounds
from dingsync.emulator.store import day_of
from dingsync.emulator.wire import new_request_id


def test_request_ids_are_12_or_13_lowercase_alphanumerics():
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch(r"[0-9a-z]{12,13}", i) for i in ids)


def test_days_are_counted_in_china_time():
    assert day_of(1796054399.0) == "2026-11-30"  # 23:59:59 UTC+8
    assert day_of(1796054400.0) == "2026-12-01"  # 16:00:00 UTC the day before


def test_day_bounds_are_china_midnights():
    start, end = day_bounds(1796090400.0)  # 2026-12-01 10:00 UTC+8
    assert (start, end) == (1796054400.0, 1796140800.0)
    assert day_of(start) == "2026-12-01" and day_of(end) == "2026-12-02"
    assert day_bounds(start) == (start, end)


def test_gateway_without_http():
    gateway = Gateway(Store(), Clock(lambda: 1796090400.0), Settings.from_config(EmulatorConfig()))
    query = {"appkey": "dingsync-sandbox-key", "appsecret": "dingsync-sandbox-secret"}
    outcome = gateway.handle(Request("GET", "/gettoken", query))
    assert outcome.content_type == "application/json"
    token = outcome.body.decode().split('"access_token":"')[1][:32]
    add = Request(
        "POST",
        "/topapi/workrecord/add",
        {"access_token": token},
        "application/json",
        b'{"userid":"u","create_time":1,"title":"t","url":"u","formItemList":[{"title":"a","content":"b"}]}',
    )
    outcome = gateway.handle(add)
    assert outcome.action == "answer" and b'"errcode":0' in outcome.body
