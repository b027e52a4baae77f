"""Creates interrupted by a crash: adopted, resumed or cancelled, never sent twice.

A crash right after the intent was journaled is simulated by journaling it with the
Ledger, exactly as apply does before it sends; the CLI then runs against the emulator.
Every test runs for both of DingTalk's to-do APIs (the ``api`` fixture).
"""

from __future__ import annotations

import json
import os

from dingsync.backend import Backend
from dingsync.client import DingTalkClient
from dingsync.ledger import Ledger
from dingsync.loader import load_task_file
from dingsync.model import PendingCreate
from dingsync.model import Remote
from dingsync.model import app_key_fingerprint
from dingsync.model import biz_id_for
from dingsync.model import source_id_for
from dingsync.state import StateStore
from dingsync.todo_backend import TodoBackend
from dingsync.todo_client import TodoClient
from dingsync.workrecord import WorkrecordBackend
from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks
from tests.helpers import adds
from tests.helpers import remote_records

STATE = "state/tasks.state.json"


def crash_after_intent(workdir, address: str) -> PendingCreate:
    """Journal a create's intent for ``address`` and stop, as a kill would."""
    task_file = load_task_file(workdir / "tasks.yaml")
    desired = task_file.by_address()[address]
    store = StateStore(workdir / STATE)
    state = store.load()
    generation = state.next_generation(address)
    key_for = source_id_for if task_file.api == "todo" else biz_id_for
    pending = PendingCreate(
        key=desired.key,
        userid=desired.userid,
        biz_id=key_for(task_file.namespace, address, generation),
        generation=generation,
        content=desired.content,
        fingerprint=desired.content.fingerprint(),
        create_time_ms=1_795_000_000_000,
        sent_at="2026-11-28T12:00:00Z",
    )
    ledger = Ledger(state, store)
    # As apply does before its first write: the state names the DingTalk it is bound to.
    endpoint = os.environ["DINGSYNC_ENDPOINT"]
    ledger.bind(Remote(task_file.api, endpoint, app_key_fingerprint(APP_KEY)))
    ledger.begin_create(pending)  # journaled, never flushed: a crash
    return pending


def land(emulator_url: str, pending: PendingCreate) -> None:
    """The interrupted request did reach DingTalk: send it once, as the lost run did."""
    backend: Backend
    if pending.content.creator_userid:  # a v1.0 to-do
        backend = TodoBackend(TodoClient(emulator_url, APP_KEY, APP_SECRET))
    else:
        backend = WorkrecordBackend(DingTalkClient(emulator_url, APP_KEY, APP_SECRET))
    try:
        backend.create(pending)
    finally:
        backend.close()


def nda_todos(emulator) -> list[dict]:
    return [r for r in remote_records(emulator) if r["title"] == "签署保密协议"]


def state_doc(workdir):
    return json.loads((workdir / STATE).read_text(encoding="utf-8"))


def test_landed_create_is_adopted_not_sent_again(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    pending = crash_after_intent(workdir, "nda@alice01")
    land(emulator.url, pending)
    adds_before = adds(emulator)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert "adopted" in run.err
    assert adds(emulator) - adds_before == 2  # the laptop pair only
    nda = nda_todos(emulator)
    assert len(nda) == 1
    assert state_doc(workdir)["records"]["nda@alice01"]["record_id"] == nda[0]["record_id"]


def test_absent_create_is_resumed_with_the_same_biz_id(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    pending = crash_after_intent(workdir, "nda@alice01")
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    (nda,) = nda_todos(emulator)
    assert nda.get("biz_id", nda.get("source_id")) == pending.biz_id
    assert state_doc(workdir)["pending"] == {}


def test_drift_never_sends_a_create(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    crash_after_intent(workdir, "nda@alice01")
    run = dingsync("drift")
    assert run.code == 0, run.err
    assert "nda@alice01: an interrupted create was not found" in run.err
    assert adds(emulator) == 0
    assert "nda@alice01" in state_doc(workdir)["pending"]


def test_unwanted_create_is_cancelled_by_its_biz_id(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    pending = crash_after_intent(workdir, "nda@alice01")
    land(emulator.url, pending)  # it landed before the crash
    write_tasks(workdir / "tasks.yaml", ONBOARDING.split("      - key: nda")[0], api)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    nda = nda_todos(emulator)
    assert [r["status"] for r in nda] == [1]  # adopted by the lookup, then completed
    assert state_doc(workdir)["pending"] == {}


def test_unwanted_absent_create_is_cancelled_without_a_create(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    pending = crash_after_intent(workdir, "nda@alice01")
    write_tasks(workdir / "tasks.yaml", ONBOARDING.split("      - key: nda")[0], api)
    plan = dingsync("plan")
    assert "✓ complete  nda@alice01" in plan.out
    assert "interrupted create, no longer wanted" in plan.out
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    assert nda_todos(emulator) == []
    if api == "workrecord":
        assert emulator.call_counts()["workrecord/update"] >= 1  # completed by biz_id, in case
    else:
        assert emulator.call_counts()["todo/getBySourceId"] >= 1  # looked up by sourceId
    assert state_doc(workdir)["pending"] == {}
    assert pending.biz_id not in json.dumps(state_doc(workdir)["records"])


def test_lost_answer_on_the_resend_never_duplicates(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    crash_after_intent(workdir, "nda@alice01")
    emulator.set_faults(rate=1.0, kinds=["lost_ack"])
    failed = dingsync("apply", "-y", "--no-refresh")
    assert failed.code == 1
    emulator.set_faults(rate=0.0)
    run = dingsync("apply", "-y")
    assert run.code == 0, run.err
    titles = sorted(r["title"] for r in remote_records(emulator))
    assert titles == ["签署保密协议", "领取笔记本电脑", "领取笔记本电脑"]
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_import_refuses_an_address_with_an_interrupted_create(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    assert dingsync("apply", "-y").code == 0
    laptop = dingsync("state", "show", "laptop@alice01", "--json").json()["record"]["record_id"]
    taken = dingsync("state", "rm", "nda@alice01")
    assert taken.code == 0
    again = dingsync("import", "nda@alice01", laptop)
    assert again.code == 1 and "already managed" in again.err


def test_a_record_seen_again_is_no_longer_missing(workdir, emulator, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    assert dingsync("apply", "-y").code == 0
    doc = state_doc(workdir)
    doc["records"]["nda@alice01"]["missing"] = True  # a refresh once failed to see it
    (workdir / STATE).write_text(json.dumps(doc), encoding="utf-8")
    assert "recreate" in dingsync("plan").out
    assert dingsync("drift").code == 0
    assert state_doc(workdir)["records"]["nda@alice01"]["missing"] is False
    assert dingsync("plan", "--detailed-exitcode").code == 0


def test_plan_json_of_an_interrupted_create_follows_the_schema(workdir, emulator, api):
    from tests.e2e.test_json_output import check

    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    crash_after_intent(workdir, "nda@alice01")
    write_tasks(workdir / "tasks.yaml", ONBOARDING.split("      - key: nda")[0], api)
    doc = check("plan", dingsync("plan", "--json").json())
    assert [
        (c["action"], c["reason"]) for c in doc["changes"] if c["address"] == "nda@alice01"
    ] == [("complete", "interrupted")]
