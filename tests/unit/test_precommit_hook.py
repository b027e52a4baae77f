"""The pre-commit hook of .pre-commit-hooks.yaml, run the way pre-commit runs it.

pre-commit splits ``entry`` with shlex, adds ``args`` and then the matching staged files,
and runs that with the hook's environment first on PATH; here the current interpreter,
which has dingsync installed, stands in for that environment's ``python``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tasks.yaml"
INVALID = """\
version: 1
tasks:
  - key: laptop
    userid: alice01
    titel: 领取笔记本电脑
    url: https://intranet.example.com/it/laptop
    form: {说明: 到 IT 服务台领取}
"""


@pytest.fixture(scope="module")
def hook():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (found,) = [h for h in hooks if h["id"] == "dingsync-validate"]
    return found


def run_hook(hook, *filenames: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [*shlex.split(hook["entry"]), *hook.get("args", [])]
    if hook.get("pass_filenames", True):
        command += [str(f) for f in filenames]
    if command[0] == "python":
        command[0] = sys.executable
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def invalid(tmp_path):
    path = tmp_path / "tasks-invalid.yaml"
    path.write_text(INVALID, encoding="utf-8")
    return path


def test_hook_declaration(hook):
    assert hook["language"] == "python"
    assert hook.get("pass_filenames", True) is True
    pattern = re.compile(hook["files"])
    for name in ("tasks.yaml", "examples/tasks.yaml", "team/tasks-onboarding.yml"):
        assert pattern.search(name), name
    for name in ("state/tasks.state.json", "mytasks.yaml", "tasks/README.md", ".gitlab-ci.yml"):
        assert not pattern.search(name), name


def test_valid_file_passes(hook, tmp_path):
    result = run_hook(hook, EXAMPLE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"tasks\.yaml: valid \(\d+ tasks, \d+ records\)", result.stdout)


def test_invalid_file_fails(hook, invalid, tmp_path):
    result = run_hook(hook, invalid, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{invalid}:5:5: tasks[0].titel: unknown field 'titel'" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_file_of_a_batch_is_checked(hook, invalid, tmp_path):
    result = run_hook(hook, invalid, EXAMPLE, cwd=tmp_path)
    assert result.returncode == 1
    assert "tasks[0].titel" in result.stderr
    assert re.search(r"tasks\.yaml: valid \(\d+ tasks, \d+ records\)", result.stdout)
