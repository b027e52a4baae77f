"""The shape of examples/ci/ and action.yml: what a reviewer checks by reading them.

What the jobs do when they run, and how each way a job ends leaves the state, is tested by
running them in tests/ci/. Here: triggers, secrets kept from pull requests, permissions,
serialised applies, actions pinned by commit, the dingsync release pinned to this one, and
the action's inputs matching what the workflow passes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

import dingsync

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
SECRET_NAMES = ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGSYNC_PUSH_TOKEN")
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # v(\d+\.\d+\.\d+)$")
TASK_PATHS = ["tasks.yaml", "state/**"]


class _Loader(yaml.SafeLoader):
    pass


# GitLab's !reference tag, read as the plain list it names.
_Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))


def load(path: Path) -> dict[Any, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def github_jobs() -> tuple[dict[str, Any], dict[str, Any]]:
    jobs = load(CI / "github-actions.yml")["jobs"]
    return jobs["plan"], jobs["apply"]


def uses_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if re.match(r"\s*(-\s+)?uses:", line)]


def test_github_workflow_shape():
    workflow = load(CI / "github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and "pull_request_target" not in triggers
    assert triggers["push"]["branches"] == ["main"]
    for event in ("pull_request", "push"):
        assert triggers[event]["paths"][:2] == TASK_PATHS
    force = triggers["workflow_dispatch"]["inputs"]["force"]
    assert (force["type"], force["default"]) == ("boolean", False)
    assert "env" not in workflow, "workflow-level env would reach the pull-request job"
    assert workflow["permissions"] == {}
    plan, apply = github_jobs()
    assert "pull_request" in plan["if"] and "refs/heads/main" in apply["if"]
    text = yaml.safe_dump(plan)
    assert "secrets." not in text and not any(name in text for name in SECRET_NAMES)
    assert plan["permissions"] == {"contents": "read"}
    assert apply["permissions"] == {"contents": "write"}
    assert apply["concurrency"]["group"]
    assert apply["concurrency"].get("cancel-in-progress", False) is False
    assert apply["timeout-minutes"] > int(apply["steps"][-1]["with"]["apply-timeout-minutes"])
    secret_env = {
        name: value for step in apply["steps"] for name, value in step.get("env", {}).items()
    }
    assert secret_env == {
        "DINGTALK_APP_KEY": "${{ secrets.DINGTALK_APP_KEY }}",
        "DINGTALK_APP_SECRET": "${{ secrets.DINGTALK_APP_SECRET }}",
    }
    for job, command in ((plan, "plan"), (apply, "apply")):
        checkout, action = job["steps"]
        assert checkout["uses"].startswith("actions/checkout@")
        # No token left on disk: the action hands one to git in its commit step only.
        assert checkout["with"]["persist-credentials"] is False
        assert action["uses"].startswith("OWNER/dingsync@")
        assert action["with"]["command"] == command


def test_every_action_is_pinned_by_commit_with_its_version():
    for path in (CI / "github-actions.yml", ROOT / "action.yml"):
        lines = uses_lines(path)
        assert lines
        for line in lines:
            assert PINNED.match(line), f"{path.name}: not pinned by commit hash: {line.strip()}"


def test_the_recipes_pin_this_release_of_dingsync():
    version = dingsync.__version__
    own = [PINNED.match(line) for line in uses_lines(CI / "github-actions.yml")]
    assert {m.group(3) for m in own if m and m.group(1) == "OWNER/dingsync"} == {version}
    gitlab = load(CI / "gitlab-ci.yml")
    assert gitlab["variables"]["DINGSYNC_VERSION"] == version
    install = gitlab["default"]["before_script"][0]
    assert '"dingsync @ git+https://github.com/OWNER/dingsync@v$DINGSYNC_VERSION"' in install


def test_the_workflow_passes_only_inputs_the_action_has():
    inputs = load(ROOT / "action.yml")["inputs"]
    for job in github_jobs():
        (action,) = [step for step in job["steps"] if "dingsync@" in step.get("uses", "")]
        assert set(action["with"]) <= set(inputs), set(action["with"]) - set(inputs)
        assert not [name for name, spec in inputs.items() if spec.get("required")]


def test_the_action_keeps_expressions_out_of_its_shell():
    # Inputs reach the shell as environment variables, never pasted into the script.
    for step in load(ROOT / "action.yml")["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("id")


def test_gitlab_pipeline_shape():
    pipeline = load(CI / "gitlab-ci.yml")
    default, plan, apply = pipeline["default"], pipeline["plan"], pipeline["apply"]
    assert default["image"] == "python:3.11"
    assert default["cache"]["paths"] == [".cache/pip"]
    assert pipeline["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    assert [r["if"] for r in plan["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    assert [r["if"] for r in apply["rules"]] == ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]
    for rule in (*plan["rules"], *apply["rules"]):
        assert rule["changes"][:2] == ["tasks.yaml", "state/**/*"]
    for section in (default, plan, pipeline["variables"]):
        text = yaml.safe_dump(section)
        assert not any(name in text for name in SECRET_NAMES)
    assert apply["resource_group"]
    assert apply.get("interruptible", False) is False
    assert apply["artifacts"]["when"] == "always"
    # The script stops early enough for after_script to push within the job's timeout.
    assert apply["variables"]["RUNNER_SCRIPT_TIMEOUT"] == "50m" and apply["timeout"] == "1h"
    assert "${DINGSYNC_PUSH_TOKEN}" in apply["variables"]["DINGSYNC_REMOTE"]
