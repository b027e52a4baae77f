"""examples/ci/gitlab-ci.yml, run job by job against a bare repository standing for GitLab's.

The apply job pushes through the URL built from DINGSYNC_PUSH_TOKEN, which git is told to
map onto the bare repository, so the recipe's own remote line is the one that pushes.
"""

from __future__ import annotations

import json

import pytest

import dingsync
from tests.ci.conftest import SECRETS
from tests.ci.harness import CI
from tests.ci.harness import GitLabJob
from tests.ci.harness import JobResult
from tests.ci.harness import Watch
from tests.ci.harness import cancel
from tests.ci.harness import gitlab_job
from tests.ci.harness import load_yaml
from tests.ci.test_github_recipe import MANY
from tests.ci.test_github_recipe import MANY_USERS
from tests.ci.test_github_recipe import ONBOARDING_ADDRESSES
from tests.ci.test_github_recipe import STATE
from tests.ci.test_github_recipe import WIKI
from tests.ci.test_github_recipe import emulator_addresses
from tests.ci.test_github_recipe import state_addresses

COMMIT_SCRIPT = CI.parent.parent / "ci" / "commit-state.sh"


def pipeline():
    return load_yaml(CI / "gitlab-ci.yml")


def predefined(remote, source: str, branch: str) -> dict[str, str]:
    variables = {
        "CI": "true",
        "CI_PIPELINE_SOURCE": source,
        "CI_DEFAULT_BRANCH": "main",
        "CI_SERVER_HOST": "gitlab.example.com",
        "CI_PROJECT_PATH": "team/todos",
        "CI_JOB_ID": "777",
        "DINGSYNC_PUSH_TOKEN": "glpat-test-token",
    }
    if source == "push":
        variables["CI_COMMIT_BRANCH"] = branch
        # Protected variables reach only pipelines of protected branches.
        variables.update(SECRETS)
    else:
        variables["CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"] = branch
        del variables["DINGSYNC_PUSH_TOKEN"]
    return variables


def apply(runner, remote, job="apply", **options) -> JobResult:
    runs = GitLabJob(runner, predefined(remote, "push", "main"), **options)
    return runs.run(pipeline(), job, checkout=remote.head())


def artifact_addresses(result: JobResult) -> list[str]:
    state = json.loads((result.artifacts / STATE).read_text(encoding="utf-8"))
    return sorted(state["records"])


def test_commit_lines_mirror_the_action_script():
    block = pipeline()[".dingsync-commit-state"]["script"]
    script = COMMIT_SCRIPT.read_text(encoding="utf-8")
    assert block == [script.split("set -eo pipefail\n", 1)[1]]


def test_success_pushes_the_state_and_keeps_it_as_an_artifact(runner, remote, emulator):
    result = apply(runner, remote)

    assert result.status == "success", result.log
    assert state_addresses(remote) == ONBOARDING_ADDRESSES
    assert remote.log()[0] == "dingsync: record applied state [skip ci]"
    assert artifact_addresses(result) == ONBOARDING_ADDRESSES
    assert result.after_script_ok and "nothing to push" in result.log.split("after_script")[1]
    version = dingsync.__version__
    spec = f"dingsync @ git+https://github.com/OWNER/dingsync@v{version}"
    assert result.pip == [["install", "--quiet", spec]]

    head = remote.head()
    assert apply(runner, remote).status == "success"
    assert remote.head() == head and len(emulator.records()) == 3


@pytest.mark.parametrize("emulator", [1], indirect=True)  # one to-do per user and day
def test_failed_apply_still_pushes_and_fails_the_job(runner, remote, emulator):
    result = apply(runner, remote)

    assert result.status == "failure"
    assert "pushed the state to main" in result.log
    made = emulator_addresses(emulator)
    assert len(made) == 2
    assert state_addresses(remote) == made == artifact_addresses(result)

    emulator.advance_clock(86400)
    assert apply(runner, remote).status == "success"
    assert len(emulator.records()) == 3


def test_cancelled_apply_is_pushed_by_after_script(runner, remote, emulator):
    remote.commit({"tasks.yaml": MANY}, "Badges for everyone")
    emulator.set_faults(latency_ms=150)
    kill = cancel("script", lambda: len(emulator.records()) >= 3)

    runs = GitLabJob(runner, predefined(remote, "push", "main"), watch=kill)
    variables = {"DINGSYNC_APPLY_ARGS": "--parallelism 1"}
    result = runs.run(_with_variables(pipeline(), "apply", variables), "apply", remote.head())

    assert kill.fired and result.status == "cancelled"
    assert result.after_script_ok, result.log
    # Killed without a chance to clean up: every create that was answered is in the state;
    # the one in flight (one at a time here) is found again by the next run.
    made = emulator_addresses(emulator)
    known = state_addresses(remote)
    assert len(made) - 1 <= len(known) and set(known) <= set(made)
    assert remote.show(STATE + ".lock") is None

    emulator.set_faults(latency_ms=0)
    assert apply(runner, remote).status == "success"
    assert len(emulator.records()) == len(MANY_USERS)


def test_push_rejected_because_main_moved_is_rebased_and_pushed(runner, remote, emulator):
    # The merge lands while apply runs: between the job's fetch and its push.
    stall = Watch(
        "script",
        lambda: len(emulator.records()) >= 1,
        lambda _: remote.commit({"README.md": "todos, edited\n"}, "Edit the README"),
    )
    result = apply(runner, remote, watch=stall)

    assert stall.fired and result.status == "success", result.log
    assert "rejected; rebasing" in result.log
    assert remote.log()[:2] == ["dingsync: record applied state [skip ci]", "Edit the README"]
    assert state_addresses(remote) == ONBOARDING_ADDRESSES


def test_push_that_cannot_be_rebased_fails_loudly_and_keeps_the_state(runner, remote, emulator):
    clash = Watch(
        "script",
        lambda: len(emulator.records()) >= 1,
        lambda _: remote.commit({STATE: '{"format": 1}\n'}, "Commit a state by hand"),
    )
    result = apply(runner, remote, watch=clash)

    assert result.status == "failure"
    assert "ERROR: the state was not pushed to main" in result.log
    assert remote.show(STATE) == '{"format": 1}\n'
    assert artifact_addresses(result) == ONBOARDING_ADDRESSES
    rescue = "dingsync/unpushed-state/777"
    assert f"it is on branch {rescue}" in result.log
    assert [b for b in remote.branches() if b.startswith("dingsync/")] == [rescue]
    assert state_addresses(remote, rescue) == ONBOARDING_ADDRESSES


def test_merge_request_plan_reads_the_state_of_the_default_branch(runner, remote, emulator):
    first = remote.head()
    assert apply(runner, remote).status == "success"
    remote.branch("feature", first)  # made before that apply: no state of its own
    task_file = remote.show("tasks.yaml", "feature") + WIKI
    feature = remote.commit({"tasks.yaml": task_file}, "Add the wiki to-do", branch="feature")

    runs = GitLabJob(runner, predefined(remote, "merge_request_event", "feature"))
    result = runs.run(pipeline(), "plan", checkout=feature)

    assert result.status == "success", result.log
    plan = (result.artifacts / "dingsync-plan.md").read_text(encoding="utf-8")
    assert "**Plan: 1 to create.**" in plan
    assert "`wiki@bob02`" in plan
    assert len(emulator.records()) == 3


def test_manual_force_job_is_the_only_one_with_force():
    jobs = pipeline()
    apply_job, force_job = gitlab_job(jobs, "apply"), gitlab_job(jobs, "apply-force")
    assert apply_job["variables"]["DINGSYNC_APPLY_ARGS"] == ""
    assert force_job["variables"]["DINGSYNC_APPLY_ARGS"] == "--force"
    assert [rule.get("when") for rule in force_job["rules"]] == ["manual"]
    assert force_job["allow_failure"] is True
    # Otherwise the same job: one resource group, the same script and after_script.
    for key in ("resource_group", "script", "after_script", "artifacts", "interruptible"):
        assert force_job[key] == apply_job[key]
    assert "--force" not in " ".join(apply_job["script"])


def _with_variables(jobs, name, variables):
    jobs = dict(jobs)
    jobs[name] = {**jobs[name], "variables": {**jobs[name]["variables"], **variables}}
    return jobs
