"""v1.0 create, get, get by sourceId, update, executor status and delete.

See docs/dingtalk-todo.md §5–§9 and §11 (the emulator's readings: §13).
"""

from __future__ import annotations

import re

import pytest

from tests.emulator.conftest import APP_URL
from tests.emulator.conftest import PC_URL
from tests.emulator.conftest import error_of

DUE = 1796140799000  # 2026-12-01 23:59:59 in China


def test_create_answers_the_documented_fields(todo, emu, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    before = int(emu.now() * 1000)
    task = todo.create_ok(
        creator,
        sourceId="dingsync-onboarding:laptop@alice01:1",
        creatorId=creator,
        description="到三楼 IT 服务台领取并签收",
        dueTime=DUE,
        priority=30,
        executorIds=[alice],
        participantIds=[creator],
        isOnlyShowExecutor=False,
        notifyConfigs={"dingNotify": "1", "sendTodoApn": "true"},
        contentFieldList=[{"fieldKey": "place", "fieldValue": "三楼"}],
    )
    assert re.fullmatch(r"OPJ[0-9a-f]{24}", task["id"])
    assert re.fullmatch(r"[0-9A-F-]{36}", task["requestId"])
    assert task["createdTime"] == task["modifiedTime"] >= before
    assert task["bizTag"] == task["source"] and task["bizTag"].startswith("app_")
    del task["id"], task["requestId"], task["createdTime"], task["modifiedTime"]
    del task["bizTag"], task["source"]
    assert task == {
        "subject": "领取笔记本电脑",
        "description": "到三楼 IT 服务台领取并签收",
        "dueTime": DUE,
        "done": False,
        "executorIds": [alice],
        "participantIds": [creator],
        "detailUrl": {"appUrl": APP_URL, "pcUrl": PC_URL},
        "sourceId": "dingsync-onboarding:laptop@alice01:1",
        "creatorId": creator,
        "modifierId": creator,
        "contentFieldList": [{"fieldKey": "place", "fieldValue": "三楼"}],
        "isOnlyShowExecutor": False,
        "priority": 30,
        "notifyConfigs": {"dingNotify": "1"},
    }


def test_a_minimal_create_leaves_absent_fields_out(todo, people):
    task = todo.create_ok(people["hr-bot01"])
    assert "sourceId" not in task and "dueTime" not in task and "priority" not in task
    assert "finishTime" not in task and "description" not in task
    assert task["executorIds"] == [] and task["done"] is False


def _long(n: int) -> str:
    return "任" * n


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subject": None}, "subject is invalid"),
        ({"subject": ""}, "subject is invalid"),
        ({"subject": 5}, "subject is invalid"),
        ({"subject": _long(1025)}, "subject is oversize"),
        ({"description": _long(4097)}, "description is oversize"),
        ({"detailUrl": None}, "detailUrl is required"),
        ({"detailUrl": "https://x"}, "detailUrl is invalid"),
        ({"detailUrl": {"appUrl": APP_URL}}, "detailUrl.pcUrl is required"),
        ({"detailUrl": {"appUrl": "", "pcUrl": PC_URL}}, "detailUrl.appUrl is required"),
        (
            {"detailUrl": {"appUrl": "https://x/" + "界" * 339, "pcUrl": PC_URL}},
            "detailUrl.appUrl is oversize",
        ),
        ({"priority": 25}, "priority is invalid"),
        ({"priority": "20"}, "priority is invalid"),
        ({"dueTime": -1}, "dueTime is invalid"),
        ({"dueTime": "1796140799000"}, "dueTime is invalid"),
        ({"dueTime": 1.5}, "dueTime is invalid"),
        ({"executorIds": "alice"}, "executors is invalid"),
        ({"todoType": "NOTE"}, "todoType is invalid"),
        ({"isOnlyShowExecutor": "true"}, "isOnlyShowExecutor is invalid"),
        ({"notifyConfigs": {"dingNotify": 1}}, "notifyConfigs.dingNotify is invalid"),
        ({"contentFieldList": [{"fieldKey": "k"}]}, "contentFieldList is invalid"),
        ({"sourceId": 7}, "sourceId is invalid"),
    ],
)
def test_create_field_rules(todo, emu, people, fields, message):
    response = todo.create(people["hr-bot01"], **fields)
    error_of(response, 400, "todo.taskCreate.paramError", message)
    assert emu.todos() == []


def test_create_limits_are_inclusive(todo, people):
    creator = people["hr-bot01"]
    url = "https://x/" + "界" * 338  # 10 + 1014 bytes = 1024
    task = todo.create_ok(
        creator,
        subject=_long(1024),
        description=_long(4096),
        detailUrl={"appUrl": url, "pcUrl": url},
        priority=40,
        dueTime=0,
    )
    assert len(task["subject"]) == 1024 and task["detailUrl"]["appUrl"] == url


def test_executor_and_participant_caps(todo, emu, people):
    creator = people["hr-bot01"]
    hundred = [emu.union_id(f"user{n:03}") for n in range(101)]
    assert todo.create(creator, executorIds=hundred[:100]).status_code == 200
    too_many = todo.create(creator, executorIds=hundred)
    error_of(too_many, 400, "todo.taskCreate.paramError", "executors is oversize")
    too_many = todo.create(creator, participantIds=hundred)
    error_of(too_many, 400, "todo.taskCreate.paramError", "participants is oversize")


def test_userids_in_place_of_unionids_are_refused(todo, emu, people):
    creator = people["hr-bot01"]
    error_of(todo.create("hr-bot01"), 400, "todo.taskCreate.paramError", "unionId is invalid")
    response = todo.create(creator, executorIds=["alice01"])
    error_of(response, 400, "todo.taskCreate.paramError", "executorIds is invalid")
    response = todo.create(creator, participantIds=["bob02"])
    error_of(response, 400, "todo.taskCreate.paramError", "participantIds is invalid")
    assert emu.todos() == []


def test_non_members_are_refused_once_members_are_listed(todo, emu, people):
    emu.set_users({"hr-bot01", "alice01"})
    creator = people["hr-bot01"]
    assert todo.create(creator, executorIds=[people["alice01"]]).status_code == 200
    response = todo.create(creator, executorIds=[people["bob02"]])
    error_of(response, 400, "todo.taskCreate.paramError", "executorIds is invalid")


def test_creator_and_operator_must_be_the_path_user(todo, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    response = todo.create(creator, creatorId=alice)
    error_of(response, 400, "todo.taskCreate.paramError", "creatorId is invalid")
    path = f"todo/users/{creator}/tasks"
    body = {"subject": "x", "detailUrl": {"appUrl": APP_URL, "pcUrl": PC_URL}}
    response = todo.request("POST", path, body, params={"operatorId": alice})
    error_of(response, 400, "todo.taskCreate.paramError", "operatorId is invalid")
    assert todo.request("POST", path, body).status_code == 200  # operatorId is optional


def test_a_body_that_is_not_a_json_object(todo, people):
    path = f"todo/users/{people['hr-bot01']}/tasks"
    for raw in (b"", b"{", b"[1]"):
        response = todo.request("POST", path, data=raw)
        error_of(response, 400, "todo.taskCreate.paramError", "todo.taskCreate.paramError")


# sourceId


def test_a_repeated_source_id_is_task_exist_naming_the_task(todo, emu, people):
    creator = people["hr-bot01"]
    first = todo.create_ok(creator, sourceId="dingsync-a:1")
    again = todo.create(creator, sourceId="dingsync-a:1", subject="另一个标题")
    body = error_of(again, 400, "todo.taskCreate.paramError")
    assert body["message"] == f"task exist, taskId is {first['id']}"
    assert body["message"].startswith("task exist")
    assert [t["id"] for t in emu.todos()] == [first["id"]]


def test_source_ids_are_unique_across_apps_and_creators(start_emulator, connect_todo):
    emu = start_emulator(apps={"a": "sa", "b": "sb"})
    one, two = connect_todo(emu), connect_todo(emu)
    one.use_app("a", "sa")
    two.use_app("b", "sb")
    first = one.create_ok(emu.union_id("hr-bot01"), sourceId="s-1")
    response = two.create(emu.union_id("other-bot"), sourceId="s-1")
    assert error_of(response, 400, "todo.taskCreate.paramError")["message"].endswith(first["id"])


def test_a_deleted_tasks_source_id_stays_used(todo, people):
    creator = people["hr-bot01"]
    task = todo.create_ok(creator, sourceId="s-1")
    assert todo.delete(creator, task["id"]).status_code == 200
    again = todo.create(creator, sourceId="s-1")
    assert error_of(again, 400, "todo.taskCreate.paramError")["message"].endswith(task["id"])
    error_of(todo.get_by_source(creator, "s-1"), 400, "todo.taskGet.paramError", "task not exist")


def test_tasks_without_a_source_id_never_clash(todo, emu, people):
    creator = people["hr-bot01"]
    todo.create_ok(creator)
    todo.create_ok(creator, sourceId="")
    assert [t["sourceId"] for t in emu.todos()] == [None, None]


# get and get by sourceId


def test_get_by_id_and_by_source_id(todo, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    created = todo.create_ok(creator, sourceId="dingsync-ns:key@alice01:2", executorIds=[alice])
    by_id = todo.get(creator, created["id"])
    assert by_id.status_code == 200
    detail = by_id.json()
    by_source = todo.get_by_source(creator, "dingsync-ns:key@alice01:2").json()
    for answer in (detail, by_source):
        assert answer["id"] == created["id"]
        assert answer["tenantType"] == "org" and answer["tenantId"]
        assert "contentFieldList" not in answer and "notifyConfigs" not in answer
        assert answer["requestId"] != created["requestId"]
    same = {k: v for k, v in created.items() if k not in ("requestId", "contentFieldList")}
    assert {k: detail[k] for k in same} == same
    # The assignee sees it too.
    assert todo.get(alice, created["id"]).json()["id"] == created["id"]


def test_source_ids_are_percent_decoded_in_the_path(todo, people):
    creator = people["hr-bot01"]
    created = todo.create_ok(creator, sourceId="a/b c:1")
    assert todo.get_by_source(creator, "a/b c:1").json()["id"] == created["id"]


def test_get_of_unknown_or_foreign_tasks_is_task_not_exist(todo, people):
    creator, bob = people["hr-bot01"], people["bob02"]
    created = todo.create_ok(creator, sourceId="s-1")
    for response in (
        todo.get(creator, "OPJ" + "0" * 24),
        todo.get_by_source(creator, "s-unknown"),
        todo.get(bob, created["id"]),  # bob has no role in it
        todo.get_by_source(bob, "s-1"),
    ):
        error_of(response, 400, "todo.taskGet.paramError", "task not exist")


# update


def test_update_changes_only_the_fields_sent(todo, emu, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    created = todo.create_ok(
        creator, description="旧描述", dueTime=DUE, priority=20, executorIds=[alice]
    )
    emu.advance_clock(60)
    response = todo.update(creator, created["id"], {"subject": "新标题"})
    assert response.status_code == 200 and response.json() == {"result": True}
    task = todo.get(creator, created["id"]).json()
    assert task["subject"] == "新标题"
    assert (task["description"], task["dueTime"], task["priority"]) == ("旧描述", DUE, 20)
    assert task["executorIds"] == [alice]
    assert task["modifiedTime"] >= created["modifiedTime"] + 60_000
    todo.update(creator, created["id"], {"description": "", "dueTime": DUE + 1})
    task = todo.get(creator, created["id"]).json()
    assert (task["subject"], task["description"], task["dueTime"]) == ("新标题", "", DUE + 1)


def test_update_ignores_create_only_fields(todo, people):
    creator = people["hr-bot01"]
    created = todo.create_ok(creator, priority=20, sourceId="s-1")
    body = {"priority": 40, "detailUrl": {"appUrl": "https://new", "pcUrl": "https://new"}}
    assert todo.update(creator, created["id"], {**body, "sourceId": "s-2"}).status_code == 200
    task = todo.get(creator, created["id"]).json()
    assert task["priority"] == 20 and task["sourceId"] == "s-1"
    assert task["detailUrl"] == created["detailUrl"]


def test_update_replaces_executors_and_participants(todo, people):
    creator, alice, bob = people["hr-bot01"], people["alice01"], people["bob02"]
    created = todo.create_ok(creator, executorIds=[alice])
    body = {"executorIds": [bob], "participantIds": [alice]}
    assert todo.update(creator, created["id"], body).status_code == 200
    task = todo.get(creator, created["id"]).json()
    assert (task["executorIds"], task["participantIds"]) == ([bob], [alice])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"subject": ""}, "subject is invalid"),
        ({"subject": _long(1025)}, "subject is oversize"),
        ({"description": _long(4097)}, "description is oversize"),
        ({"dueTime": "soon"}, "dueTime is invalid"),
        ({"done": "true"}, "done is invalid"),
        ({"executorIds": ["alice01"]}, "executorIds is invalid"),
    ],
)
def test_update_field_rules(todo, people, body, message):
    creator = people["hr-bot01"]
    created = todo.create_ok(creator)
    error_of(todo.update(creator, created["id"], body), 400, "todo.taskUpdate.paramError", message)
    assert todo.get(creator, created["id"]).json()["subject"] == created["subject"]


def test_done_and_reopen(todo, emu, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    created = todo.create_ok(creator, executorIds=[alice])
    assert todo.update(creator, created["id"], {"done": True}).status_code == 200
    task = todo.get(creator, created["id"]).json()
    assert task["done"] is True
    assert task["finishTime"] == pytest.approx(emu.now() * 1000, abs=5000)
    assert emu.todos()[0]["executorStatus"] == {alice: True}
    assert todo.update(creator, created["id"], {"done": False}).status_code == 200
    task = todo.get(creator, created["id"]).json()
    assert task["done"] is False and "finishTime" not in task
    assert emu.todos()[0]["executorStatus"] == {alice: False}


def test_update_of_an_unknown_task_is_task_not_exist(todo, people):
    response = todo.update(people["hr-bot01"], "OPJ-nope", {"done": True})
    error_of(response, 400, "todo.taskUpdate.paramError", "task not exist")


def test_only_the_creating_app_may_change_a_task(start_emulator, connect_todo):
    emu = start_emulator(apps={"a": "sa", "b": "sb"})
    one, two = connect_todo(emu), connect_todo(emu)
    one.use_app("a", "sa")
    two.use_app("b", "sb")
    creator, alice = emu.union_id("hr-bot01"), emu.union_id("alice01")
    task_id = one.create_ok(creator, executorIds=[alice])["id"]
    foreign = "task not belong to bizTag"
    error_of(
        two.update(creator, task_id, {"done": True}), 400, "todo.taskUpdate.paramError", foreign
    )
    statuses = [{"id": alice, "isDone": True}]
    response = two.executor_status(creator, task_id, statuses)
    error_of(response, 400, "todo.taskExecutorStatusUpdate.paramError", foreign)
    error_of(two.delete(creator, task_id), 400, "todo.taskDelete.paramError", foreign)
    assert two.get(creator, task_id).status_code == 200  # reading is allowed
    assert emu.todos()[0]["done"] is False


def test_participants_and_strangers_may_not_change_a_task(todo, people):
    creator, alice, bob = people["hr-bot01"], people["alice01"], people["bob02"]
    task_id = todo.create_ok(creator, executorIds=[alice], participantIds=[bob])["id"]
    denied = "operator has no permission"
    error_of(todo.update(bob, task_id, {"done": True}), 400, "todo.taskUpdate.paramError", denied)
    error_of(todo.delete(alice, task_id), 400, "todo.taskDelete.paramError", denied)
    assert todo.update(alice, task_id, {"done": True}).status_code == 200  # an executor may


# executor status


def test_executor_status_completes_the_task_when_every_executor_is_done(todo, people):
    creator, alice, bob = people["hr-bot01"], people["alice01"], people["bob02"]
    task_id = todo.create_ok(creator, executorIds=[alice, bob])["id"]
    response = todo.executor_status(creator, task_id, [{"id": alice, "isDone": True}])
    assert response.status_code == 200 and response.json() == {"result": True}
    assert todo.get(creator, task_id).json()["done"] is False
    todo.executor_status(creator, task_id, [{"id": bob, "isDone": True}])
    assert todo.get(creator, task_id).json()["done"] is True
    todo.executor_status(creator, task_id, [{"id": bob, "isDone": False}])
    assert todo.get(creator, task_id).json()["done"] is False


@pytest.mark.parametrize(
    ("statuses", "message"),
    [
        ([], "executorStatusList is invalid"),
        ([{"id": "x"}], "executorStatusList is invalid"),
        ([{"isDone": True}], "executorStatusList is invalid"),
        (None, "executorStatusList is invalid"),
    ],
)
def test_executor_status_field_rules(todo, people, statuses, message):
    creator = people["hr-bot01"]
    task_id = todo.create_ok(creator, executorIds=[people["alice01"]])["id"]
    response = todo.executor_status(creator, task_id, statuses)
    error_of(response, 400, "todo.taskExecutorStatusUpdate.paramError", message)


def test_executor_status_of_a_non_executor_or_unknown_task(todo, people):
    creator = people["hr-bot01"]
    task_id = todo.create_ok(creator, executorIds=[people["alice01"]])["id"]
    code = "todo.taskExecutorStatusUpdate.paramError"
    statuses = [{"id": people["bob02"], "isDone": True}]
    error_of(todo.executor_status(creator, task_id, statuses), 400, code, "executor not exist")
    error_of(todo.executor_status(creator, "OPJ-nope", statuses), 400, code, "task not exist")


# delete


def test_delete_answers_result_and_request_id(todo, emu, people):
    creator = people["hr-bot01"]
    task_id = todo.create_ok(creator)["id"]
    response = todo.delete(creator, task_id)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["result", "requestId"] and body["result"] is True
    assert emu.todos() == []
    error_of(todo.get(creator, task_id), 400, "todo.taskGet.paramError", "task not exist")
    error_of(todo.delete(creator, task_id), 400, "todo.taskDelete.paramError", "task not exist")
    response = todo.update(creator, task_id, {"done": True})
    error_of(response, 400, "todo.taskUpdate.paramError", "task not exist")


# routing


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "todo/users/u/tasks"),
        ("PATCH", "todo/users/u/tasks/t"),
        ("POST", "todo/users/u/tasks/t"),
        ("GET", "todo/users/u/org/tasks/query"),
        ("POST", "todo/users//tasks"),
        ("POST", "todo/users/u/tasks/"),
        ("GET", "calendar/users/u/events"),
    ],
)
def test_unknown_v1_routes_are_404_before_the_token_check(todo, method, path):
    response = todo.request(method, path, {}, token="")
    body = error_of(response, 404, "InvalidAction.NotFound")
    assert "please check your url and method" in body["message"]


def test_v1_calls_are_counted_by_name(todo, emu, people):
    creator = people["hr-bot01"]
    task_id = todo.create_ok(creator, sourceId="s-1")["id"]
    todo.get(creator, task_id)
    todo.get_by_source(creator, "s-1")
    todo.update(creator, task_id, {"done": True})
    todo.executor_status(creator, task_id, [])
    todo.query(creator)
    todo.delete(creator, task_id)
    todo.request("GET", "nowhere")
    counts = {name: n for name, n in emu.call_counts().items() if n}
    assert counts == {
        "oauth2/accessToken": 1,
        "todo/create": 1,
        "todo/get": 1,
        "todo/getBySourceId": 1,
        "todo/update": 1,
        "todo/executorStatus": 1,
        "todo/orgTasksQuery": 1,
        "todo/delete": 1,
        "other": 1,
    }
