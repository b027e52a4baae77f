"""The v1.0 rows of SPEC.md's plan table: what the planner makes of each case with
``api: todo``, where to-dos are edited in place, reopened and deleted."""

from __future__ import annotations

from typing import Any

from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import State
from dingsync.model import TaskFile
from dingsync.planner import FieldChange
from dingsync.planner import make_plan
from tests.unit.test_planner import managed
from tests.unit.test_planner import state_of

DUE = 1_796_486_399_000  # 2026-12-05 23:59:59 China time


def content(title: str = "领取笔记本电脑", **kw: Any) -> Content:
    base: dict[str, Any] = {
        "url": "https://intranet.example.com/it",
        "description": "到 IT 服务台领取",
        "due_time": DUE,
        "priority": 30,
        "creator_userid": "hrbot01",
    }
    base.update(kw)
    return Content(title=title, **base)


def desired(key: str = "laptop", **kw: Any) -> DesiredRecord:
    return DesiredRecord(key=key, userid="alice01", content=kw.pop("content", content()), **kw)


def todo_file(*records: DesiredRecord, on_removal: str = "complete") -> TaskFile:
    return TaskFile(
        path="tasks.yaml",
        sha256="0" * 64,
        records=tuple(records),
        api="todo",
        on_removal=on_removal,  # type: ignore[arg-type]
    )


def actions(plan) -> list[tuple[str, str]]:
    return [(c.action, c.address) for c in plan.changes]


def test_a_title_description_or_due_time_change_is_an_update_in_place():
    old = desired()
    new = desired(content=content("领取笔记本电脑和显示器", description="到三楼", due_time=DUE + 1))
    plan = make_plan(todo_file(new), state_of(managed(old)))
    assert actions(plan) == [("update", "laptop@alice01")]
    assert plan.updates[0].changes == (
        FieldChange("title", "领取笔记本电脑", "领取笔记本电脑和显示器"),
        FieldChange("description", "到 IT 服务台领取", "到三楼"),
        FieldChange("due_time", DUE, DUE + 1),
    )
    assert plan.summary() == "Plan: 1 to update."


def test_a_create_only_field_makes_it_a_replace():
    old = desired()
    for changed in (
        content(url="https://intranet.example.com/it/2"),
        content(pc_url="https://intranet.example.com/pc"),
        content(priority=40),
        content(creator_userid="hrbot02"),  # creatorId is fixed at create
        content("新标题", priority=40),  # one create-only field is enough
    ):
        plan = make_plan(todo_file(desired(content=changed)), state_of(managed(old)))
        assert actions(plan) == [("replace", "laptop@alice01")], changed


def test_ding_is_sent_with_a_create_and_never_compared():
    old = desired()
    plan = make_plan(todo_file(desired(content=content(ding=True))), state_of(managed(old)))
    assert plan.changes == ()
    assert plan.summary() == "No changes."


def test_a_removed_address_is_completed_or_deleted_as_on_removal_says():
    state = state_of(managed(desired("gone"), "task9"))
    assert actions(make_plan(todo_file(), state)) == [("complete", "gone@alice01")]
    deleting = make_plan(todo_file(on_removal="delete"), state)
    assert actions(deleting) == [("delete", "gone@alice01")]
    assert deleting.deletes[0].reason == "removed"
    assert deleting.summary() == "Plan: 1 to delete."


def test_status_done_completes_even_with_on_removal_delete():
    d = desired(status="done")
    plan = make_plan(todo_file(d, on_removal="delete"), state_of(managed(desired())))
    assert actions(plan) == [("complete", "laptop@alice01")]


def test_reopened_in_the_file_after_dingsync_completed_it_is_a_reopen():
    done = managed(desired(), status="done", completed_by="dingsync")
    plan = make_plan(todo_file(desired()), state_of(done))
    assert actions(plan) == [("reopen", "laptop@alice01")]
    assert plan.reopens[0].changes == ()
    edited = make_plan(todo_file(desired(content=content("新标题"))), state_of(done))
    assert actions(edited) == [("reopen", "laptop@alice01")]
    assert [fc.field for fc in edited.reopens[0].changes] == ["title"]
    # A create-only field changed too: a new to-do (the done one stays done).
    moved = make_plan(todo_file(desired(content=content(priority=10))), state_of(done))
    assert [(c.action, c.reason) for c in moved.creates] == [("create", "reopened")]


def test_a_todo_its_assignee_completed_is_left_alone():
    done = managed(desired(), status="done", completed_by="assignee")
    plan = make_plan(todo_file(desired(content=content("新标题"))), state_of(done))
    assert plan.changes == ()


def test_the_old_todo_of_a_replace_is_deleted_not_completed():
    old = managed(desired(), "task-old")
    state = State(lineage="L", retiring={"task-old": old})
    plan = make_plan(todo_file(), state)
    assert [(c.action, c.reason) for c in plan.changes] == [("delete", "replaced")]


def test_updates_and_reopens_do_not_count_toward_the_safety_threshold():
    olds = [desired(f"t{i}") for i in range(10)]
    news = [desired(f"t{i}", content=content("改了标题")) for i in range(10)]
    plan = make_plan(
        todo_file(*news), state_of(*(managed(d, f"task{i}") for i, d in enumerate(olds)))
    )
    assert len(plan.updates) == 10
    assert plan.unsafe_reason() is None
    deleting = make_plan(
        todo_file(on_removal="delete"),
        state_of(*(managed(d, f"task{i}") for i, d in enumerate(olds))),
    )
    assert "delete" in (deleting.unsafe_reason() or "")


def test_no_same_day_note_with_the_v1_api():
    old = managed(
        desired("old"), "task1", created_at="2026-12-01T02:00:00Z", create_time_ms=1_796_090_400_000
    )
    plan = make_plan(todo_file(desired("new")), state_of(old), today="2026-12-01")
    assert plan.notes == ()


def test_an_interrupted_create_that_differs_only_in_ding_is_resumed():
    d = desired(content=content(ding=True))
    pending = PendingCreate(
        key=d.key,
        userid=d.userid,
        biz_id="dingsync-x-0",
        generation=0,
        content=content(ding=False),
        fingerprint=content(ding=False).fingerprint(),
        create_time_ms=1,
        sent_at="2026-11-28T00:00:00Z",
    )
    plan = make_plan(todo_file(d), State(lineage="L", pending={d.address: pending}))
    assert [(c.action, c.reason) for c in plan.changes] == [("create", "resume")]
    assert "sourceId" in plan.notes[0]
