"""Shared test helpers: what the emulator holds, its clock, and the CLI run as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import CREATOR

DAY = 24 * 3600
OPEN = 0
DONE = 1


# ------------------------------------------------------------------ what DingTalk holds


def remote_records(emulator: Any) -> list[dict[str, Any]]:
    """Every to-do the emulator holds, of either API, as ``records()`` shows legacy ones
    (v1.0 to-dos once per executor): record_id, userid, title, status."""
    return [*emulator.records(), *emulator.todo_records()]


def _is(emulator: Any, record: dict[str, Any], userid: str) -> bool:
    # A restarted emulator may name a v1.0 executor by unionId only.
    if record["userid"] == userid:
        return True
    try:
        return "todo" in record and record["userid"] == emulator.union_id(userid)
    except KeyError:
        return False


def open_counts(emulator: Any) -> Counter[tuple[str, str]]:
    """Open to-dos on the emulator, counted by (userid, title)."""
    return Counter(
        (r["userid"], r["title"]) for r in remote_records(emulator) if r["status"] == OPEN
    )


def records_of(emulator: Any, userid: str, title: str) -> list[dict[str, Any]]:
    """Every record (open or done) of ``userid`` with ``title``, oldest first."""
    return [r for r in remote_records(emulator) if _is(emulator, r, userid) and r["title"] == title]


def open_of(emulator: Any, userid: str, title: str) -> list[dict[str, Any]]:
    return [r for r in records_of(emulator, userid, title) if r["status"] == OPEN]


def assert_no_duplicates(emulator: Any) -> None:
    """At most one open to-do per userid and title: a second one is a duplicate."""
    duplicates = {k: n for k, n in open_counts(emulator).items() if n > 1}
    assert duplicates == {}, f"duplicate open to-dos (userid, title): {duplicates}"


def record_ids(emulator: Any) -> set[str]:
    return {r["record_id"] for r in remote_records(emulator)}


def next_day(emulator: Any) -> None:
    """Move the emulator's clock a day on, past DingTalk's one-identical-to-do-a-day rule."""
    emulator.advance_clock(DAY)


# ------------------------------------------------------------------ state files


def state_doc(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return doc


def assert_in_step(
    emulator: Any, state_path: Path, expected: Mapping[str, tuple[str, str]]
) -> None:
    """Every address of ``expected`` (address -> (userid, title)) has exactly one open
    to-do on the emulator, and the state holds that very record as open."""
    records = state_doc(state_path)["records"]
    for address, (userid, title) in expected.items():
        found = open_of(emulator, userid, title)
        assert len(found) == 1, f"{address}: {len(found)} open to-dos on DingTalk"
        assert address in records, f"{address} is not in the state"
        record = records[address]
        assert record["record_id"] == found[0]["record_id"], f"{address}: state and remote differ"
        assert record["status"] == "open", f"{address} is {record['status']} in the state"
        assert not record.get("missing"), f"{address} is marked missing in the state"


def assert_not_open(
    emulator: Any, state_path: Path, removed: Mapping[str, tuple[str, str]]
) -> None:
    """No address of ``removed`` has an open to-do, remotely or in the state."""
    records = state_doc(state_path)["records"]
    for address, (userid, title) in removed.items():
        assert open_of(emulator, userid, title) == [], f"{address} is still open on DingTalk"
        if address in records:
            assert records[address]["status"] == "done", f"{address} is open in the state"


def missing_marks(state_path: Path) -> list[str]:
    records = state_doc(state_path)["records"]
    return sorted(a for a, r in records.items() if r.get("missing"))


# ------------------------------------------------------------------ task files


def many_tasks(
    path: Path, count: int, users: int, title: str = "第{i}项检查", api: str = "workrecord"
) -> Path:
    """A task file of ``count`` one-user tasks spread over ``users`` userids."""
    lines = ["version: 1", "defaults:", "  url: https://intranet.example.com/t", "tasks:"]
    if api == "todo":
        lines[1:3] = ["api: todo", "defaults:", "  url: https://intranet.example.com/t"]
        lines.insert(3, f"  creator_userid: {CREATOR}")
    for i in range(count):
        lines += [
            f"  - key: task-{i:03d}",
            f"    userid: {user_of(i, users)}",
            f"    title: {title.format(i=i)}",
            f"    form: {{说明: 编号 {i}}}" if api != "todo" else f"    description: 编号 {i}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def user_of(i: int, users: int) -> str:
    return f"user{i % users:02d}"


def many_expected(count: int, users: int, title: str = "第{i}项检查") -> dict[str, tuple[str, str]]:
    return {
        f"task-{i:03d}@{user_of(i, users)}": (user_of(i, users), title.format(i=i))
        for i in range(count)
    }


# ------------------------------------------------------------------ output


def said(run: Any, phrase: str) -> bool:
    """Whether ``phrase`` appears, case-insensitively, in stdout and stderr together."""
    return phrase.lower() in (run.out + "\n" + run.err).lower()


# ------------------------------------------------------------------ the CLI as a process


def cli(
    cwd: Path,
    endpoint: str,
    *args: str,
    key: str = APP_KEY,
    secret: str = APP_SECRET,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``dingsync ARGS`` in ``cwd`` against ``endpoint`` with the app's credentials."""
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GITHUB_STEP_SUMMARY", "DINGSYNC_TEST_EXIT_AFTER_EVENTS")
    }
    full.update(
        {
            "DINGTALK_APP_KEY": key,
            "DINGTALK_APP_SECRET": secret,
            "DINGSYNC_ENDPOINT": endpoint,
            "NO_COLOR": "1",
            **(env or {}),
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "dingsync", *args],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Finished:
    """A finished process, shaped like the in-process runner's result."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code = code
        self.out = out
        self.err = err


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> Finished:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"dingsync did not end within {timeout}s: {err}") from None
    return Finished(proc.returncode, out, err)


def run_cli(cwd: Path, endpoint: str, *args: str, **kwargs: Any) -> Finished:
    return finish(cli(cwd, endpoint, *args, **kwargs))


def stop_all(procs: list[subprocess.Popen[str]]) -> None:
    """Kill what a failed test left running, so that no run outlives its emulator."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.01)


def adds(emulator: Any) -> int:
    """Create requests (workrecord/add, todo/create) the emulator has received so far."""
    counts = emulator.call_counts()
    return int(counts.get("workrecord/add", 0)) + int(counts.get("todo/create", 0))


def complete_remote(emulator: Any, record_id: str) -> None:
    """Complete a to-do of either API as its assignee would."""
    if any(r["record_id"] == record_id for r in emulator.todo_records()):
        emulator.complete_todo(record_id)
    else:
        emulator.complete(record_id)


def retitle_remote(emulator: Any, record_id: str, title: str) -> None:
    """Change a to-do's title on DingTalk's side, as a user of either API would."""
    if any(r["record_id"] == record_id for r in emulator.todo_records()):
        emulator.modify_todo(record_id, subject=title)
    else:
        emulator.modify(record_id, title=title)


def delete_remote(emulator: Any, record_id: str) -> None:
    """Delete a to-do of either API as a user would."""
    if any(r["record_id"] == record_id for r in emulator.todo_records()):
        emulator.delete_todo(record_id)
    else:
        emulator.delete(record_id)
