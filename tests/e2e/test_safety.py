"""The state file is a cache, not the only truth: lost, moved, renamed or foreign states,
sandbox runs, wrong endpoints, assignees' completions, key renames and signals never
duplicate a to-do, close one that should stay open, or lose track of one.

DingTalk refuses a second identical to-do for a user on the same day (errcode 854001), which
would hide a duplicate; where one could appear, the emulator's clock is moved a day on first.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks
from tests.helpers import DONE
from tests.helpers import OPEN
from tests.helpers import adds
from tests.helpers import assert_in_step
from tests.helpers import assert_no_duplicates
from tests.helpers import assert_not_open
from tests.helpers import cli
from tests.helpers import complete_remote
from tests.helpers import finish
from tests.helpers import many_expected
from tests.helpers import many_tasks
from tests.helpers import missing_marks
from tests.helpers import next_day
from tests.helpers import open_of
from tests.helpers import record_ids
from tests.helpers import records_of
from tests.helpers import remote_records
from tests.helpers import said
from tests.helpers import state_doc
from tests.helpers import stop_all
from tests.helpers import wait_until

STATE = Path("state/tasks.state.json")
LAPTOP = "领取笔记本电脑"
NDA = "签署保密协议"
# The three addresses of ONBOARDING: address -> (userid, title).
EXPECTED = {
    "laptop@alice01": ("alice01", LAPTOP),
    "laptop@bob02": ("bob02", LAPTOP),
    "nda@alice01": ("alice01", NDA),
}
OTHER_KEY = "ding-e2e-other-key"
OTHER_SECRET = "e2e-other-secret-51c2"


@pytest.fixture
def spawn():
    """Start the CLI as a process; whatever still runs at the end of the test is killed."""
    started = []

    def start(*args, **kwargs):
        proc = cli(*args, **kwargs)
        started.append(proc)
        return proc

    yield start
    stop_all(started)


def applied(workdir: Path, api: str = "workrecord") -> dict[str, str]:
    """ONBOARDING applied (for ``api``): address -> record_id."""
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    return {a: r["record_id"] for a, r in state_doc(workdir / STATE)["records"].items()}


def record_id(workdir: Path, address: str, state: Path = STATE) -> str:
    rid: str = state_doc(workdir / state)["records"][address]["record_id"]
    return rid


def use_remote(monkeypatch: pytest.MonkeyPatch, url: str, key: str = APP_KEY) -> None:
    secret = APP_SECRET if key == APP_KEY else OTHER_SECRET
    monkeypatch.setenv("DINGTALK_APP_KEY", key)
    monkeypatch.setenv("DINGTALK_APP_SECRET", secret)
    monkeypatch.setenv("DINGSYNC_ENDPOINT", url)


# ------------------------------------------------------------------ the reported defects


def test_sandbox_drift_against_the_real_state_is_refused(workdir, emulator):
    """Defect 1: `drift --sandbox --state <real state>` marked every real record missing."""
    ids = applied(workdir)
    before = (workdir / STATE).read_bytes()
    run = dingsync("drift", "--sandbox", "--state", str(STATE))
    assert run.code == 1, run.out + run.err
    assert said(run, "sandbox")
    assert (workdir / STATE).read_bytes() == before
    next_day(emulator)
    again = dingsync("apply", "-y")
    assert again.code == 0, again.err
    assert record_ids(emulator) == set(ids.values())
    assert_no_duplicates(emulator)
    assert_in_step(emulator, workdir / STATE, EXPECTED)


def test_force_unlock_refuses_the_lock_of_a_running_apply(workdir, emulator, spawn):
    """Defect 2: force-unlock removed the lock of an apply still running on this host."""
    many_tasks(workdir / "tasks.yaml", 8, users=2)
    emulator.set_faults(latency_ms=300)
    lock = workdir / "state" / "tasks.state.json.lock"
    first = spawn(workdir, emulator.url, "apply", "-y", "--parallelism", "1")
    wait_until(lambda: adds(emulator) >= 1 or first.poll() is not None, "the apply creates")
    assert first.poll() is None and lock.exists()
    unlock = dingsync("force-unlock", "-y")
    assert unlock.code == 1, unlock.out + unlock.err
    assert said(unlock, "--force")
    assert lock.exists()
    second = dingsync("apply", "-y")
    assert second.code == 1 and f"pid {first.pid}" in second.err
    done = finish(first)
    assert done.code == 0, done.err
    assert not lock.exists()
    emulator.set_faults(latency_ms=0)
    next_day(emulator)
    assert dingsync("apply", "-y").code == 0
    assert_no_duplicates(emulator)
    assert_in_step(emulator, workdir / STATE, many_expected(8, users=2))


def test_run_from_another_directory_says_there_is_no_state_and_adopts(
    workdir, emulator, monkeypatch, api
):
    """Defect 3: `-f ../team/tasks.yaml` elsewhere silently started a new state and
    recreated every to-do; drift there said "No drift" and exited 0."""
    team, other = workdir / "team", workdir / "other"
    team.mkdir()
    other.mkdir()
    monkeypatch.chdir(team)
    ids = applied(team, api)
    next_day(emulator)  # DingTalk would take the same to-dos again now
    monkeypatch.chdir(other)
    drift = dingsync("drift", "-f", "../team/tasks.yaml")
    assert drift.code == 1, drift.out + drift.err
    assert said(drift, "No state at")
    plan = dingsync("plan", "-f", "../team/tasks.yaml")
    assert said(plan, "No state at")
    run = dingsync("apply", "-f", "../team/tasks.yaml", "-y")
    assert run.code == 0, run.err
    assert record_ids(emulator) == set(ids.values()), "a to-do was created again"
    assert said(run, "No state at")
    assert said(run, "adopted")
    assert_in_step(emulator, other / STATE, EXPECTED)
    next_day(emulator)
    assert dingsync("apply", "-f", "../team/tasks.yaml", "-y").code == 0
    monkeypatch.chdir(team)
    assert dingsync("apply", "-y").code == 0
    assert record_ids(emulator) == set(ids.values())
    assert_no_duplicates(emulator)


def test_a_todo_the_assignee_completed_is_not_replaced_after_a_title_change(workdir, emulator, api):
    """Defect 4: a to-do its assignee completed got a brand-new to-do after a title change."""
    ids = applied(workdir, api)
    complete_remote(emulator, ids["nda@alice01"])
    write_tasks(workdir / "tasks.yaml", ONBOARDING.replace(NDA, "签署保密协议（2027 版）"), api)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert records_of(emulator, "alice01", "签署保密协议（2027 版）") == []
    assert [r["status"] for r in records_of(emulator, "alice01", NDA)] == [DONE]
    assert state_doc(workdir / STATE)["records"]["nda@alice01"]["status"] == "done"
    assert len(remote_records(emulator)) == 3
    next_day(emulator)
    assert dingsync("apply", "-y").code == 0
    assert records_of(emulator, "alice01", "签署保密协议（2027 版）") == []
    assert_in_step(emulator, workdir / STATE, {a: EXPECTED[a] for a in ids if a != "nda@alice01"})


def test_a_key_rename_keeps_the_old_todo_open_until_the_new_one_exists(workdir, emulator):
    """Defect 5: renaming a key the same day completed the old to-dos while DingTalk
    refused the new ones (854001), leaving the assignee with no open to-do at all."""
    ids = applied(workdir)
    renamed = ONBOARDING.replace("- key: nda", "- key: nda-2027")
    write_tasks(workdir / "tasks.yaml", renamed)
    same_day = dingsync("apply", "-y")
    assert [r["record_id"] for r in open_of(emulator, "alice01", NDA)] == [ids["nda@alice01"]]
    assert same_day.code == 1
    assert said(same_day, "skipped")
    assert state_doc(workdir / STATE)["records"]["nda@alice01"]["status"] == "open"
    next_day(emulator)
    next_run = dingsync("apply", "-y")
    assert next_run.code == 0, next_run.err
    (now_open,) = open_of(emulator, "alice01", NDA)
    assert now_open["record_id"] != ids["nda@alice01"]
    old = [r for r in emulator.records() if r["record_id"] == ids["nda@alice01"]]
    assert [r["status"] for r in old] == [DONE]
    renamed_expected = {**EXPECTED, "nda-2027@alice01": ("alice01", NDA)}
    del renamed_expected["nda@alice01"]
    assert_in_step(emulator, workdir / STATE, renamed_expected)
    records = state_doc(workdir / STATE)["records"]
    assert records.get("nda@alice01", {"status": "done"})["status"] == "done"
    assert_no_duplicates(emulator)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_apply_saves_the_state_and_releases_the_lock(
    workdir, emulator, spawn, signum, code, api
):
    """Defect 6: SIGTERM (a CI cancel or timeout) killed dingsync at once, leaving a stale
    lock and an unfolded journal; it must stop like SIGINT does."""
    many_tasks(workdir / "tasks.yaml", 12, users=2, api=api)
    emulator.set_faults(latency_ms=300)
    proc = spawn(workdir, emulator.url, "apply", "-y", "--parallelism", "2")
    wait_until(lambda: adds(emulator) >= 2 or proc.poll() is not None, "two creates are sent")
    assert proc.poll() is None
    proc.send_signal(signum)
    stopped = finish(proc, timeout=60)
    assert stopped.code == code, stopped.err
    assert not (workdir / "state" / "tasks.state.json.lock").exists()
    assert not (workdir / "state" / "tasks.state.json.journal").exists()
    held = record_ids(emulator)
    assert 0 < len(held) < 12, "no new change may start after the signal"
    in_state = {r["record_id"] for r in state_doc(workdir / STATE)["records"].values()}
    assert held <= in_state, "a record DingTalk holds is missing from the state"
    emulator.set_faults(latency_ms=0)
    next_day(emulator)
    rest = dingsync("apply", "-y")
    assert rest.code == 0, rest.err
    assert_no_duplicates(emulator)
    assert len(remote_records(emulator)) == 12
    assert_in_step(emulator, workdir / STATE, many_expected(12, users=2))


# ------------------------------------------------------------------ lost, moved, renamed


def test_a_lost_state_is_adopted_with_zero_creates(workdir, emulator, api):
    """Defect 3: a deleted state file made apply create every to-do again."""
    ids = applied(workdir, api)
    next_day(emulator)  # DingTalk would take the same to-dos again now
    for path in (workdir / "state").glob("tasks.state.json*"):
        path.unlink()
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert record_ids(emulator) == set(ids.values()), "a to-do was created again"
    assert said(run, "No state at")
    assert said(run, "adopted")
    assert_in_step(emulator, workdir / STATE, EXPECTED)
    for path in (workdir / "state").glob("tasks.state.json*"):
        path.unlink()
    doc = dingsync("apply", "-y", "--json").json()
    adopted = doc.get("adopted", doc["result"].get("adopted"))
    # A count; a list of the adopted addresses is read as its length.
    assert (adopted if isinstance(adopted, int) else len(adopted)) == 3, adopted
    assert doc["result"]["created"] == []
    next_day(emulator)
    assert dingsync("apply", "-y").code == 0
    assert record_ids(emulator) == set(ids.values())
    assert_in_step(emulator, workdir / STATE, EXPECTED)


def test_a_renamed_task_file_is_adopted_with_zero_creates(workdir, emulator, api):
    """Defect 3: a renamed task file (a new default state path) recreated every to-do."""
    ids = applied(workdir, api)
    next_day(emulator)  # DingTalk would take the same to-dos again now
    (workdir / "tasks.yaml").rename(workdir / "onboarding.yaml")
    run = dingsync("apply", "-f", "onboarding.yaml", "-y")
    assert run.code == 0, run.err
    assert record_ids(emulator) == set(ids.values()), "a to-do was created again"
    assert said(run, "No state at")
    assert said(run, "adopted")
    new_state = Path("state/onboarding.state.json")
    assert_in_step(emulator, workdir / new_state, EXPECTED)
    next_day(emulator)
    again = dingsync("apply", "-f", "onboarding.yaml", "-y")
    assert again.code == 0, again.err
    assert record_ids(emulator) == set(ids.values())
    assert_no_duplicates(emulator)


def test_drift_without_a_state_exits_1(workdir, emulator):
    """Defect 3: drift with no state said "No drift: 0 records checked" and exited 0."""
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    run = dingsync("drift")
    assert run.code == 1, run.out + run.err
    assert said(run, "No state at")
    assert not (workdir / STATE).exists()
    assert emulator.records() == []


# ------------------------------------------------------------------ a state knows its remote


def test_another_endpoint_is_refused_unless_forced(workdir, emulator, monkeypatch):
    """Defect 1: a drift against another DINGSYNC_ENDPOINT marked every record missing."""
    ids = applied(workdir)
    before = (workdir / STATE).read_bytes()
    with Emulator(EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=0)) as other:
        use_remote(monkeypatch, other.url)
        for command in (["drift"], ["apply", "-y"]):
            run = dingsync(*command)
            assert run.code == 1, run.out + run.err
            assert said(run, "belongs to")
            assert said(run, emulator.url) and said(run, other.url)
        assert (workdir / STATE).read_bytes() == before
        assert other.records() == []
        remote = state_doc(workdir / STATE)["remote"]
        assert isinstance(remote, dict) and APP_KEY not in str(remote)
        forced = dingsync("apply", "-y", "--force")
        assert forced.code == 0, forced.err
        assert len(open_of(other, "alice01", NDA)) == 1
    assert record_ids(emulator) == set(ids.values())
    assert all(r["status"] == OPEN for r in emulator.records())


def test_another_app_is_refused(tmp_path, monkeypatch):
    """Defect 1: a run with another app's credentials treated every record as missing."""
    config = EmulatorConfig(apps={APP_KEY: APP_SECRET, OTHER_KEY: OTHER_SECRET}, qps=0)
    with Emulator(config) as emulator:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
        use_remote(monkeypatch, emulator.url)
        ids = applied(tmp_path)
        before = (tmp_path / STATE).read_bytes()
        use_remote(monkeypatch, emulator.url, key=OTHER_KEY)
        for command in (["drift"], ["apply", "-y"]):
            run = dingsync(*command)
            assert run.code == 1, run.out + run.err
            assert said(run, "belongs to")
        assert OTHER_KEY not in (tmp_path / STATE).read_text(encoding="utf-8")
        assert (tmp_path / STATE).read_bytes() == before
        next_day(emulator)
        use_remote(monkeypatch, emulator.url)
        assert dingsync("apply", "-y").code == 0
        assert record_ids(emulator) == set(ids.values())


def test_sandbox_runs_never_change_a_real_state(workdir, emulator):
    """Defect 1: a sandbox run given the real state with --state rewrote it."""
    ids = applied(workdir)
    before = (workdir / STATE).read_bytes()
    real_files = real_state_files(workdir)
    for command in (["apply", "-y"], ["drift"]):
        run = dingsync(*command, "--sandbox", "--state", str(STATE))
        assert run.code == 1, f"{command}: {run.out + run.err}"
        assert said(run, "sandbox")
        assert (workdir / STATE).read_bytes() == before
        assert real_state_files(workdir) == real_files
    own = dingsync("apply", "-y", "--sandbox")
    assert own.code == 0, own.err
    sandbox_state = state_doc(workdir / "state" / "tasks.sandbox.state.json")
    assert "sandbox" in str(sandbox_state["remote"])
    assert (workdir / STATE).read_bytes() == before
    assert record_ids(emulator) == set(ids.values())


def real_state_files(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "state").iterdir() if "sandbox" not in p.name)


# ------------------------------------------------------------------ mass changes


def test_an_emulator_restarted_empty_needs_force(workdir, emulator):
    """Defect 1: against a DingTalk that knows none of the records, drift marked them all
    missing and apply recreated them all."""
    many_tasks(workdir / "tasks.yaml", 12, users=3)
    assert dingsync("apply", "-y").code == 0
    emulator.reset()
    drift = dingsync("drift")
    assert drift.code == 1, drift.out + drift.err
    assert said(drift, "wrong endpoint or app")
    assert missing_marks(workdir / STATE) == []
    apply = dingsync("apply", "-y")
    assert apply.code == 1, apply.out + apply.err
    assert said(apply, "does not know 12 of 12") and said(apply, "wrong endpoint or app")
    assert missing_marks(workdir / STATE) == []
    assert emulator.records() == []
    forced = dingsync("apply", "-y", "--force")
    assert forced.code == 0, forced.err
    assert_no_duplicates(emulator)
    assert_in_step(emulator, workdir / STATE, many_expected(12, users=3))


# ------------------------------------------------------------------ assignees' completions


def test_a_todo_the_assignee_completed_is_not_reopened_by_the_file(workdir, emulator, api):
    """Defect 4: a to-do the assignee completed was assigned again when the file, after
    marking it done, reopened it."""
    ids = applied(workdir, api)
    complete_remote(emulator, ids["nda@alice01"])
    done = ONBOARDING.replace(f"title: {NDA}\n", f"title: {NDA}\n        status: done\n")
    assert done != ONBOARDING
    write_tasks(workdir / "tasks.yaml", done, api)
    assert dingsync("apply", "-y").code == 0
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    next_day(emulator)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert [r["record_id"] for r in records_of(emulator, "alice01", NDA)] == [ids["nda@alice01"]]
    assert open_of(emulator, "alice01", NDA) == []
    assert_not_open(emulator, workdir / STATE, {"nda@alice01": ("alice01", NDA)})


def test_plan_refresh_sees_the_assignees_completion_and_writes_nothing(workdir, emulator, api):
    """Defect 4: only a refreshed plan shows that a completed to-do will not be replaced."""
    ids = applied(workdir, api)
    complete_remote(emulator, ids["nda@alice01"])
    write_tasks(workdir / "tasks.yaml", ONBOARDING.replace(NDA, "签署保密协议（2027 版）"), api)
    before = (workdir / STATE).read_bytes()
    # A title change: a replace with workrecord, an update in place with v1.0.
    change = f"{'replace' if api == 'workrecord' else 'update'}  nda@alice01"
    offline = dingsync("plan")
    assert change in offline.out
    refreshed = dingsync("plan", "--refresh")
    assert refreshed.code == 0, refreshed.err
    assert "No changes." in refreshed.out and change not in refreshed.out
    assert (workdir / STATE).read_bytes() == before
    assert not (workdir / "state" / "tasks.state.json.lock").exists()


# ------------------------------------------------------------------ concurrent writers


def test_a_save_never_overwrites_a_state_another_writer_changed(workdir, emulator, spawn):
    """Defect 2: after a forced unlock, two writers overwrote each other's state and the
    next day's apply created duplicates."""
    ids = applied(workdir)
    extra = "".join(
        f"      - {{key: extra-{i}, userid: carol03, title: 第{i}项培训, form: {{说明: 课{i}}}}}\n"
        for i in range(6)
    )
    write_tasks(workdir / "tasks.yaml", ONBOARDING + extra)
    emulator.set_faults(latency_ms=400)
    lock = workdir / "state" / "tasks.state.json.lock"
    first_adds = adds(emulator)
    first = spawn(workdir, emulator.url, "apply", "-y", "--parallelism", "1")
    wait_until(lambda: adds(emulator) > first_adds or first.poll() is not None, "it creates")
    assert first.poll() is None and lock.exists()
    unlock = dingsync("force-unlock", "-y", "--force")
    assert unlock.code == 0, unlock.out + unlock.err
    assert not lock.exists()
    taken = dingsync("state", "rm", "nda@alice01")
    assert taken.code == 0, taken.err
    after_rm = (workdir / STATE).read_bytes()
    done = finish(first)
    assert done.code == 1, done.out + done.err
    assert said(done, "changed")
    assert (workdir / STATE).read_bytes() == after_rm
    side = [
        p.name
        for p in (workdir / "state").iterdir()
        if p.name.startswith("tasks.state.json.") and not p.name.endswith((".lock", ".backup"))
    ]
    assert side, "the run's own results were not kept beside the state"
    emulator.set_faults(latency_ms=0)
    next_day(emulator)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert_no_duplicates(emulator)
    expected = {**EXPECTED, **{f"extra-{i}@carol03": ("carol03", f"第{i}项培训") for i in range(6)}}
    assert_in_step(emulator, workdir / STATE, expected)
    assert set(ids.values()) <= record_ids(emulator)
    assert len(emulator.records()) == 9
