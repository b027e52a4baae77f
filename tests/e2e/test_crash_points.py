"""A crash after any journal event of an apply loses nothing and duplicates nothing.

DINGSYNC_TEST_EXIT_AFTER_EVENTS=N ends dingsync at once (as a kill would) right after the
N-th journal event of the run was made durable. One apply that creates, replaces and
completes is cut after every event in turn, each time from the same starting point (the
same state file, the same DingTalk data); then a plain apply, a day later so that DingTalk's
same-day rule hides no duplicate, must bring everything in line.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import write_tasks
from tests.helpers import assert_in_step
from tests.helpers import assert_no_duplicates
from tests.helpers import assert_not_open
from tests.helpers import next_day
from tests.helpers import remote_records
from tests.helpers import run_cli
from tests.helpers import state_doc

pytestmark = pytest.mark.slow

STATE = Path("state/tasks.state.json")
MOST_EVENTS = 80  # far more than one small apply makes: a run past it was never cut

BEFORE = """
    version: 1
    defaults:
      url: https://intranet.example.com/onboarding
    tasks:
      - key: laptop
        userid: alice01
        title: 领取笔记本电脑
        form: {说明: 到 IT 服务台领取}
      - key: badge
        userid: bob02
        title: 领取工牌
        form: {说明: 到前台领取}
      - key: nda
        userid: alice01
        title: 签署保密协议
        form: {说明: 在 HR 系统中签署}
"""

# laptop is replaced (new title), badge is completed (dropped), nda stays, training is new.
AFTER = """
    version: 1
    defaults:
      url: https://intranet.example.com/onboarding
    tasks:
      - key: laptop
        userid: alice01
        title: 领取笔记本电脑和显示器
        form: {说明: 到 IT 服务台领取}
      - key: nda
        userid: alice01
        title: 签署保密协议
        form: {说明: 在 HR 系统中签署}
      - key: training
        userid: bob02
        title: 参加入职培训
        form: {说明: 周一上午十点}
"""

DESIRED = {
    "laptop@alice01": ("alice01", "领取笔记本电脑和显示器"),
    "nda@alice01": ("alice01", "签署保密协议"),
    "training@bob02": ("bob02", "参加入职培训"),
}
REMOVED = {
    "badge@bob02": ("bob02", "领取工牌"),
    "laptop@alice01 (old title)": ("alice01", "领取笔记本电脑"),
}


def emulator_config(data: Path) -> EmulatorConfig:
    return EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=0, data_path=data)


class StartingPoint(NamedTuple):
    root: Path  # holds base/ (the project folder) and dingtalk.json (the emulator's data)
    port: int  # the emulator's port: a state belongs to its endpoint
    records: int  # how many to-dos DingTalk holds in the end


@pytest.fixture
def starting_point(tmp_path, api) -> StartingPoint:
    """BEFORE applied: a project folder (state and task file) and the emulator's data."""
    base = tmp_path / "base"
    base.mkdir()
    write_tasks(base / "tasks.yaml", BEFORE, api)
    emulator = Emulator(emulator_config(tmp_path / "dingtalk.json"))
    emulator.start()
    try:
        run = run_cli(base, emulator.url, "apply", "-y")
        assert run.code == 0, run.err
        assert len(remote_records(emulator)) == 3
        port = int(emulator.url.rsplit(":", 1)[1])
    finally:
        emulator.stop()
    assert (tmp_path / "dingtalk.json").exists()
    write_tasks(base / "tasks.yaml", AFTER, api)
    # A title change is a replace (one more record) with workrecord, an update with v1.0.
    return StartingPoint(tmp_path, port, 5 if api == "workrecord" else 4)


def cut_and_recover(start: StartingPoint, cut_after: int) -> int:
    """From the starting point, apply AFTER with a cut after ``cut_after`` events, then
    apply again a day later and check the outcome; return the cut run's exit code."""
    root = start.root
    work = root / f"cut-{cut_after:02d}"
    shutil.copytree(root / "base", work)
    data = root / f"dingtalk-{cut_after:02d}.json"
    shutil.copy(root / "dingtalk.json", data)
    emulator = Emulator(emulator_config(data))
    emulator.start(port=start.port)  # the same DingTalk, restored from its data
    try:
        return _cut_and_recover(emulator, work, cut_after, start.records)
    finally:
        emulator.stop()


def _cut_and_recover(emulator: Emulator, work: Path, cut_after: int, records: int) -> int:
    cut = run_cli(
        work,
        emulator.url,
        "apply",
        "-y",
        env={"DINGSYNC_TEST_EXIT_AFTER_EVENTS": str(cut_after)},
    )
    assert "Traceback" not in cut.err
    assert cut.code not in (1, 2, 3), f"cut after {cut_after}: the apply failed: {cut.err}"
    if (work / "state" / "tasks.state.json.lock").exists():
        # The cut run was a kill: its lock is stale, as a user would see it.
        unlock = run_cli(work, emulator.url, "force-unlock", "-y")
        assert unlock.code == 0, unlock.err
    next_day(emulator)
    rest = run_cli(work, emulator.url, "apply", "-y")
    context = f"cut after {cut_after} events (exit {cut.code})"
    assert rest.code == 0, f"{context}: {rest.out}{rest.err}"
    assert "Traceback" not in rest.err
    assert_no_duplicates(emulator)
    assert_in_step(emulator, work / STATE, DESIRED)
    assert_not_open(emulator, work / STATE, REMOVED)
    assert state_doc(work / STATE)["pending"] == {}, context
    assert len(remote_records(emulator)) == records, f"{context}: {remote_records(emulator)}"
    assert not (work / "state" / "tasks.state.json.lock").exists()
    assert not (work / "state" / "tasks.state.json.journal").exists()
    return cut.code


def test_a_cut_after_any_journal_event_is_recovered_without_duplicates(starting_point):
    """Replaces the wall-clock kill test: every crash point of a small apply, in turn."""
    cut_codes = []
    for cut_after in range(1, MOST_EVENTS + 1):
        code = cut_and_recover(starting_point, cut_after)
        if code == 0:
            break  # this run made fewer events than the cut point: it finished
        cut_codes.append(code)
    else:
        pytest.fail(f"the apply was still cut after {MOST_EVENTS} events")
    # One create, one replace or update and one completion: each change makes at least
    # one durable event, so at least three cut points were tried.
    assert len(cut_codes) >= 3, f"only {len(cut_codes)} cut points"
    print(f"\ncut points tried: {len(cut_codes)}, exit codes {sorted(set(cut_codes))}")
