"""The v1.0 side's rate limit, monthly quota, latency and injected faults.

See docs/dingtalk-todo.md §11 and §12.
"""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.emulator.conftest import error_of

NOW = 1796090400.25  # 2026-12-01 10:00:00.25 in China


def test_qps_limit_is_403_with_an_end_time(start_emulator, connect_todo):
    emu = start_emulator(qps=2, clock=lambda: NOW)
    todo = connect_todo(emu)
    creator = emu.union_id("hr-bot01")
    assert [todo.query(creator).status_code for _ in range(2)] == [200, 200]
    body = error_of(todo.query(creator), 403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi")
    assert "apiPath(/v1.0/todo/users/{unionId}/org/tasks/query)" in body["message"]
    assert "请求总次数超过 2 次" in body["message"]
    until = re.search(r"限制将在 (\S+ \S+) 结束", body["message"]).group(1)
    assert until == "2026-12-01 10:00:01"
    emu.advance_clock(1)
    assert todo.query(creator).status_code == 200


def test_qps_limit_is_per_api_and_throttled_calls_have_no_effect(start_emulator, connect_todo):
    emu = start_emulator(qps=1, clock=lambda: NOW)
    todo = connect_todo(emu)
    creator = emu.union_id("hr-bot01")
    assert todo.create(creator, subject="一").status_code == 200
    error_of(
        todo.create(creator, subject="二"), 403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"
    )
    assert todo.query(creator).status_code == 200  # another API, its own budget
    assert [t["subject"] for t in emu.todos()] == ["一"]
    # The token call is never throttled.
    assert all(todo.access_token().status_code == 200 for _ in range(5))


def test_qps_limit_comes_after_the_token_check(start_emulator, connect_todo):
    emu = start_emulator(qps=1, clock=lambda: NOW)
    todo = connect_todo(emu)
    creator = emu.union_id("hr-bot01")
    for _ in range(3):
        error_of(todo.query(creator, token="bad"), 400, "InvalidAuthentication")
    assert todo.query(creator).status_code == 200


def test_qps_can_be_changed_at_run_time(start_emulator, connect_todo):
    emu = start_emulator(qps=1, clock=lambda: NOW)
    todo = connect_todo(emu)
    creator = emu.union_id("hr-bot01")
    todo.query(creator)
    assert todo.query(creator).status_code == 403
    emu.set_faults(qps=0)
    assert all(todo.query(creator).status_code == 200 for _ in range(25))


def test_monthly_quota_is_403_api_count_limit(start_emulator, connect_todo, connect):
    emu = start_emulator(monthly_quota=2, clock=lambda: NOW)
    todo, legacy = connect_todo(emu), connect(emu)
    creator = emu.union_id("hr-bot01")
    for _ in range(3):
        assert todo.access_token().status_code == 200  # token calls are not metered
        assert todo.user_get("alice01")["errcode"] == 0  # nor contacts calls
        assert todo.query(creator, token="bad").status_code == 400  # nor refused tokens
    assert todo.create(creator).status_code == 200
    assert todo.query(creator).status_code == 200
    body = error_of(todo.query(creator), 403, "Forbidden.AccessDenied.ApiCountLimitForOrg")
    assert body["message"].startswith("您的企业本月api调用量已超过限制,调用量:3次,额度:2次")
    # One quota for both APIs.
    assert legacy.page("alice01")["errcode"] == 90020
    error_of(todo.create(creator), 403, "Forbidden.AccessDenied.ApiCountLimitForOrg")
    assert len(emu.todos()) == 1
    emu.advance_clock(31 * 86400)
    assert todo.query(creator).status_code == 200


def test_http500_is_the_proxy_page_and_stores_nothing(todo, emu, people):
    todo.token()
    emu.set_faults(rate=1.0, kinds=["http500"])
    response = todo.create(people["hr-bot01"], sourceId="s-1")
    assert response.status_code in (500, 502)
    assert response.headers["Content-Type"] == "text/html" and "<html>" in response.text
    assert emu.todos() == []


def test_system_error_is_500_json_and_stores_nothing(todo, emu, people):
    todo.token()
    emu.set_faults(rate=1.0, kinds=["errcode-1"])
    creator = people["hr-bot01"]
    code = "todo.taskCreate.systemError"
    error_of(todo.create(creator, sourceId="s-1"), 500, code, code)
    error_of(todo.query(creator), 500, "todo.orgTaskQuery.systemError")
    assert emu.todos() == []


def test_reset_closes_without_an_answer_and_stores_nothing(todo, emu, people):
    todo.token()
    emu.set_faults(rate=1.0, kinds=["reset"])
    with pytest.raises(requests.ConnectionError):
        todo.create(people["hr-bot01"], sourceId="s-1")
    assert emu.todos() == []


def test_lost_ack_commits_and_a_retry_gets_task_exist(todo, emu, people):
    creator = people["hr-bot01"]
    todo.token()
    emu.set_faults(rate=1.0, kinds=["lost_ack"])
    with pytest.raises(requests.ConnectionError):
        todo.create(creator, sourceId="dingsync-ns:key@alice01:1")
    emu.set_faults(rate=0.0)
    (stored,) = emu.todos()
    again = todo.create(creator, sourceId="dingsync-ns:key@alice01:1")
    body = error_of(again, 400, "todo.taskCreate.paramError")
    assert body["message"] == f"task exist, taskId is {stored['id']}"
    found = todo.get_by_source(creator, "dingsync-ns:key@alice01:1")
    assert found.json()["id"] == stored["id"]


def test_lost_ack_on_update_and_delete_takes_effect(todo, emu, people):
    creator = people["hr-bot01"]
    done_id, gone_id = todo.create_ok(creator)["id"], todo.create_ok(creator)["id"]
    emu.set_faults(rate=1.0, kinds=["lost_ack"])
    with pytest.raises(requests.ConnectionError):
        todo.update(creator, done_id, {"done": True})
    with pytest.raises(requests.ConnectionError):
        todo.delete(creator, gone_id)
    emu.set_faults(rate=0.0)
    assert [(t["id"], t["done"]) for t in emu.todos()] == [(done_id, True)]


def test_lock_error_only_for_creates_with_a_source_id(todo, emu, people):
    creator = people["hr-bot01"]
    todo.token()
    emu.set_faults(rate=1.0, kinds=["lockerror"])
    response = todo.create(creator, sourceId="s-1")
    error_of(response, 400, "todo.taskCreate.lockError", "todo.taskCreate.lockError")
    assert emu.todos() == []
    # Nothing else can fail with a lock error.
    task_id = todo.create_ok(creator)["id"]
    assert todo.query(creator).status_code == 200
    assert todo.update(creator, task_id, {"done": True}).status_code == 200
    assert emu.fault_counts() == {"lockerror": 1}
    # The retry with the same sourceId succeeds once the lock is free.
    emu.set_faults(rate=0.0)
    assert todo.create(creator, sourceId="s-1").status_code == 200


def test_lock_errors_never_reach_the_legacy_calls(emu, api):
    api.token()
    emu.set_faults(rate=1.0, kinds=["lockerror"])
    assert api.add()["errcode"] == 0
    assert emu.fault_counts() == {}


def test_optional_fault_kinds_on_v1(todo, emu, people):
    creator = people["hr-bot01"]
    todo.token()
    emu.set_faults(rate=1.0, kinds=["qps-global"])
    error_of(todo.query(creator), 403, "Forbidden.AccessDenied.QpsLimitForApi")
    emu.set_faults(kinds=["ipblock"])
    assert todo.query(creator).json()["punish"] == "deny"


def test_faults_spare_the_token_call_and_refused_tokens(todo, emu, people):
    emu.set_faults(rate=1.0, kinds=["reset"])
    assert todo.access_token().status_code == 200
    error_of(todo.query(people["hr-bot01"], token="bad"), 400, "InvalidAuthentication")


def test_same_seed_same_faults_on_v1(start_emulator, connect_todo):
    def run(seed):
        emu = start_emulator(fault_rate=0.5, seed=seed, fault_kinds=["http500", "errcode-1"])
        todo = connect_todo(emu)
        creator = emu.union_id("hr-bot01")
        return [todo.create(creator, subject=f"任务 {n}").status_code for n in range(20)]

    first = run(42)
    assert first == run(42)
    assert first != run(7)
    assert 200 in first and 500 in first


def test_latency_applies_to_v1_calls(todo, emu, people):
    creator = people["hr-bot01"]
    todo.token()
    emu.set_faults(latency_ms=300)
    started = time.monotonic()
    assert todo.query(creator).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    todo.access_token()  # the token call has no added latency, as gettoken
    assert time.monotonic() - started < 0.3
