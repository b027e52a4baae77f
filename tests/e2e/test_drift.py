"""Drift: what assignees and admins do on the DingTalk side, seen by drift and apply, for
both of DingTalk's to-do APIs (the ``api`` fixture)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks
from tests.helpers import complete_remote
from tests.helpers import delete_remote
from tests.helpers import remote_records
from tests.helpers import retitle_remote


@pytest.fixture
def applied(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    return {
        address: dingsync("state", "show", address, "--json").json()["record"]["record_id"]
        for address in ("laptop@alice01", "laptop@bob02", "nda@alice01")
    }


def test_no_drift_right_after_apply(applied):
    run = dingsync("drift", "--detailed-exitcode")
    assert run.code == 0, run.err
    assert "No drift: 3 records checked." in run.out


def test_drift_classes_are_reported(applied, emulator):
    complete_remote(emulator, applied["laptop@alice01"])
    delete_remote(emulator, applied["laptop@bob02"])
    retitle_remote(emulator, applied["nda@alice01"], "签署保密协议（新版）")
    run = dingsync("drift", "--detailed-exitcode")
    assert run.code == 2, run.err
    assert "Drift: 1 completed, 1 missing, 1 modified (3 records checked)." in run.out
    assert 'title: "签署保密协议" → "签署保密协议（新版）"' in run.out
    doc = dingsync("drift", "--json").json()
    assert doc["kind"] == "drift" and doc["format_version"] == 1
    kinds = {i["address"]: i["kind"] for i in doc["items"]}
    # completed was recorded by the first drift run, so it is no longer open drift
    assert kinds == {"laptop@bob02": "missing", "nda@alice01": "modified"}
    md = dingsync("drift", "--format", "markdown").out
    assert "| missing | `laptop@bob02` |" in md


def test_completed_is_recorded_and_missing_is_recreated(applied, emulator):
    complete_remote(emulator, applied["laptop@alice01"])
    delete_remote(emulator, applied["laptop@bob02"])
    assert dingsync("drift").code == 0
    show = dingsync("state", "show", "laptop@alice01", "--json").json()["record"]
    assert (show["status"], show["completed_by"]) == ("done", "assignee")
    plan = dingsync("plan")
    assert "Plan: 1 to create." in plan.out
    assert "recreate: missing on DingTalk" in plan.out
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    bob = [r for r in remote_records(emulator) if r["userid"] == "bob02"]
    assert len(bob) == 1 and bob[0]["status"] == 0
    assert bob[0]["record_id"] != applied["laptop@bob02"]
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_drift_uses_list_calls_not_one_per_record(applied, emulator, api):
    listing = "workrecord/getbyuserid" if api == "workrecord" else "todo/orgTasksQuery"
    before = emulator.call_counts().get(listing, 0)
    assert dingsync("drift").code == 0
    lists = emulator.call_counts()[listing] - before
    # One open-list page per user (alice01 and bob02), or of the one creator with v1.0.
    assert lists == (2 if api == "workrecord" else 1)


def test_lookup_get_falls_back_on_errcode_22(applied, emulator, api):
    run = dingsync("drift", "--lookup", "get")
    assert run.code == 0, run.err
    # workrecord/get does not exist on DingTalk; the v1.0 refresh has no such choice.
    assert ("errcode 22" in run.err) == (api == "workrecord")
    assert "No drift: 3 records checked." in run.out


def test_state_rm_and_import(applied, emulator):
    record_id = applied["nda@alice01"]
    rm = dingsync("state", "rm", "nda@alice01")
    assert rm.code == 0 and record_id in rm.out
    assert "nda@alice01" not in dingsync("state", "list").out
    imported = dingsync("import", "nda@alice01", record_id, "--json")
    assert imported.code == 0, imported.err
    doc = imported.json()
    assert (doc["format_version"], doc["kind"], doc["address"]) == (1, "import", "nda@alice01")
    assert doc["record"]["record_id"] == record_id and doc["differences"] == []
    assert dingsync("plan", "--detailed-exitcode").code == 0
    missing = dingsync("import", "laptop@alice01", "record" + "0" * 32)
    assert missing.code == 1 and "already managed" in missing.err
