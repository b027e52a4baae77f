"""action.yml on its own: its inputs, run as a workflow step would run them."""

from __future__ import annotations

import pytest

from tests.ci.conftest import SECRETS
from tests.ci.conftest import tasks
from tests.ci.harness import GitHubEvent
from tests.ci.harness import GitHubJob
from tests.e2e.conftest import ONBOARDING


def run_action(runner, event, **inputs):
    """A job of two steps: check out, then the action, with the credentials in its env."""
    credentials = {name: "${{ secrets." + name + " }}" for name in SECRETS}
    action = {"uses": "./", "with": inputs, "env": credentials}
    job = {"steps": [{"uses": "actions/checkout@v0"}, action]}
    return GitHubJob(runner, event, SECRETS).run(job)


def test_version_input_installs_that_release_and_state_follows_the_task_file(
    runner, remote, emulator
):
    remote.commit({"config/onboarding.yaml": tasks(ONBOARDING)}, "Move the task file")
    push = GitHubEvent("push", "main")

    result = run_action(
        runner, push, command="apply", file="config/onboarding.yaml", version="0.1.0"
    )

    assert result.status == "success", result.log
    assert result.pip == [["install", "--quiet", "--disable-pip-version-check", "dingsync==0.1.0"]]
    # dingsync's default state for that file, committed and kept under that name.
    assert remote.show("state/onboarding.state.json") is not None
    assert remote.show("state/tasks.state.json") is None
    assert (result.artifacts / "dingsync-state" / "onboarding.state.json").is_file()

    plan = run_action(runner, push, command="plan", file="config/onboarding.yaml")
    assert "#### dingsync plan for `config/onboarding.yaml`" in plan.summary
    assert "**No changes.**" in plan.summary


def test_extra_arguments_reach_dingsync(runner, remote, emulator):
    result = run_action(
        runner, GitHubEvent("push", "main"), command="plan", args="--detailed-exitcode"
    )
    # --detailed-exitcode: 2 for "changes", which fails the step as it should.
    assert result.status == "failure" and result.steps["plan"] == "failure"
    assert "**Plan: 3 to create.**" in result.summary


@pytest.mark.parametrize("command", ["destroy", ""])
def test_unknown_command_fails_before_installing(command, runner, remote, emulator):
    result = run_action(runner, GitHubEvent("push", "main"), command=command)
    assert result.status == "failure" and result.steps["setup"] == "failure"
    assert "command must be plan or apply" in result.log
    assert result.pip == [] and emulator.records() == []
