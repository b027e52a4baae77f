"""examples/ci/github-actions.yml with action.yml, run job by job against a bare repository.

Each way an apply job can end is played out, and each test asserts where the state ended:
in the repository's main (read back with dingsync itself), in the job's artifact, and that
the next apply neither duplicates nor loses a to-do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci.conftest import SECRETS
from tests.ci.conftest import tasks
from tests.ci.harness import CI
from tests.ci.harness import ROOT
from tests.ci.harness import GitHubEvent
from tests.ci.harness import GitHubJob
from tests.ci.harness import JobResult
from tests.ci.harness import Watch
from tests.ci.harness import cancel
from tests.ci.harness import interpolate
from tests.ci.harness import load_yaml

STATE = "state/tasks.state.json"
ONBOARDING_ADDRESSES = ["laptop@alice01", "laptop@bob02", "nda@alice01"]
DINGSYNC = str(Path(sys.executable).parent / "dingsync")


def workflow():
    return load_yaml(CI / "github-actions.yml")


def run_job(runner, name, event, **options) -> JobResult:
    job = GitHubJob(runner, event, SECRETS, **options)
    return job.run(workflow()["jobs"][name])


def apply(runner, **options) -> JobResult:
    return run_job(runner, "apply", GitHubEvent("push", "main"), **options)


def state_addresses(remote, ref="main") -> list[str]:
    """The addresses the state pushed to ref knows, journal included, as dingsync reads it."""
    clone = remote.checkout(ref)
    run = subprocess.run(
        [DINGSYNC, "state", "list", "--state", STATE],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def emulator_addresses(emulator) -> list[str]:
    """KEY@USERID of every stored to-do (the key is the part of the biz_id before '@')."""
    return sorted(KEYS[r["title"]] + "@" + r["userid"] for r in emulator.records())


def artifact_addresses(result: JobResult) -> list[str]:
    state = json.loads((result.artifacts / "dingsync-state" / "tasks.state.json").read_text())
    return sorted(state["records"])


KEYS = {
    "领取笔记本电脑": "laptop",
    "签署保密协议": "nda",
    "领取工牌": "badge",
    "阅读团队手册": "wiki",
}
MANY_USERS = [f"user{n:02d}" for n in range(1, 13)]
MANY = tasks(
    f"""
    version: 1
    defaults:
      source_name: 入职流程
      url: https://intranet.example.com/onboarding/badge
      form:
        说明: 到前台领取
    tasks:
      - key: badge
        userids: [{", ".join(MANY_USERS)}]
        title: 领取工牌
    """
)
# One more task, appended to the onboarding file's task list.
WIKI = (
    "  - key: wiki\n    userid: bob02\n    title: 阅读团队手册\n    form:\n      说明: 读完第一章\n"
)


def test_success_pushes_the_state_and_keeps_it_as_an_artifact(runner, remote, emulator):
    result = apply(runner)

    assert result.status == "success", result.log
    assert state_addresses(remote) == ONBOARDING_ADDRESSES
    assert remote.log()[0] == "dingsync: record applied state [skip ci]"
    assert artifact_addresses(result) == ONBOARDING_ADDRESSES
    assert len(emulator.records()) == 3
    assert "#### dingsync apply: success" in result.summary
    assert "#### dingsync drift" in result.summary  # dingsync's own part of the summary
    # The action installed the dingsync of its own commit, which `uses:` pins.
    assert result.pip == [["install", "--quiet", "--disable-pip-version-check", str(ROOT)]]

    # Nothing changed: no second record, no empty commit.
    head = remote.head()
    again = apply(runner)
    assert again.status == "success", again.log
    assert "nothing to push" in again.log
    assert remote.head() == head and len(emulator.records()) == 3


@pytest.mark.parametrize("emulator", [1], indirect=True)  # one to-do per user and day
def test_failed_apply_still_pushes_what_it_created(runner, remote, emulator):
    result = apply(runner)  # alice01's second to-do is refused: apply exits 1

    assert result.status == "failure"
    assert result.steps["apply"] == "failure" and result.steps["commit"] == "success"
    made = emulator_addresses(emulator)
    assert len(made) == 2
    assert state_addresses(remote) == made
    assert artifact_addresses(result) == made
    assert "#### dingsync apply: failure" in result.summary

    emulator.advance_clock(86400)
    assert apply(runner).status == "success"
    assert state_addresses(remote) == ONBOARDING_ADDRESSES
    assert len(emulator.records()) == 3  # the two from the failed run were not made again


def test_sigterm_mid_apply_pushes_the_records_made_so_far(runner, remote, emulator):
    remote.commit({"tasks.yaml": MANY}, "Badges for everyone")
    emulator.set_faults(latency_ms=150)
    kill = cancel("apply", lambda: len(emulator.records()) >= 3)

    result = apply(runner, watch=kill, with_overrides={"args": "--parallelism 1"})

    assert kill.fired and result.status == "cancelled"
    assert result.steps["commit"] == "success", result.log
    # Killed without a chance to clean up: every create that was answered is in the state;
    # the one in flight (one at a time here) is found again by the next run.
    made = emulator_addresses(emulator)
    assert 3 <= len(made) < len(MANY_USERS)
    known = state_addresses(remote)
    assert len(made) - 1 <= len(known) and set(known) <= set(made)
    assert artifact_addresses(result) == known
    assert remote.show(STATE + ".lock") is None  # the dead run's lock stays out of git

    emulator.set_faults(latency_ms=0)
    assert apply(runner).status == "success"
    assert len(emulator.records()) == len(MANY_USERS)  # none twice
    assert state_addresses(remote) == sorted(f"badge@{user}" for user in MANY_USERS)


def test_timed_out_apply_stops_in_time_and_pushes(runner, remote, emulator):
    remote.commit({"tasks.yaml": MANY}, "Badges for everyone")
    # After three creates DingTalk turns slow, and the budget of 0.1 minutes runs out.
    stall = Watch(
        "apply",
        lambda: len(emulator.records()) >= 3,
        lambda _: emulator.set_faults(latency_ms=3000),
    )
    result = apply(
        runner,
        watch=stall,
        with_overrides={"args": "--parallelism 1", "apply-timeout-minutes": "0.1"},
    )

    assert stall.fired
    assert result.status == "failure" and result.steps["apply"] == "failure"
    assert result.steps["commit"] == "success", result.log
    # Stopped mid-call: the create in flight may be stored on DingTalk but unanswered; the
    # next run finds it. Every answered one is in the state.
    made = emulator_addresses(emulator)
    assert 3 <= len(made) < len(MANY_USERS)
    known = state_addresses(remote)
    assert len(made) - 1 <= len(known) and set(known) <= set(made)

    emulator.set_faults(latency_ms=0)
    assert apply(runner).status == "success"
    assert len(emulator.records()) == len(MANY_USERS)  # none twice


def test_push_rejected_because_main_moved_is_rebased_and_pushed(runner, remote, emulator):
    moved = {}

    def merge_meanwhile():
        moved["commit"] = remote.commit({"README.md": "todos, edited\n"}, "Edit the README")

    result = apply(runner, before={"commit": merge_meanwhile})

    assert result.status == "success", result.log
    assert "rejected; rebasing" in result.log
    assert remote.log()[:2] == ["dingsync: record applied state [skip ci]", "Edit the README"]
    assert state_addresses(remote) == ONBOARDING_ADDRESSES


def test_push_that_cannot_be_rebased_fails_loudly_and_keeps_the_state(runner, remote, emulator):
    # Someone committed a state of their own meanwhile: only a person can settle that.
    def conflict():
        remote.commit({STATE: '{"format": 1}\n'}, "Commit a state by hand")

    result = apply(runner, before={"commit": conflict})

    assert result.status == "failure" and result.steps["commit"] == "failure"
    assert "::error title=dingsync state not pushed::" in result.log
    assert "**The state was not pushed.**" in result.summary
    assert remote.show(STATE) == '{"format": 1}\n'
    assert artifact_addresses(result) == ONBOARDING_ADDRESSES
    rescue = "dingsync/unpushed-state/4242-1"
    assert f"it is on branch {rescue}" in result.log
    assert [b for b in remote.branches() if b.startswith("dingsync/")] == [rescue]
    assert state_addresses(remote, rescue) == ONBOARDING_ADDRESSES


def test_pull_request_plan_reads_the_state_of_main(runner, remote, emulator):
    first = remote.head()
    assert apply(runner).status == "success"
    # A branch made before that apply: its own copy of the state is stale (here: none).
    remote.branch("feature", first)
    task_file = remote.show("tasks.yaml", "feature") + WIKI
    remote.commit({"tasks.yaml": task_file}, "Add the wiki to-do", branch="feature")

    result = run_job(runner, "plan", GitHubEvent("pull_request", "feature"))

    assert result.status == "success", result.log
    assert "**Plan: 1 to create.**" in result.summary
    assert "`wiki@bob02`" in result.summary
    assert len(emulator.records()) == 3  # plan called nothing
    assert result.steps["apply"] == "skipped" and result.steps["commit"] == "skipped"


@pytest.mark.parametrize(
    ("event", "args"),
    [
        (GitHubEvent("push", "main"), ""),
        (GitHubEvent("workflow_dispatch", "main", {"force": False}), ""),
        (GitHubEvent("workflow_dispatch", "main", {"force": True}), "--force"),
    ],
    ids=["push", "dispatch", "dispatch-force"],
)
def test_force_only_from_a_manual_run(event, args, runner):
    step = next(s for s in workflow()["jobs"]["apply"]["steps"] if "dingsync" in s["uses"])
    job = GitHubJob(runner, event, SECRETS)
    contexts = {"github": job.github, "inputs": event.inputs}
    assert interpolate(step["with"]["args"], contexts) == args
