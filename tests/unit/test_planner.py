"""Every row of SPEC.md's plan table, the safety threshold and the plan's invariants."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone

from hypothesis import given
from hypothesis import strategies as st

from dingsync.chinatime import china_day
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import PendingCreate
from dingsync.model import State
from dingsync.model import StateRecord
from dingsync.model import TaskFile
from dingsync.planner import Complete
from dingsync.planner import Create
from dingsync.planner import Replace
from dingsync.planner import make_plan


def content(title: str = "领取笔记本电脑", **kw) -> Content:
    base = {"url": "https://intranet.example.com/it", "form": (("任务描述", "到 IT 服务台领取"),)}
    base.update(kw)
    return Content(title=title, **base)


def desired(key: str = "laptop", userid: str = "alice01", **kw) -> DesiredRecord:
    c = kw.pop("content", content())
    return DesiredRecord(key=key, userid=userid, content=c, **kw)


def tasks(*records: DesiredRecord) -> TaskFile:
    return TaskFile(path="tasks.yaml", sha256="0" * 64, records=tuple(records))


def managed(d: DesiredRecord, record_id: str = "record1", **kw) -> StateRecord:
    base = dict(
        key=d.key,
        userid=d.userid,
        record_id=record_id,
        biz_id="dingsync-x-0",
        generation=0,
        content=d.content,
        fingerprint=d.content.fingerprint(),
        status="open",
        create_time_ms=1,
        created_at="2026-11-28T00:00:00Z",
        updated_at="2026-11-28T00:00:00Z",
    )
    base.update(kw)
    return StateRecord(**base)


def state_of(*records: StateRecord) -> State:
    return State(lineage="L", records={r.address: r for r in records})


def test_address_in_file_not_in_state_is_created():
    plan = make_plan(tasks(desired()), State(lineage="L"))
    assert [(c.action, c.address, c.reason) for c in plan.changes] == [
        ("create", "laptop@alice01", "new")
    ]
    assert plan.summary() == "Plan: 1 to create."


def test_same_content_is_no_change():
    d = desired()
    plan = make_plan(tasks(d), state_of(managed(d)))
    assert not plan.has_changes
    assert plan.summary() == "No changes."
    assert plan.unchanged == 1


# 2026-11-28T20:00:00Z is 04:00 on 2026-11-29 in China: the UTC and China dates differ.
LATE = {"created_at": "2026-11-28T20:00:00Z", "create_time_ms": 1_795_896_000_000}


def test_a_replace_dingtalk_refuses_today_is_noted():
    url_only = desired(content=content(url="https://intranet.example.com/it/v2"))
    state = state_of(managed(desired(), **LATE))
    (note,) = make_plan(tasks(url_only), state, today="2026-11-29").notes
    assert note.startswith("laptop@alice01: alice01 already got a to-do with this title")
    assert "until tomorrow (China time)" in note
    assert make_plan(tasks(url_only), state, today="2026-11-28").notes == ()  # the UTC date
    assert make_plan(tasks(url_only), state).notes == ()  # no date given, no guess


def test_a_new_title_or_form_is_not_refused():
    state = state_of(managed(desired(), **LATE))
    titled = desired(content=content(title="领取新笔记本电脑"))
    formed = desired(content=content(form=(("任务描述", "到前台领取"),)))
    for changed in (titled, formed):
        assert make_plan(tasks(changed), state, today="2026-11-29").notes == ()


def test_a_reopened_or_renamed_task_is_refused_the_same_day():
    d = desired()
    done_today = managed(d, status="done", completed_by="dingsync", **LATE)
    (note,) = make_plan(tasks(d), state_of(done_today), today="2026-11-29").notes
    assert note.startswith("laptop@alice01:")
    renamed = desired(key="new-laptop")
    notes = make_plan(tasks(renamed), state_of(managed(d, **LATE)), today="2026-11-29").notes
    assert [n.split(":")[0] for n in notes] == ["new-laptop@alice01"]


def test_an_old_record_imported_today_is_not_taken_for_a_new_one():
    url_only = desired(content=content(url="https://intranet.example.com/it/v2"))
    imported = managed(desired(), created_at=LATE["created_at"], create_time_ms=1)  # 1970
    assert make_plan(tasks(url_only), state_of(imported), today="2026-11-29").notes == ()


def test_china_day_is_utc_plus_eight():
    assert china_day(datetime(2026, 11, 28, 15, 59, tzinfo=timezone.utc)) == "2026-11-28"
    assert china_day(datetime(2026, 11, 28, 16, 0, tzinfo=timezone.utc)) == "2026-11-29"


def test_changed_title_is_a_replace_with_a_field_diff():
    old = desired()
    new = desired(content=content(title="领取新笔记本"))
    plan = make_plan(tasks(new), state_of(managed(old)))
    (change,) = plan.changes
    assert isinstance(change, Replace)
    assert change.current.record_id == "record1"
    assert [(f.field, f.before, f.after) for f in change.changes] == [
        ("title", "领取笔记本电脑", "领取新笔记本")
    ]


def test_every_content_field_counts_for_replace():
    d = desired()
    for field, value in [
        ("url", "https://other.example.com"),
        ("pc_url", "https://pc.example.com"),
        ("form", (("a", "b"),)),
        ("source_name", "入职"),
        ("originator_userid", "manager1"),
        ("pc_open_type", 4),
    ]:
        new = desired(content=d.content._replace(**{field: value}))
        (change,) = make_plan(tasks(new), state_of(managed(d))).changes
        assert isinstance(change, Replace), field
        assert {f.head for f in change.changes} == {field}


def test_create_time_is_not_compared():
    d = desired(create_time_ms=5)
    plan = make_plan(tasks(d), state_of(managed(d, create_time_ms=99)))
    assert not plan.has_changes


def test_address_in_state_not_in_file_is_completed():
    gone = desired(key="old")
    plan = make_plan(tasks(desired()), state_of(managed(desired()), managed(gone, "record2")))
    (change,) = plan.changes
    assert isinstance(change, Complete)
    assert (change.address, change.reason) == ("old@alice01", "removed")


def test_status_done_completes_an_open_record():
    d = desired(status="done")
    (change,) = make_plan(tasks(d), state_of(managed(desired()))).changes
    assert isinstance(change, Complete) and change.reason == "done"


def test_status_done_never_sent_is_not_created():
    plan = make_plan(tasks(desired(status="done")), State(lineage="L"))
    assert not plan.has_changes and plan.unchanged == 1


def test_status_done_of_a_done_record_is_no_change():
    d = desired(status="done")
    plan = make_plan(tasks(d), state_of(managed(d, status="done", completed_by="dingsync")))
    assert not plan.has_changes


def test_done_by_the_assignee_is_not_recreated():
    d = desired()
    plan = make_plan(tasks(d), state_of(managed(d, status="done", completed_by="assignee")))
    assert not plan.has_changes


def test_reopened_in_the_file_creates_anew():
    d = desired()
    (change,) = make_plan(
        tasks(d), state_of(managed(d, status="done", completed_by="dingsync"))
    ).changes
    assert isinstance(change, Create) and change.reason == "reopened"


def test_missing_remotely_is_recreated():
    d = desired()
    (change,) = make_plan(tasks(d), state_of(managed(d, missing=True))).changes
    assert isinstance(change, Create) and change.reason == "missing"


def test_retiring_records_are_completed():
    d = desired()
    old = managed(d, record_id="record-old")
    state = state_of(managed(d))
    state.retiring[old.record_id] = old
    (change,) = make_plan(tasks(d), state).changes
    assert isinstance(change, Complete) and change.reason == "replaced"
    assert change.current.record_id == "record-old"


def test_pending_create_is_resumed_and_noted():
    d = desired()
    state = State(lineage="L")
    state.pending[d.address] = PendingCreate(
        d.key, d.userid, "dingsync-x-0", 0, d.content, d.content.fingerprint(), 1, "t"
    )
    plan = make_plan(tasks(d), state)
    (change,) = plan.changes
    assert isinstance(change, Create) and change.reason == "resume"
    assert plan.notes and "laptop@alice01" in plan.notes[0]


def test_changes_are_sorted_by_kind_then_address():
    ds = [desired(key=k) for k in ("c", "a", "b")]
    plan = make_plan(tasks(*ds), State(lineage="L"))
    assert [c.address for c in plan.changes] == ["a@alice01", "b@alice01", "c@alice01"]


def test_safety_threshold():
    ds = [desired(key=f"t{i}") for i in range(10)]
    state = state_of(*(managed(d, record_id=f"r{i}") for i, d in enumerate(ds)))
    # 3 of 10 completed: exactly 30%, allowed
    assert make_plan(tasks(*ds[:7]), state).unsafe_reason() is None
    # 4 of 10: more than 30%
    reason = make_plan(tasks(*ds[:6]), state).unsafe_reason()
    assert reason is not None and "4 of 10" in reason and "40%" in reason


def test_safety_needs_at_least_ten_managed_records():
    ds = [desired(key=f"t{i}") for i in range(9)]
    state = state_of(*(managed(d, record_id=f"r{i}") for i, d in enumerate(ds)))
    assert make_plan(tasks(), state).unsafe_reason() is None


keys = st.lists(st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), unique=True, max_size=12)


@given(wanted=keys, existing=keys, titles=st.lists(st.sampled_from(["甲", "乙"]), min_size=12))
def test_every_address_lands_in_exactly_one_bucket(wanted, existing, titles):
    ds = [desired(key=k, content=content(title=titles[i])) for i, k in enumerate(wanted)]
    state = state_of(*(managed(desired(key=k), record_id=f"r-{k}") for k in existing))
    plan = make_plan(tasks(*ds), state)
    touched = [c.address for c in plan.changes]
    assert len(touched) == len(set(touched))
    accounted = len(touched) + plan.unchanged
    assert accounted == len(set(wanted) | set(existing))


@given(wanted=keys, seed=st.randoms())
def test_order_of_the_file_does_not_change_the_plan(wanted, seed):
    ds = [desired(key=k) for k in wanted]
    shuffled = list(ds)
    seed.shuffle(shuffled)
    state = State(lineage="L")
    assert make_plan(tasks(*ds), state) == make_plan(tasks(*shuffled), state)


def pending_for(d: DesiredRecord, generation: int = 1, content: Content | None = None):
    c = content or d.content
    return PendingCreate(
        d.key, d.userid, f"dingsync-p-{generation}", generation, c, c.fingerprint(), 7, "t"
    )


def test_interrupted_create_still_wanted_is_resumed_with_its_own_biz_id():
    d = desired()
    state = State(lineage="L", pending={d.address: pending_for(d)})
    (change,) = make_plan(tasks(d), state).changes
    assert isinstance(change, Create) and change.reason == "resume"
    assert change.pending is not None and change.pending.biz_id == "dingsync-p-1"


def test_interrupted_create_no_longer_in_the_file_is_cancelled_by_biz_id():
    d = desired()
    state = State(lineage="L", pending={d.address: pending_for(d)})
    plan = make_plan(tasks(), state)
    (change,) = plan.changes
    assert isinstance(change, Complete) and change.reason == "interrupted"
    assert change.current.record_id == "dingsync-p-1"  # DingTalk's update takes a biz_id
    assert plan.destructive_count() == 0


def test_interrupted_create_whose_content_changed_is_replaced_never_created_twice():
    d = desired()
    state = State(lineage="L", pending={d.address: pending_for(d)})
    changed = desired(content=content(title="新标题"))
    (change,) = make_plan(tasks(changed), state).changes
    assert isinstance(change, Replace) and change.pending is not None
    assert [f.field for f in change.changes] == ["title"]


def test_interrupted_replace_marked_done_completes_both_records():
    d = desired()
    old = managed(d, record_id="r-old")
    state = state_of(old)
    state.pending[d.address] = pending_for(d, content=content(title="新标题"))
    plan = make_plan(tasks(desired(status="done")), state)
    assert sorted((c.reason, c.current.record_id) for c in plan.completes) == [
        ("done", "r-old"),
        ("interrupted", "dingsync-p-1"),
    ]
    assert not plan.creates and not plan.replaces
