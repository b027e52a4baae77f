"""The recipes and the action pass the checks a security reviewer runs, offline.

zizmor (static analysis of GitHub Actions) with its most demanding persona short of
pedantic, and check-jsonschema against the schemas GitHub and GitLab publish, which
check-jsonschema ships with itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci.harness import ACTION
from tests.ci.harness import CI

BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="zizmor needs Python 3.11; the newer runs check this"
)
def test_zizmor_finds_nothing():
    result = run(
        str(BIN / "zizmor"),
        "--offline",
        "--no-config",
        "--persona=auditor",
        "--format=plain",
        str(CI / "github-actions.yml"),
        str(ACTION),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("schema", "path", "extra"),
    [
        ("vendor.github-workflows", CI / "github-actions.yml", []),
        ("vendor.github-actions", ACTION, []),
        # The transform reads GitLab's !reference tags.
        ("vendor.gitlab-ci", CI / "gitlab-ci.yml", ["--data-transform", "gitlab-ci"]),
    ],
    ids=["github-workflow", "github-action", "gitlab-ci"],
)
def test_valid_against_the_official_schema(schema, path, extra):
    result = run(str(BIN / "check-jsonschema"), "--builtin-schema", schema, *extra, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
