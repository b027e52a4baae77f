"""What a pipeline reads when something around dingsync goes wrong: plain messages, exit 1
for errors, and never an internal error after the work was done."""

from __future__ import annotations

import json

from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks


def test_an_unwritable_job_summary_is_a_warning_after_a_successful_apply(workdir, monkeypatch):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    (workdir / "summary").mkdir()
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(workdir / "summary"))
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert "Warning: cannot write the job summary" in run.err
    assert "Internal error" not in run.err


def test_one_problem_is_one_problem(workdir):
    too_long = ONBOARDING.replace("title: 签署保密协议", "title: " + "长" * 51)
    write_tasks(workdir / "tasks.yaml", too_long)
    run = dingsync("plan", "--json")
    assert run.code == 1
    assert json.loads(run.out)["error"] == "1 problem in the task file"


def test_usage_errors_exit_1_with_the_error_document(workdir):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    for args in (("plan", "--format", "xml"), ("plan", "--bogus"), ("apply", "--parallelism", "0")):
        run = dingsync(*args, "--json")
        assert run.code == 1, args
        assert json.loads(run.out)["kind"] == "error", args
    (workdir / "folder.yaml").mkdir()
    assert dingsync("plan", "-f", "folder.yaml").code == 1


def test_a_saved_plan_is_applied_to_the_files_it_was_made_for(workdir, emulator):
    write_tasks(workdir / "other.yaml", ONBOARDING)
    assert dingsync("plan", "-f", "other.yaml", "--out", "tfplan.json").code == 0
    wrong = dingsync("apply", "tfplan.json", "-y", "-f", "tasks.yaml")
    assert wrong.code == 1 and "tfplan.json is a plan for other.yaml, not tasks.yaml" in wrong.err
    run = dingsync("apply", "tfplan.json", "-y")
    assert run.code == 0, run.err
    assert (workdir / "state" / "other.state.json").exists()
    assert not (workdir / "state" / "tasks.state.json").exists()
    assert len(emulator.records()) == 3


def test_every_accepted_option_means_something(workdir, emulator):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    contradiction = dingsync("plan", "--format", "text", "--json")
    assert contradiction.code == 1 and "--json and --format text" in contradiction.err
    assert dingsync("apply", "-y").code == 0
    checked = dingsync("validate", "--state", "state/tasks.state.json", "--json")
    assert checked.code == 0 and checked.json()["state"]["records"] == 3
    (workdir / "state" / "broken.json").write_text("{", encoding="utf-8")
    assert dingsync("validate", "--state", "state/broken.json").code == 1
    removed = dingsync("state", "rm", "nda@alice01", "--json")
    assert removed.code == 0 and removed.json()["kind"] == "state-rm"
    assert removed.json()["record"]["record_id"]
    lock = workdir / "state" / "tasks.state.json.lock"
    lock.write_text('{"pid": 999999999, "host": "elsewhere"}', encoding="utf-8")
    unlocked = dingsync("force-unlock", "-y", "--json")
    assert unlocked.code == 0 and unlocked.json()["holder"]["host"] == "elsewhere"
    assert not lock.exists()


def test_the_apply_summary_leads_with_the_outcome_and_every_failure(workdir, emulator, monkeypatch):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    emulator.set_users({"alice01", "manager7078"})  # bob02 is not a member: 33012
    summary = workdir / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert dingsync("apply", "-y").code == 1
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## dingsync apply\n\n**Apply complete: 2 created, ")
    assert "1 failed" in text.splitlines()[2]
    failed = text.index("### Failed")
    assert "laptop@bob02" in text[failed:] and "33012" in text[failed:]
    assert failed < text.index("#### dingsync plan")


def test_a_plan_saved_into_a_missing_folder_is_a_plain_error(workdir):
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    run = dingsync("plan", "--out", "missing/folder/tfplan.json")
    assert run.code == 1
    assert "cannot save the plan to missing/folder/tfplan.json" in run.err
    assert "Internal error" not in run.err
