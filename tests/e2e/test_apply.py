"""apply and plan through the CLI against the emulator: the core loop of SPEC.md, for both
of DingTalk's to-do APIs (the ``api`` fixture)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks
from tests.helpers import remote_records


@pytest.fixture
def tasks_file(workdir, api):
    return write_tasks(workdir / "tasks.yaml", ONBOARDING, api)


def stored(emulator, status=None):
    return [r for r in remote_records(emulator) if status is None or r["status"] == status]


CREATES = {"workrecord": "workrecord/add", "todo": "todo/create"}
TOKENS = {"workrecord": "gettoken", "todo": "oauth2/accessToken"}


def test_apply_creates_exactly_what_the_file_says(workdir, tasks_file, emulator, api):
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert "Plan: 3 to create." in run.out
    records = sorted(stored(emulator), key=lambda r: (r["userid"], r["title"]))
    assert [(r["userid"], r["title"]) for r in records] == [
        ("alice01", "签署保密协议"),
        ("alice01", "领取笔记本电脑"),
        ("bob02", "领取笔记本电脑"),
    ]
    state = dingsync("state", "list").out.split()
    assert state == ["laptop@alice01", "laptop@bob02", "nda@alice01"]
    assert "API calls:" in run.out
    if api == "todo":
        return  # the v1.0 fields are checked in test_todo_file.py
    laptop = records[1]
    assert laptop["url"] == "https://intranet.example.com/it/laptop"
    assert laptop["pcUrl"] == "https://intranet.example.com/it/laptop?pc=1"
    assert laptop["pc_open_type"] == 2
    assert laptop["source_name"] == "入职流程"
    assert laptop["originator_user_id"] == "manager7078"
    assert laptop["formItemList"] == [
        {"title": "任务描述", "content": "到 IT 服务台领取并签收"},
        {"title": "截止日期", "content": "2026-12-05"},
    ]
    assert laptop["biz_id"].startswith("dingsync-")
    nda = records[0]
    assert nda["url"] == "https://intranet.example.com/onboarding"  # from defaults
    assert nda["formItemList"] == [{"title": "说明", "content": "在 HR 系统中在线签署"}]


def test_second_apply_changes_nothing(workdir, tasks_file, emulator):
    assert dingsync("apply", "-y").code == 0
    before = stored(emulator)
    again = dingsync("apply", "-y")
    assert again.code == 0, again.err
    assert "No changes." in again.out
    assert stored(emulator) == before
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_plan_is_offline_and_needs_no_credentials(workdir, tasks_file, emulator, monkeypatch):
    monkeypatch.delenv("DINGTALK_APP_KEY")
    monkeypatch.delenv("DINGTALK_APP_SECRET")
    monkeypatch.setenv("DINGSYNC_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    run = dingsync("plan", "--detailed-exitcode")
    assert run.code == 2
    assert "Plan: 3 to create" in run.out
    assert sum(emulator.call_counts().values()) == 0


def test_title_change_replaces_or_updates_the_record(workdir, tasks_file, emulator, api):
    assert dingsync("apply", "-y").code == 0
    old_id = dingsync("state", "show", "nda@alice01", "--json").json()["record"]["record_id"]
    write_tasks(tasks_file, ONBOARDING.replace("签署保密协议", "签署保密与竞业协议"), api)
    plan = dingsync("plan")
    # Legacy to-dos cannot be edited: a replace; v1.0 edits the title in place.
    assert ("Plan: 1 to replace." if api == "workrecord" else "Plan: 1 to update.") in plan.out
    assert 'title: "签署保密协议" → "签署保密与竞业协议"' in plan.out
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    by_id = {r["record_id"]: r for r in stored(emulator)}
    if api == "workrecord":
        assert by_id[old_id]["status"] == 1  # old one completed
    else:
        assert by_id[old_id]["title"] == "签署保密与竞业协议"  # the same to-do, edited
    open_nda = [r for r in stored(emulator, 0) if r["userid"] == "alice01" and "协议" in r["title"]]
    assert [r["title"] for r in open_nda] == ["签署保密与竞业协议"]
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_removed_task_is_completed(workdir, tasks_file, emulator, api):
    assert dingsync("apply", "-y").code == 0
    write_tasks(tasks_file, ONBOARDING.split("      - key: nda")[0], api)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert "Plan: 1 to complete." in run.out
    nda = [r for r in stored(emulator) if r["title"] == "签署保密协议"]
    assert [r["status"] for r in nda] == [1]
    assert len(stored(emulator)) == 3


def test_status_done_completes(workdir, tasks_file, emulator, api):
    assert dingsync("apply", "-y").code == 0
    write_tasks(tasks_file, ONBOARDING + "        status: done\n", api)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert [r["status"] for r in stored(emulator) if r["title"] == "签署保密协议"] == [1]
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_apply_without_terminal_and_without_yes_does_nothing(workdir, tasks_file, emulator):
    run = dingsync("apply")
    assert run.code == 1
    assert "-y/--auto-approve" in run.err
    assert stored(emulator) == []
    assert not (workdir / "state" / "tasks.state.json").exists()


def test_missing_credentials_fail_before_any_work(workdir, tasks_file, emulator, monkeypatch):
    monkeypatch.delenv("DINGTALK_APP_SECRET")
    run = dingsync("apply", "-y")
    assert run.code == 1
    assert run.err.strip() == (
        "Error: DINGTALK_APP_SECRET not set; export the app's credentials "
        "(or use --sandbox to try dingsync against the built-in emulator)"
    )
    assert sum(emulator.call_counts().values()) == 0


def test_plain_http_to_a_remote_host_is_refused(workdir, tasks_file, emulator):
    run = dingsync("apply", "-y", "--endpoint", "http://oapi.example.com")
    assert run.code == 1
    assert "http" in run.err and "Traceback" not in run.err
    assert stored(emulator) == []


def test_json_output_of_apply(workdir, tasks_file, emulator, api):
    run = dingsync("apply", "-y", "--json")
    assert run.code == 0, run.err
    doc = run.json()
    assert doc["format_version"] == 1 and doc["kind"] == "apply" and doc["ok"] is True
    assert doc["result"]["created"] == ["laptop@alice01", "laptop@bob02", "nda@alice01"]
    assert doc["api_calls"]["by_api"][TOKENS[api]] == 1
    assert doc["api_calls"]["by_api"][CREATES[api]] == 3
    # The refresh comes first: a new state has nothing to look up yet.
    assert doc["drift"]["checked"] == 0
    again = dingsync("apply", "-y", "--json").json()
    assert again["drift"]["checked"] == 3 and again["result"]["created"] == []


def test_saved_plan_is_applied_and_refused_when_stale(workdir, tasks_file, emulator, api):
    assert dingsync("plan", "--out", "tfplan.json").code == 0
    write_tasks(tasks_file, ONBOARDING.replace("签署保密协议", "签署协议"), api)
    stale = dingsync("apply", "-y", "tfplan.json")
    assert stale.code == 1
    assert "saved plan is stale" in stale.err and "task file" in stale.err
    assert stored(emulator) == []
    assert dingsync("plan", "--out", "tfplan.json").code == 0
    run = dingsync("apply", "-y", "tfplan.json")
    assert run.code == 0, run.err
    assert len(stored(emulator)) == 3
    again = dingsync("apply", "-y", "tfplan.json")
    assert again.code == 1 and "the state was created since the plan was made" in again.err
    assert dingsync("plan", "--out", "tfplan.json").code == 0
    dingsync("state", "rm", "nda@alice01")
    moved = dingsync("apply", "-y", "tfplan.json")
    assert moved.code == 1 and "serial" in moved.err
    assert len(stored(emulator)) == 3


def test_safety_threshold_needs_force(workdir, emulator, api):
    tasks = "version: 1\ntasks:\n" + "".join(
        f"  - key: t{i}\n    userid: u{i % 3}\n    title: 任务{i}\n"
        f"    url: https://example.com/{i}\n    form: {{说明: 第{i}项}}\n"
        for i in range(12)
    )
    path = write_tasks(workdir / "tasks.yaml", tasks, api)
    assert dingsync("apply", "-y").code == 0
    write_tasks(path, tasks.split("  - key: t8\n")[0], api)  # drop 4 of 12
    refused = dingsync("apply", "-y")
    assert refused.code == 1
    assert "4 of 12" in refused.err and "--force" in refused.err
    assert len(stored(emulator)) == 12 and all(r["status"] == 0 for r in stored(emulator))
    forced = dingsync("apply", "-y", "--force")
    assert forced.code == 0, forced.err
    assert sum(r["status"] for r in stored(emulator)) == 4


def test_sandbox_apply_keeps_its_own_state(tmp_path, monkeypatch, api):
    monkeypatch.chdir(tmp_path)
    for name in ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGSYNC_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    write_tasks(tmp_path / "tasks.yaml", ONBOARDING, api)
    run = dingsync("apply", "--sandbox", "-y")
    assert run.code == 0, run.err
    assert (tmp_path / "state" / "tasks.sandbox.state.json").exists()
    assert not (tmp_path / "state" / "tasks.state.json").exists()
    again = dingsync("apply", "--sandbox", "-y")
    assert again.code == 0 and "No changes." in again.out
    assert "No drift" in again.out
