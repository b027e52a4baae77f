"""Bad input: one clear line per problem, exit 1, no traceback, no call, state untouched."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks

INVALID = sorted((Path(__file__).parent.parent / "fixtures" / "invalid").glob("*.yaml"))


@pytest.fixture
def managed_state(workdir, api):
    """A real state from a real apply (of either API), so 'byte-identical' means something."""
    write_tasks(workdir / "good.yaml", ONBOARDING, api)
    assert dingsync("apply", "-y", "-f", "good.yaml", "--state", "state/live.json").code == 0
    return workdir / "state" / "live.json"


def test_corpus_is_large_enough():
    assert len(INVALID) >= 30


@pytest.mark.parametrize("fixture", INVALID, ids=[p.stem for p in INVALID])
def test_bad_task_file_is_refused_cleanly(fixture, workdir, managed_state, emulator):
    target = workdir / fixture.name
    shutil.copyfile(fixture, target)
    before = managed_state.read_bytes()
    calls_before = sum(emulator.call_counts().values())
    for args in (["validate"], ["apply", "-y"], ["plan"]):
        run = dingsync(*args, "-f", fixture.name, "--state", "state/live.json")
        assert run.code == 1, (args, run.out, run.err)
        assert "Traceback" not in run.err
        lines = run.err.strip().splitlines()
        assert lines, "no message at all"
        for line in lines:
            assert re.match(rf"^{re.escape(fixture.name)}:\d+:\d+: \S.*: \S", line), line
    assert managed_state.read_bytes() == before
    assert sum(emulator.call_counts().values()) == calls_before


def test_validate_json_lists_every_problem(workdir):
    write_tasks(
        workdir / "tasks.yaml",
        """
        version: 1
        tasks:
          - key: Bad Key
            userid: alice01
            title: ok
            url: ftp://example.com
            form: {a: b}
            colour: red
        """,
    )
    run = dingsync("validate", "--json")
    assert run.code == 1
    doc = run.json()
    assert doc["valid"] is False
    assert {p["path"] for p in doc["problems"]} >= {"tasks[0].key", "tasks[0].url"}
    assert all(p["line"] >= 3 for p in doc["problems"])


def test_corrupt_state_is_reported_and_never_overwritten(workdir, managed_state, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    # a second write, so that a .backup of the first exists to point the user at
    assert dingsync("state", "rm", "nda@alice01", "--state", "state/live.json").code == 0
    truncated = managed_state.read_bytes()[:100]
    managed_state.write_bytes(truncated)
    for args in (["plan"], ["apply", "-y"], ["drift"]):
        run = dingsync(*args, "--state", "state/live.json")
        assert run.code == 1
        assert "live.json" in run.err and "Traceback" not in run.err
        assert "backup" in run.err
    assert managed_state.read_bytes() == truncated


def test_newer_state_format_is_refused(workdir, managed_state, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    data = json.loads(managed_state.read_text())
    data["format"] = 99
    managed_state.write_text(json.dumps(data))
    before = managed_state.read_bytes()
    run = dingsync("plan", "--state", "state/live.json")
    assert run.code == 1 and "newer" in run.err
    assert managed_state.read_bytes() == before
