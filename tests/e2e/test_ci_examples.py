"""The pipelines of examples/ci/ work: their dingsync lines run, in order, against the emulator.

Each pipeline's merge-request job runs with no credentials (as for a fork), its main-branch
job with credentials and DINGSYNC_ENDPOINT pointing at the emulator. Only the lines that
invoke dingsync run; shell around them (``|| status=$?``, ``> FILE``) is honoured as a
shell would.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"
CONTROL = {"||", "&&", ";", "|"}
SECRET_NAMES = ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGSYNC_PUSH_TOKEN")


def load(name: str) -> dict[Any, Any]:
    return yaml.safe_load((CI / name).read_text(encoding="utf-8"))


def shell_lines(script: str | list[str]) -> list[str]:
    """The commands of a step (one string) or a script (a list of strings), one a line."""
    items = [script] if isinstance(script, str) else script
    lines: list[str] = []
    for item in items:
        for line in item.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def dingsync_commands(lines: list[str]) -> list[tuple[list[str], str | None]]:
    """(arguments after ``dingsync``, file stdout is redirected to) for each dingsync line."""
    commands = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if not words or words[0] != "dingsync":
            continue
        cut = next((i for i, w in enumerate(words) if w in CONTROL), len(words))
        words = words[:cut]
        target = None
        if ">" in words:
            at = words.index(">")
            words, target = words[:at], words[at + 1]
        commands.append((words[1:], target))
    return commands


def run_all(commands: list[tuple[list[str], str | None]]) -> list[str]:
    outputs = []
    for args, target in commands:
        run = dingsync(*args)
        assert run.code == 0, f"dingsync {shlex.join(args)}: {run.err}"
        if target:
            Path(target).write_text(run.out, encoding="utf-8")
        outputs.append(run.out)
    return outputs


def subcommands(commands: list[tuple[list[str], str | None]]) -> list[str]:
    return [args[0] for args, _ in commands]


@pytest.fixture
def project(workdir):
    """A repository checkout: the task file, no state yet."""
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    return workdir


def as_merge_request(monkeypatch, summary: Path | None = None) -> None:
    for name in ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGSYNC_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    if summary is not None:
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))


def as_main_branch(monkeypatch, emulator) -> None:
    monkeypatch.setenv("DINGTALK_APP_KEY", APP_KEY)
    monkeypatch.setenv("DINGTALK_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("DINGSYNC_ENDPOINT", emulator.url)


def assert_applied(project: Path, emulator) -> None:
    records = emulator.records()
    assert sorted((r["userid"], r["title"]) for r in records) == [
        ("alice01", "签署保密协议"),
        ("alice01", "领取笔记本电脑"),
        ("bob02", "领取笔记本电脑"),
    ]
    assert (project / "state" / "tasks.state.json").is_file()
    assert dingsync("state", "list").out.split() == [
        "laptop@alice01",
        "laptop@bob02",
        "nda@alice01",
    ]


# ---------------------------------------------------------------- GitHub Actions


def github_jobs() -> tuple[dict[str, Any], dict[str, Any]]:
    workflow = load("github-actions.yml")
    jobs = workflow["jobs"]
    return jobs["plan"], jobs["apply"]


def github_commands(job: dict[str, Any]) -> list[tuple[list[str], str | None]]:
    lines = [line for step in job["steps"] if "run" in step for line in shell_lines(step["run"])]
    return dingsync_commands(lines)


def test_github_workflow_shape():
    workflow = load("github-actions.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers and "pull_request_target" not in triggers
    assert triggers["push"]["branches"] == ["main"]
    assert "env" not in workflow, "workflow-level env would reach the pull-request job"
    plan, apply = github_jobs()
    assert "pull_request" in plan["if"] and "refs/heads/main" in apply["if"]
    text = yaml.safe_dump(plan)
    assert "secrets." not in text and not any(name in text for name in SECRET_NAMES)
    assert apply["concurrency"]["group"]
    assert apply["concurrency"].get("cancel-in-progress", False) is False
    assert apply["permissions"] == {"contents": "write"}
    secret_env = {
        name: value for step in apply["steps"] for name, value in step.get("env", {}).items()
    }
    assert secret_env == {
        "DINGTALK_APP_KEY": "${{ secrets.DINGTALK_APP_KEY }}",
        "DINGTALK_APP_SECRET": "${{ secrets.DINGTALK_APP_SECRET }}",
    }
    for job in (plan, apply):
        pythons = [s["with"]["python-version"] for s in job["steps"] if "setup-python" in str(s)]
        assert pythons == ["3.11"]
    commit = " ".join(shell_lines(apply["steps"][-1]["run"]))
    assert "git add state/" in commit and "git diff --cached --quiet" in commit
    assert "git push" in commit


def test_github_workflow_runs(project, emulator, monkeypatch):
    plan_job, apply_job = github_jobs()
    plan_commands, apply_commands = github_commands(plan_job), github_commands(apply_job)
    assert subcommands(plan_commands) == ["validate", "plan"]
    assert subcommands(apply_commands) == ["apply"]

    summary = project / "step-summary.md"
    as_merge_request(monkeypatch, summary)
    run_all(plan_commands)
    markdown = summary.read_text(encoding="utf-8")
    assert "#### dingsync plan for `tasks.yaml`" in markdown
    assert "| + | create | `laptop@bob02` |" in markdown
    assert "**Plan: 3 to create, 0 to replace, 0 to complete.**" in markdown
    assert emulator.records() == [] and not (project / "state" / "tasks.state.json").exists()

    summary.unlink()
    as_main_branch(monkeypatch, emulator)
    run_all(apply_commands)
    assert_applied(project, emulator)
    assert "#### dingsync drift" in summary.read_text(encoding="utf-8")

    # The next pull request plans against the committed state.
    summary.unlink()
    as_merge_request(monkeypatch, summary)
    run_all(plan_commands)
    assert "**No changes.**" in summary.read_text(encoding="utf-8")


# ---------------------------------------------------------------- GitLab CI


def gitlab_jobs() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    pipeline = load("gitlab-ci.yml")
    return pipeline["default"], pipeline["plan"], pipeline["apply"]


def test_gitlab_pipeline_shape():
    default, plan, apply = gitlab_jobs()
    assert default["image"] == "python:3.11"
    assert [r["if"] for r in plan["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    assert [r["if"] for r in apply["rules"]] == ["$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"]
    for section in (default, plan):
        text = yaml.safe_dump(section)
        assert not any(name in text for name in SECRET_NAMES)
    assert apply["resource_group"]
    assert apply.get("interruptible", False) is False
    script = " ".join(shell_lines(apply["script"]))
    assert "git add state/" in script and "git diff --cached --quiet" in script
    assert "git push" in script and "${DINGSYNC_PUSH_TOKEN}" in script


def test_gitlab_pipeline_runs(project, emulator, monkeypatch):
    _, plan_job, apply_job = gitlab_jobs()
    plan_commands = dingsync_commands(shell_lines(plan_job["script"]))
    apply_commands = dingsync_commands(shell_lines(apply_job["script"]))
    assert subcommands(plan_commands) == ["validate", "plan"]
    assert subcommands(apply_commands) == ["apply"]

    as_merge_request(monkeypatch)
    run_all(plan_commands)
    artifact = project / plan_job["artifacts"]["paths"][0]
    markdown = artifact.read_text(encoding="utf-8")
    assert "#### dingsync plan for `tasks.yaml`" in markdown
    assert "**Plan: 3 to create, 0 to replace, 0 to complete.**" in markdown
    assert emulator.records() == []

    as_main_branch(monkeypatch, emulator)
    run_all(apply_commands)
    assert_applied(project, emulator)

    as_merge_request(monkeypatch)
    run_all(plan_commands)
    assert "**No changes.**" in artifact.read_text(encoding="utf-8")
