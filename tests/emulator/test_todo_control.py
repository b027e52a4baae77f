"""Acting as DingTalk users on v1.0 to-dos, the user directory, the clock and the data file."""

from __future__ import annotations

import json

import pytest

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from dingsync.emulator.directory import derived_union_id
from tests.emulator.conftest import TodoApi


def ok(response):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def test_list_stored_tasks(todo, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    created = todo.create_ok(creator, sourceId="s-1", executorIds=[alice])
    (task,) = ok(todo.control("GET", "todo/tasks"))["tasks"]
    assert task["id"] == created["id"] and task["sourceId"] == "s-1"
    assert task["app"] == "dingsync-sandbox-key"
    assert task["executorStatus"] == {alice: False}
    assert task["detailUrl"] == created["detailUrl"]


def test_complete_as_the_assignee(todo, people):
    creator, alice, bob = people["hr-bot01"], people["alice01"], people["bob02"]
    task_id = todo.create_ok(creator, executorIds=[alice, bob])["id"]
    answer = ok(todo.control("POST", f"todo/tasks/{task_id}/complete", {"executor": alice}))
    assert answer["task"]["executorStatus"] == {alice: True, bob: False}
    assert todo.get(creator, task_id).json()["done"] is False
    ok(todo.control("POST", f"todo/tasks/{task_id}/complete", {"executor": bob}))
    task = todo.get(creator, task_id).json()
    assert task["done"] is True and task["modifierId"] == bob
    assert [c["taskId"] for c in todo.cards(creator, isDone=True)] == [task_id]


def test_complete_the_whole_task(todo, people):
    creator = people["hr-bot01"]
    task_id = todo.create_ok(creator, executorIds=[people["alice01"]])["id"]
    assert ok(todo.control("POST", f"todo/tasks/{task_id}/complete"))["task"]["done"] is True
    assert todo.get(creator, task_id).json()["finishTime"] > 0


def test_complete_refuses_strangers_and_unknown_tasks(todo, people):
    task_id = todo.create_ok(people["hr-bot01"], executorIds=[people["alice01"]])["id"]
    path = f"todo/tasks/{task_id}/complete"
    assert todo.control("POST", path, {"executor": people["bob02"]}).status_code == 400
    assert todo.control("POST", path, {"executor": 5}).status_code == 400
    assert todo.control("POST", path, {"who": "x"}).status_code == 400
    assert todo.control("POST", "todo/tasks/OPJ-nope/complete").status_code == 404


def test_modify_as_a_user_shows_in_get_and_list(todo, emu, people):
    creator = people["hr-bot01"]
    created = todo.create_ok(creator, description="旧", dueTime=1, priority=20)
    emu.advance_clock(5)
    body = {
        "subject": "用户改过的标题",
        "description": None,
        "dueTime": 1796140799000,
        "priority": 40,
        "appUrl": "https://changed.example.com/app",
    }
    task = ok(todo.control("POST", f"todo/tasks/{created['id']}/modify", body))["task"]
    assert task["subject"] == "用户改过的标题" and task["description"] is None
    detail = todo.get(creator, created["id"]).json()
    assert "description" not in detail
    assert (detail["dueTime"], detail["priority"]) == (1796140799000, 40)
    assert detail["detailUrl"] == {
        "appUrl": "https://changed.example.com/app",
        "pcUrl": created["detailUrl"]["pcUrl"],
    }
    assert detail["modifiedTime"] > created["modifiedTime"]
    (card,) = todo.query(creator).json()["todoCards"]
    assert (card["subject"], card["priority"]) == ("用户改过的标题", 40)


@pytest.mark.parametrize(
    "body",
    [{"done": True}, {"subject": ""}, {"subject": None}, {"dueTime": "x"}, {"pcUrl": 3}],
)
def test_modify_rejects_bad_changes(todo, people, body):
    task_id = todo.create_ok(people["hr-bot01"])["id"]
    assert todo.control("POST", f"todo/tasks/{task_id}/modify", body).status_code == 400


def test_modify_of_an_unknown_task_is_404(todo):
    assert todo.control("POST", "todo/tasks/OPJ-nope/modify", {"subject": "x"}).status_code == 404


def test_delete_as_a_user(todo, emu, people):
    creator = people["hr-bot01"]
    task_id = todo.create_ok(creator, sourceId="s-1")["id"]
    assert ok(todo.control("DELETE", f"todo/tasks/{task_id}")) == {"ok": True}
    assert emu.todos() == []
    assert todo.get(creator, task_id).status_code == 400
    assert todo.create(creator, sourceId="s-1").status_code == 400  # still used
    assert todo.control("DELETE", f"todo/tasks/{task_id}").status_code == 404


def test_unknown_todo_control_route(todo):
    assert todo.control("PUT", "todo/tasks/x/complete").status_code == 404


def test_in_process_helpers(todo, emu, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    task_id = todo.create_ok(creator, executorIds=[alice])["id"]
    assert emu.complete_todo(task_id, alice)["done"] is True
    assert emu.modify_todo(task_id, subject="新")["subject"] == "新"
    with pytest.raises(ValueError):
        emu.modify_todo(task_id, colour="red")
    with pytest.raises(ValueError):
        emu.complete_todo(task_id, people["bob02"])
    emu.delete_todo(task_id)
    for call in (emu.complete_todo, emu.delete_todo):
        with pytest.raises(KeyError):
            call(task_id)
    with pytest.raises(KeyError):
        emu.modify_todo(task_id, subject="x")


# The user directory


def test_users_route_sets_members_and_unionids(todo, emu):
    body = {"users": ["alice01", "hr-bot01"], "unionIds": {"alice01": "PUoiinWIpalice"}}
    assert ok(todo.control("POST", "users", body)) == {"ok": True}
    assert ok(todo.control("GET", "users")) == {
        "users": ["alice01", "hr-bot01"],
        "unionIds": {"alice01": "PUoiinWIpalice"},
    }
    assert ok(todo.control("GET", "users/alice01")) == {
        "userid": "alice01",
        "unionId": "PUoiinWIpalice",
    }
    assert todo.control("GET", "users/bob02").status_code == 404
    assert todo.union_id("alice01") == "PUoiinWIpalice"
    creator = todo.union_id("hr-bot01")
    assert todo.create(creator, executorIds=["PUoiinWIpalice"]).status_code == 200
    ok(todo.control("POST", "users", {"users": None}))  # unionIds stay
    assert todo.union_id("alice01") == "PUoiinWIpalice"
    assert todo.union_id("bob02") == derived_union_id("bob02")


def test_users_route_rejects_bad_bodies(todo):
    for body in ({"users": None, "unionIds": ["x"]}, {"users": None, "colour": 1}):
        assert todo.control("POST", "users", body).status_code == 400
    clash = {"users": None, "unionIds": {"a": "same", "b": "same"}}
    assert todo.control("POST", "users", clash).status_code == 400


def test_reset_forgets_tasks_and_directory_changes(todo, emu, people):
    todo.create_ok(people["hr-bot01"], sourceId="s-1")
    emu.set_users(None, {"alice01": "custom"})
    ok(todo.control("POST", "reset"))
    assert emu.todos() == [] and emu.union_id("alice01") == derived_union_id("alice01")
    assert emu.issued_tokens() == []
    todo.use_app(todo.appkey, todo.appsecret)  # forget the dropped token
    assert todo.create(people["hr-bot01"], sourceId="s-1").status_code == 200


# The clock


def test_clock_route_moves_the_v1_side(todo, emu, people):
    creator = people["hr-bot01"]
    token = todo.token()
    task_id = todo.create_ok(creator)["id"]
    todo.update(creator, task_id, {"done": True})
    ok(todo.control("POST", "clock", {"advance": 181 * 86400}))
    assert todo.query(creator, token=token).status_code == 400  # the token expired
    assert todo.cards(creator, isDone=True) == []  # finished more than 180 days ago
    created = todo.create_ok(creator)
    assert created["createdTime"] == pytest.approx(emu.now() * 1000, abs=5000)


# The data file


def test_data_file_keeps_tasks_and_used_source_ids(tmp_path):
    path = tmp_path / "emulator.json"
    config = EmulatorConfig(qps=0, data_path=path)
    with Emulator(config) as first:
        creator, alice = first.union_id("hr-bot01"), first.union_id("alice01")
        todo = TodoApi(first)
        kept = todo.create_ok(
            creator, sourceId="s-kept", executorIds=[alice], dueTime=5, priority=10
        )
        gone = todo.create_ok(creator, sourceId="s-gone")
        todo.delete(creator, gone["id"])
        first.complete_todo(kept["id"], alice)
        todo.close()
        before = first.todos()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert [t["id"] for t in saved["todo"]["tasks"]] == [kept["id"]]
    with Emulator(config) as second:
        assert second.todos() == before
        todo = TodoApi(second)
        detail = todo.get(creator, kept["id"]).json()
        assert detail["done"] is True and detail["executorIds"] == [alice]
        again = todo.create(creator, sourceId="s-gone")
        assert again.json()["message"] == f"task exist, taskId is {gone['id']}"
        assert todo.create_ok(creator)["id"] not in (kept["id"], gone["id"])
        todo.close()


def test_data_files_without_a_todo_part_still_load(tmp_path):
    path = tmp_path / "emulator.json"
    legacy = {"format": 1, "seq": 0, "records": [], "biz_ids": {}, "adds": {}, "months": {}}
    path.write_text(json.dumps(legacy), encoding="utf-8")
    with Emulator(EmulatorConfig(qps=0, data_path=path)) as emu:
        assert emu.todos() == []
