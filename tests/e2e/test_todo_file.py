"""``api: todo`` end to end: the v1.0 API's own behaviour (update in place, reopen,
delete, drift fixed back, unionIds kept in the state), over real HTTP against the emulator.

What both APIs share (faults, kills, lost states, concurrency, secrets) runs for both in
the suites parametrized by the ``api`` fixture.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks
from tests.e2e.test_json_output import check
from tests.helpers import OPEN
from tests.helpers import assert_no_duplicates
from tests.helpers import open_of
from tests.helpers import state_doc

STATE = Path("state/tasks.state.json")

V1_TASKS = """
    version: 1
    api: todo
    namespace: onboarding
    defaults:
      creator_userid: hrbot01
      url: https://intranet.example.com/onboarding
    tasks:
      - key: laptop
        userids: [alice01, bob02]
        title: 领取笔记本电脑和显示器
        description: 到三楼 IT 服务台领取并签收
        pc_url: https://intranet.example.com/it/laptop?pc=1
        due_time: 2026-12-05
        priority: high
        ding: false
      - key: nda
        userid: alice01
        title: 签署保密协议
"""


def todos(emulator) -> dict[str, dict]:
    """The emulator's v1.0 to-dos by id."""
    return {t["id"]: t for t in emulator.todos()}


def ids(workdir: Path) -> dict[str, str]:
    return {a: r["record_id"] for a, r in state_doc(workdir / STATE)["records"].items()}


def applied(workdir: Path, body: str = V1_TASKS) -> dict[str, str]:
    write_tasks(workdir / "tasks.yaml", body)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    return ids(workdir)


def test_a_todo_file_is_valid(workdir):
    write_tasks(workdir / "tasks.yaml", V1_TASKS)
    run = dingsync("validate", "--json")
    assert run.code == 0, run.err
    assert run.json()["records"] == 3


def test_state_show_names_the_key_as_v1_calls_it(workdir, emulator):
    made = applied(workdir)
    run = dingsync("state", "show", "nda@alice01")
    assert run.code == 0, run.err
    source_id = todos(emulator)[made["nda@alice01"]]["sourceId"]
    assert re.search(rf"^  source_id +{source_id}$", run.out, re.MULTILINE), run.out
    assert "biz_id" not in run.out
    # The JSON document keeps the state's field names, for either API.
    assert (
        dingsync("state", "show", "nda@alice01", "--json").json()["record"]["biz_id"] == source_id
    )


def test_apply_creates_one_todo_per_assignee_as_the_creator(workdir, emulator):
    made = applied(workdir)
    assert sorted(made) == ["laptop@alice01", "laptop@bob02", "nda@alice01"]
    stored = todos(emulator)
    laptop = stored[made["laptop@bob02"]]
    assert laptop["creatorId"] == emulator.union_id("hrbot01")
    assert laptop["executorIds"] == [emulator.union_id("bob02")]
    assert laptop["priority"] == 30
    assert laptop["detailUrl"]["pcUrl"] == "https://intranet.example.com/it/laptop?pc=1"
    assert laptop["sourceId"].startswith("dingsync-") and laptop["sourceId"].endswith("-0")
    doc = state_doc(workdir / STATE)
    assert doc["remote"]["api"] == "todo"
    assert set(doc["union_ids"]) == {"alice01", "bob02", "hrbot01"}
    assert all(r["biz_id"] == stored[r["record_id"]]["sourceId"] for r in doc["records"].values())


def test_a_second_apply_changes_nothing_and_resolves_no_userid_again(workdir, emulator):
    applied(workdir)
    before = emulator.call_counts()
    run = dingsync("apply", "-y", "--json")
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["plan"]["has_changes"] is False
    after = emulator.call_counts()
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # One token and the creator's open list: the unionIds come from the state.
    assert {k: n for k, n in spent.items() if n} == {
        "oauth2/accessToken": 1,
        "todo/orgTasksQuery": 1,
    }
    assert doc["api_calls"]["total"] == 2
    check("apply", doc)
    check("drift", dingsync("drift", "--json").json())


def test_a_new_task_reads_the_creators_open_list_once(workdir, emulator):
    applied(workdir)
    grown = (
        V1_TASKS
        + """
      - key: badge
        userid: bob02
        title: 领取工牌
    """
    )
    write_tasks(workdir / "tasks.yaml", grown)
    before = emulator.call_counts()
    run = dingsync("apply", "-y", "--json")
    assert run.code == 0, run.err
    assert run.json()["result"]["created"] == ["badge@bob02"]
    after = emulator.call_counts()
    # The refresh and the adoption look-up (of the new address) walk one reading of the
    # creator's open list: one page here, asked for once.
    assert after["todo/orgTasksQuery"] - before["todo/orgTasksQuery"] == 1


def test_title_description_and_due_time_are_updated_in_place(workdir, emulator):
    made = applied(workdir)
    changed = (
        V1_TASKS.replace("领取笔记本电脑和显示器", "领取笔记本电脑")
        .replace("到三楼", "到二楼")
        .replace("2026-12-05", "2026-12-08")
    )
    write_tasks(workdir / "tasks.yaml", changed)
    plan = dingsync("plan")
    assert "Plan: 2 to update." in plan.out, plan.out
    assert "~ update" in plan.out
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert ids(workdir) == made  # the same to-dos
    laptop = todos(emulator)[made["laptop@alice01"]]
    assert laptop["subject"] == "领取笔记本电脑"
    assert laptop["description"].startswith("到二楼")
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_a_create_only_field_is_replaced_and_the_old_todo_deleted(workdir, emulator):
    made = applied(workdir)
    write_tasks(workdir / "tasks.yaml", V1_TASKS.replace("priority: high", "priority: urgent"))
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    now = ids(workdir)
    stored = todos(emulator)
    for address in ("laptop@alice01", "laptop@bob02"):
        assert now[address] != made[address]
        assert made[address] not in stored  # deleted, not left done beside the new one
        assert stored[now[address]]["priority"] == 40
        assert stored[now[address]]["sourceId"].endswith("-1")
    assert_no_duplicates(emulator)


def test_a_removed_task_is_completed_or_deleted_as_on_removal_says(workdir, emulator):
    made = applied(workdir)
    without_nda = V1_TASKS.split("      - key: nda")[0]
    write_tasks(workdir / "tasks.yaml", without_nda)
    assert dingsync("apply", "-y").code == 0
    assert todos(emulator)[made["nda@alice01"]]["done"] is True
    deleting = without_nda.replace(
        "    namespace: onboarding\n", "    namespace: onboarding\n    on_removal: delete\n"
    ).replace("userids: [alice01, bob02]", "userids: [alice01]")
    write_tasks(workdir / "tasks.yaml", deleting)
    plan = dingsync("plan")
    assert "- delete  laptop@bob02" in plan.out, plan.out
    assert dingsync("apply", "-y").code == 0
    assert made["laptop@bob02"] not in todos(emulator)
    assert "laptop@bob02" not in ids(workdir)


def test_done_in_the_file_completes_and_open_again_reopens_the_same_todo(workdir, emulator):
    made = applied(workdir)
    done = V1_TASKS.replace("title: 签署保密协议\n", "title: 签署保密协议\n        status: done\n")
    write_tasks(workdir / "tasks.yaml", done)
    assert dingsync("apply", "-y").code == 0
    assert todos(emulator)[made["nda@alice01"]]["done"] is True
    write_tasks(workdir / "tasks.yaml", V1_TASKS)
    plan = dingsync("plan")
    assert "↺ reopen  nda@alice01" in plan.out, plan.out
    assert "Plan: 1 to reopen." in plan.out
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert ids(workdir)["nda@alice01"] == made["nda@alice01"]
    assert todos(emulator)[made["nda@alice01"]]["done"] is False
    assert state_doc(workdir / STATE)["records"]["nda@alice01"]["status"] == "open"


def test_an_edit_on_dingtalk_is_drift_and_the_next_apply_puts_it_back(workdir, emulator):
    made = applied(workdir)
    emulator.modify_todo(made["nda@alice01"], subject="随便改的标题")
    emulator.modify_todo(made["laptop@bob02"], priority=10)
    drift = dingsync("drift", "--detailed-exitcode")
    assert drift.code == 2, drift.out + drift.err
    assert "title" in drift.out and "priority" in drift.out
    doc = check("drift", dingsync("drift", "--json").json())
    paths = {(i["address"], f["path"]) for i in doc["items"] for f in i["fields"]}
    assert paths == {("nda@alice01", "title"), ("laptop@bob02", "priority")}
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert "~ nda@alice01: updated" in run.err or "updated" in run.err
    assert todos(emulator)[made["nda@alice01"]]["subject"] == "签署保密协议"
    # priority cannot be changed in place: reported, not replaced behind the user's back
    assert todos(emulator)[made["laptop@bob02"]]["priority"] == 10
    assert ids(workdir) == made


def test_a_todo_deleted_on_dingtalk_is_recreated_with_a_new_source_id(workdir, emulator):
    made = applied(workdir)
    emulator.delete_todo(made["nda@alice01"])
    drift = dingsync("drift", "--json")
    kinds = {i["address"]: i["kind"] for i in drift.json()["items"]}
    assert kinds == {"nda@alice01": "missing"}
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    (again,) = open_of(emulator, "alice01", "签署保密协议")
    assert again["record_id"] != made["nda@alice01"]
    assert again["source_id"].endswith("-1")  # a deleted to-do keeps its sourceId
    assert again["status"] == OPEN


def test_an_unknown_userid_fails_its_records_only(workdir, emulator):
    emulator.set_users(["alice01", "hrbot01"])
    write_tasks(workdir / "tasks.yaml", V1_TASKS)
    run = dingsync("apply", "-y")
    assert run.code == 1
    assert "laptop@bob02" in run.err and "not a userid of this organisation" in run.err
    assert sorted(ids(workdir)) == ["laptop@alice01", "nda@alice01"]
    assert "Traceback" not in run.err


def test_a_state_of_the_other_api_is_refused_with_the_way_out(workdir, emulator):
    legacy = """
        version: 1
        defaults:
          url: https://intranet.example.com/onboarding
        tasks:
          - key: nda
            userid: alice01
            title: 签署保密协议
            form: {说明: 在线签署}
    """
    write_tasks(workdir / "tasks.yaml", legacy)
    assert dingsync("apply", "-y").code == 0
    before = (workdir / STATE).read_bytes()
    write_tasks(workdir / "tasks.yaml", V1_TASKS)
    for args in (("plan",), ("apply", "-y"), ("apply", "-y", "--force")):
        run = dingsync(*args)
        assert run.code == 1, args
        assert "holds to-dos of the workrecord API" in run.err
        assert "--state state/tasks.todo.state.json" in run.err
    assert (workdir / STATE).read_bytes() == before
    assert emulator.call_counts().get("todo/create", 0) == 0


def test_a_v1_subject_may_be_longer_than_a_legacy_title(workdir):
    long_title = "领" * 60
    todo = V1_TASKS.replace("title: 签署保密协议", f"title: {long_title}")
    write_tasks(workdir / "tasks.yaml", todo)
    assert dingsync("validate").code == 0
    write_tasks(
        workdir / "tasks.yaml", todo.replace("签署保密协议", "x").replace(long_title, "领" * 1025)
    )
    too_long = dingsync("validate")
    assert too_long.code == 1 and "at most 1024" in too_long.err, too_long.err
    legacy = """
        version: 1
        defaults:
          url: https://intranet.example.com/onboarding
          form: {说明: 在线签署}
        tasks:
          - key: nda
            userid: alice01
            title: TITLE
    """.replace("TITLE", long_title)
    write_tasks(workdir / "tasks.yaml", legacy)
    refused = dingsync("validate")
    assert refused.code == 1 and "at most 50" in refused.err, refused.err


def test_state_rm_and_import_of_a_v1_todo(workdir, emulator):
    made = applied(workdir)
    assert dingsync("state", "rm", "nda@alice01").code == 0
    assert dingsync("plan", "--detailed-exitcode").code == 2  # it would be created again
    run = dingsync("import", "nda@alice01", made["nda@alice01"])
    assert run.code == 0, run.err
    record = state_doc(workdir / STATE)["records"]["nda@alice01"]
    assert record["biz_id"] == todos(emulator)[made["nda@alice01"]]["sourceId"]
    assert dingsync("plan", "--detailed-exitcode").code == 0
    assert dingsync("state", "rm", "laptop@alice01").code == 0
    unknown = dingsync("import", "laptop@alice01", "OPJnotatask")
    assert unknown.code == 1 and "no to-do OPJnotatask" in unknown.err


def test_a_lost_state_finds_replaced_and_completed_todos_by_source_id(workdir, emulator):
    made = applied(workdir)
    write_tasks(workdir / "tasks.yaml", V1_TASKS.replace("priority: high", "priority: urgent"))
    assert dingsync("apply", "-y").code == 0  # laptop: generation 1, generation 0 deleted
    current = ids(workdir)
    emulator.complete_todo(current["nda@alice01"])  # alice finishes her NDA
    for path in (workdir / "state").glob("tasks.state.json*"):
        path.unlink()
    before = set(todos(emulator))
    run = dingsync("apply", "-y", "--json")
    assert run.code == 0, run.err
    assert set(todos(emulator)) == before, "a to-do was created again"
    doc = run.json()
    assert doc["result"]["created"] == []
    assert sorted(doc["result"]["adopted"]) == sorted(made)
    records = state_doc(workdir / STATE)["records"]
    assert {a: r["record_id"] for a, r in records.items()} == current
    assert records["nda@alice01"]["status"] == "done"
    assert records["nda@alice01"]["completed_by"] == "assignee"
    assert records["laptop@bob02"]["generation"] == 1
    assert dingsync("plan", "--detailed-exitcode").code == 0
