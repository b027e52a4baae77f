"""Injected faults: seeded, drawn after the token check, and what each leaves behind."""

from __future__ import annotations

import threading

import pytest
import requests

LIST_BODY = {"userid": "alice01", "offset": 0, "limit": 50, "status": 0}


def outcome(api, title="任务"):
    """How one add ended: an errcode, an HTTP status, or the kind of transport failure."""
    try:
        response = api.post("workrecord/add", _add_body(title))
    except requests.ConnectionError:
        return "connection"
    if response.status_code != 200:
        return f"http{response.status_code}"
    return response.json()["errcode"]


def _add_body(title):
    return {
        "userid": "alice01",
        "create_time": 1,
        "title": title,
        "url": "https://x.example.com",
        "formItemList": [{"title": "a", "content": "b"}],
    }


def run(emulator, connect, calls=30, prefix="任务"):
    api = connect(emulator)
    api.token()
    return [outcome(api, f"{prefix} {n}") for n in range(calls)]


def test_same_seed_same_faults(start_emulator, connect):
    settings = {"fault_rate": 0.5, "seed": 42}
    first = run(start_emulator(**settings), connect)
    second = run(start_emulator(**settings), connect)
    other = run(start_emulator(fault_rate=0.5, seed=7), connect)
    assert first == second
    assert first != other
    assert {0, -1, "connection"} <= set(first)
    assert set(first) & {"http500", "http502"}


def test_set_faults_restarts_the_sequence(emu, connect):
    emu.set_faults(rate=0.5, seed=3)
    first = run(emu, connect, 12)
    emu.set_faults(seed=3)
    assert run(emu, connect, 12, prefix="再来") == first


def test_http500_stores_nothing(emu, api):
    api.token()
    emu.set_faults(rate=1.0, kinds=["http500"])
    response = api.post("workrecord/add", _add_body("任务"))
    assert response.status_code in (500, 502)
    assert response.headers["Content-Type"] == "text/html"
    assert "<html>" in response.text
    assert emu.records() == []


def test_errcode_minus_1_stores_nothing(emu, api):
    api.token()
    emu.set_faults(rate=1.0, kinds=["errcode-1"])
    assert api.call("workrecord/add", _add_body("任务")) == {"errcode": -1, "errmsg": "系统繁忙"}
    assert emu.records() == []


def test_reset_closes_without_an_answer_and_stores_nothing(emu, api):
    api.token()
    emu.set_faults(rate=1.0, kinds=["reset"])
    with pytest.raises(requests.ConnectionError):
        api.post("workrecord/add", _add_body("任务"))
    assert emu.records() == []


def test_lost_ack_stores_the_record_but_never_answers(emu, api):
    api.token()
    emu.set_faults(rate=1.0, kinds=["lost_ack"])
    with pytest.raises(requests.ConnectionError):
        api.post("workrecord/add", {**_add_body("任务"), "biz_id": "b-1"})
    with pytest.raises(requests.ConnectionError):
        api.post("workrecord/update", {"userid": "alice01", "record_id": "b-1"})
    emu.set_faults(rate=0.0)
    (record,) = emu.records()
    assert record["biz_id"] == "b-1" and record["status"] == 1
    # A retry of the lost add is now a duplicate, which is how a client resolves it.
    assert api.call("workrecord/add", {**_add_body("任务"), "biz_id": "b-1"})["errcode"] == 854001


def test_optional_fault_kinds(emu, api):
    api.token()
    emu.set_faults(rate=1.0, kinds=["ipblock"])
    assert api.call("workrecord/getbyuserid", LIST_BODY)["punish"] == "deny"
    emu.set_faults(kinds=["qps-global"])
    reply = api.call("workrecord/getbyuserid", LIST_BODY)
    assert (reply["errcode"], reply["sub_code"]) == (88, "90002")


def test_faults_spare_gettoken_and_refused_tokens(emu, api):
    emu.set_faults(rate=1.0, kinds=["reset"])
    assert api.gettoken().json()["errcode"] == 0
    assert api.call("workrecord/add", {}, token="bad")["sub_code"] == "40014"


def test_unknown_fault_kind_is_refused(emu):
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.set_faults(kinds=["meteor"])
    with pytest.raises(ValueError):
        emu.set_faults(rate=1.5)


def test_latency_delays_answers_without_serialising_them(start_emulator, connect):
    """Four calls with latency are delayed side by side: each one's wait starts before any
    ends (a barrier in the injected sleep would time out if the emulator waited them out
    one after the other, or under its store lock)."""
    together = threading.Barrier(4, timeout=10)
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        together.wait()

    emulator = start_emulator(latency_ms=200, sleep=sleep)
    apis = [connect(emulator) for _ in range(4)]
    for api in apis:
        api.token()  # gettoken has no added latency
    assert delays == []
    replies = []

    def call(api):
        replies.append(api.call("workrecord/getbyuserid", LIST_BODY)["errcode"])

    threads = [threading.Thread(target=call, args=(api,)) for api in apis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == [0, 0, 0, 0]
    assert delays == [0.2] * 4
    assert not together.broken
