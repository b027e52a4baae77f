"""The v1.0 list, ``org/tasks/query``: paging by nextToken and what it can see.

See docs/dingtalk-todo.md §10 (the emulator's reading: §13.5).
"""

from __future__ import annotations

import pytest

from tests.emulator.conftest import error_of

DAY = 86400


@pytest.fixture
def small_pages(start_emulator, connect_todo):
    emu = start_emulator(todo_page_size=3)
    return emu, connect_todo(emu)


def test_pages_follow_next_token_newest_first(small_pages):
    emu, todo = small_pages
    creator = emu.union_id("hr-bot01")
    ids = [todo.create_ok(creator, subject=f"任务 {n}")["id"] for n in range(7)]
    first = todo.query(creator)
    assert first.status_code == 200
    assert first.json()["nextToken"] == "3"
    assert [c["taskId"] for c in first.json()["todoCards"]] == ids[::-1][:3]
    second = todo.query(creator, nextToken="3").json()
    assert [c["taskId"] for c in second["todoCards"]] == ids[::-1][3:6]
    last = todo.query(creator, nextToken=second["nextToken"]).json()
    assert [c["taskId"] for c in last["todoCards"]] == [ids[0]]
    assert "nextToken" not in last
    assert [c["taskId"] for c in todo.cards(creator)] == ids[::-1]


@pytest.mark.parametrize("first", [None, "", "0"])
def test_first_page_without_a_token(small_pages, first):
    emu, todo = small_pages
    creator = emu.union_id("hr-bot01")
    todo.create_ok(creator)
    body = {} if first is None else {"nextToken": first}
    assert len(todo.query(creator, **body).json()["todoCards"]) == 1


def test_an_empty_list(todo, people):
    assert todo.query(people["hr-bot01"]).json() == {"todoCards": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"nextToken": "abc"}, "nextToken is invalid"),
        ({"nextToken": "-3"}, "nextToken is invalid"),
        ({"nextToken": 3}, "nextToken is invalid"),
        ({"isDone": "false"}, "isDone is invalid"),
        ({"roleTypes": ["creator"]}, "roleTypes is invalid"),
        ({"roleTypes": [["owner"]]}, "roleTypes is invalid"),
        ({"todoType": "NOTE"}, "todoType is invalid"),
    ],
)
def test_query_field_rules(todo, people, body, message):
    response = todo.query(people["hr-bot01"], **body)
    error_of(response, 400, "todo.orgTaskQuery.paramError", message)


def test_cards_carry_the_documented_fields_only(todo, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    created = todo.create_ok(
        creator,
        sourceId="s-1",
        description="不在卡片上",
        dueTime=1796140799000,
        priority=30,
        executorIds=[alice],
    )
    (card,) = todo.query(creator).json()["todoCards"]
    assert card == {
        "taskId": created["id"],
        "subject": created["subject"],
        "dueTime": 1796140799000,
        "detailUrl": created["detailUrl"],
        "priority": 30,
        "createdTime": created["createdTime"],
        "modifiedTime": created["modifiedTime"],
        "creatorId": creator,
        "sourceId": "s-1",
        "bizTag": created["bizTag"],
        "isDone": False,
        "todoType": "TODO",
    }


def test_is_done_picks_open_or_done_and_defaults_to_open(todo, people):
    creator = people["hr-bot01"]
    open_id = todo.create_ok(creator, subject="开")["id"]
    done_id = todo.create_ok(creator, subject="完")["id"]
    todo.update(creator, done_id, {"done": True})
    assert [c["taskId"] for c in todo.cards(creator)] == [open_id]
    assert [c["taskId"] for c in todo.cards(creator, isDone=False)] == [open_id]
    done = todo.cards(creator, isDone=True)
    assert [(c["taskId"], c["isDone"]) for c in done] == [(done_id, True)]


def test_role_types_or_of_ands(todo, people):
    creator, alice, bob = people["hr-bot01"], people["alice01"], people["bob02"]
    mine = todo.create_ok(creator, subject="hr 的")["id"]
    alices = todo.create_ok(alice, subject="alice 建, hr 执行", executorIds=[creator])["id"]
    both = todo.create_ok(
        bob, subject="bob 建, hr 执行和参与", executorIds=[creator], participantIds=[creator]
    )["id"]
    todo.create_ok(bob, subject="与 hr 无关", executorIds=[alice])

    def listed(**body):
        return {c["taskId"] for c in todo.cards(creator, **body)}

    assert listed() == {mine, alices, both}
    assert listed(roleTypes=[["creator"]]) == {mine}
    assert listed(roleTypes=[["executor"]]) == {alices, both}
    assert listed(roleTypes=[["executor", "participant"]]) == {both}
    assert listed(roleTypes=[["creator"], ["participant"]]) == {mine, both}


def test_only_show_executor_hides_a_task_from_its_creator(todo, people):
    creator, alice = people["hr-bot01"], people["alice01"]
    task_id = todo.create_ok(creator, executorIds=[alice], isOnlyShowExecutor=True)["id"]
    assert todo.cards(creator, roleTypes=[["creator"]]) == []
    assert [c["taskId"] for c in todo.cards(alice)] == [task_id]
    assert todo.get(creator, task_id).status_code == 200  # a get still finds it


def test_todo_type_filter(todo, people):
    creator = people["hr-bot01"]
    read_id = todo.create_ok(creator, todoType="READ")["id"]
    todo_id = todo.create_ok(creator)["id"]
    assert [c["taskId"] for c in todo.cards(creator, todoType="READ")] == [read_id]
    assert [c["taskId"] for c in todo.cards(creator, todoType="TODO")] == [todo_id]
    assert len(todo.cards(creator)) == 2


def test_tasks_without_a_detail_url_are_not_listed(todo, emu, people):
    creator = people["hr-bot01"]
    kept = todo.create_ok(creator, subject="留")["id"]
    cleared = todo.create_ok(creator, subject="清")["id"]
    emu.modify_todo(cleared, appUrl=None, pcUrl=None)
    assert [c["taskId"] for c in todo.cards(creator)] == [kept]
    assert "detailUrl" not in todo.get(creator, cleared).json()
    emu.modify_todo(cleared, pcUrl="https://back.example.com")
    assert {c["taskId"] for c in todo.cards(creator)} == {kept, cleared}


def test_done_tasks_leave_the_list_180_days_after_completion(todo, emu, people):
    creator = people["hr-bot01"]
    old = todo.create_ok(creator, subject="旧")["id"]
    todo.update(creator, old, {"done": True})
    emu.advance_clock(100 * DAY)
    recent = todo.create_ok(creator, subject="近")["id"]
    todo.update(creator, recent, {"done": True})
    still_open = todo.create_ok(creator, subject="开")["id"]
    emu.advance_clock(80 * DAY - 60)
    assert {c["taskId"] for c in todo.cards(creator, isDone=True)} == {old, recent}
    emu.advance_clock(120)  # old: finished 180 days and a minute ago
    assert [c["taskId"] for c in todo.cards(creator, isDone=True)] == [recent]
    assert todo.get(creator, old).json()["done"] is True  # a get by id still finds it
    emu.advance_clock(1000 * DAY)
    assert [c["taskId"] for c in todo.cards(creator)] == [still_open]  # open ones stay
    # Reopening brings an old one back.
    todo.update(creator, old, {"done": False})
    assert {c["taskId"] for c in todo.cards(creator)} == {still_open, old}
