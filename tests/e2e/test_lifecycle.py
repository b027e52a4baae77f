"""The loop a team lives in, and per-record failures that must not stop the others."""

from __future__ import annotations

import json

import pytest

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks


def test_unknown_userid_fails_that_record_only_and_a_rerun_continues(workdir, emulator):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    emulator.set_users({"alice01"})  # bob02 is not a member of the organisation
    run = dingsync("apply", "-y")
    assert run.code == 1
    assert "laptop@bob02" in run.err and "33012" in run.err
    assert "Apply complete: 2 created, 1 failed." in run.out
    assert sorted(r["userid"] for r in emulator.records()) == ["alice01", "alice01"]
    state = json.loads((workdir / "state" / "tasks.state.json").read_text(encoding="utf-8"))
    assert sorted(state["records"]) == ["laptop@alice01", "nda@alice01"]
    assert state["pending"] == {}
    emulator.set_users(None)  # bob02 joined
    rerun = dingsync("apply", "-y")
    assert rerun.code == 0, rerun.err
    assert "Plan: 1 to create." in rerun.out
    assert len(emulator.records()) == 3


def test_daily_limit_fails_the_records_past_it(tmp_path, monkeypatch):
    config = EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=0, daily_limit=2)
    with Emulator(config) as emulator:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DINGTALK_APP_KEY", APP_KEY)
        monkeypatch.setenv("DINGTALK_APP_SECRET", APP_SECRET)
        monkeypatch.setenv("DINGSYNC_ENDPOINT", emulator.url)
        body = "version: 1\ndefaults: {url: 'https://e.example.com'}\ntasks:\n" + "".join(
            f"  - {{key: t{i}, userid: carol, title: 第{i}项, form: {{a: b}}}}\n" for i in range(3)
        )
        (tmp_path / "tasks.yaml").write_text(body, encoding="utf-8")
        run = dingsync("apply", "-y", "--parallelism", "1")
        assert run.code == 1
        assert "854002" in run.err
        assert "at most 100 to-dos a day" in run.err and "next apply after midnight" in run.err
        assert len(emulator.records()) == 2
        assert "Plan: 1 to create" in dingsync("plan").out


def test_schema_command_prints_the_task_file_schema():
    run = dingsync("schema")
    assert run.code == 0
    schema = json.loads(run.out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "tasks" in schema["properties"]


def test_import_reports_where_the_record_differs_from_the_file(workdir, emulator):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    assert dingsync("apply", "-y").code == 0
    record_id = dingsync("state", "show", "nda@alice01", "--json").json()["record"]["record_id"]
    assert dingsync("state", "rm", "nda@alice01").code == 0
    emulator.modify(record_id, title="签署保密协议（旧版）")
    run = dingsync("import", "nda@alice01", record_id)
    assert run.code == 0, run.err
    assert "differs: title" in run.out and "签署保密协议（旧版）" in run.out
    plan = dingsync("plan")
    assert "Plan: 1 to replace." in plan.out


@pytest.mark.parametrize("address", ["nda@nobody", "ghost@alice01"])
def test_import_refuses_addresses_the_file_does_not_have(workdir, emulator, address):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    run = dingsync("import", address, "record" + "0" * 32)
    assert run.code == 1 and "not an address of tasks.yaml" in run.err


def test_the_team_loop(workdir, emulator, monkeypatch):
    """Branch: plan in the pull request; merge: apply; then people work; then a change."""
    summary = workdir / "summary.md"
    tasks = write_tasks(workdir / "tasks.yaml", ONBOARDING)
    # pull request: offline, no secrets, markdown plan on the job summary
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    with monkeypatch.context() as pr:
        pr.delenv("DINGTALK_APP_KEY")
        pr.delenv("DINGTALK_APP_SECRET")
        assert dingsync("validate").code == 0
        pr_plan = dingsync("plan", "--format", "markdown", "--detailed-exitcode")
        assert pr_plan.code == 2
    assert "| + | create | `laptop@alice01` |" in summary.read_text(encoding="utf-8")
    # merge: apply
    assert dingsync("apply", "-y").code == 0
    assert dingsync("plan", "--detailed-exitcode").code == 0
    # people work: alice finishes her laptop to-do
    ids = {r["userid"] + r["title"]: r["record_id"] for r in emulator.records()}
    emulator.complete(ids["alice01领取笔记本电脑"])
    drift = dingsync("drift", "--detailed-exitcode", "--format", "markdown")
    assert drift.code == 2 and "| completed | `laptop@alice01` |" in drift.out
    # next branch: the NDA title changes, the laptop task is dropped
    header, rest = ONBOARDING.split("      - key: laptop")
    nda = "      - key: nda" + rest.split("      - key: nda")[1]
    write_tasks(tasks, header + nda.replace("签署保密协议", "签署保密协议（2027 版）"))
    plan = dingsync("plan", "--detailed-exitcode")
    assert plan.code == 2
    # alice's laptop record is done already: only bob's is completed
    assert "Plan: 1 to replace, 1 to complete." in plan.out
    assert dingsync("apply", "-y").code == 0
    open_titles = sorted(r["title"] for r in emulator.records() if r["status"] == 0)
    assert open_titles == ["签署保密协议（2027 版）"]
    assert dingsync("drift", "--detailed-exitcode").code == 0
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_plan_warns_of_a_replace_dingtalk_refuses_the_same_day(workdir, emulator):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    assert dingsync("apply", "-y", "--no-refresh").code == 0
    moved = ONBOARDING.replace("https://intranet.example.com/onboarding", "https://hr.example.com")
    write_tasks(workdir / "tasks.yaml", moved)  # nda@alice01 gets a new url, nothing else
    plan = dingsync("plan")
    assert "-/+ replace  nda@alice01" in plan.out
    assert "nda@alice01: alice01 already got a to-do with this title and form today" in plan.out
    run = dingsync("apply", "-y", "--no-refresh")
    assert run.code == 1 and "854001" in run.err  # what the note foretold
