"""The applier's own rules, with a small in-memory backend: ordering, stop on fatal, Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from dingsync.applier import Applier
from dingsync.errors import QuotaExceededError
from dingsync.errors import TransportError
from dingsync.ledger import Ledger
from dingsync.planner import make_plan
from dingsync.reporter import Reporter
from dingsync.state import StateStore
from dingsync.workrecord import WorkrecordBackend
from tests.unit.test_planner import content
from tests.unit.test_planner import desired
from tests.unit.test_planner import tasks


class FakeBackend:
    """Creates records in a dict; ``fail_on`` maps a call number to an exception to raise."""

    def __init__(self, fail_on: dict[int, BaseException] | None = None) -> None:
        self.records: dict[str, str] = {}
        self.calls = 0
        self.fail_on = fail_on or {}
        self._lock = threading.Lock()

    def create(self, userid, content, biz_id, create_time_ms):
        with self._lock:
            self.calls += 1
            failure = self.fail_on.get(self.calls)
            if failure is None:
                record_id = f"record{self.calls:032d}"
                self.records[record_id] = biz_id
        if failure is not None:
            raise failure
        return record_id

    def complete(self, userid, record_id):
        return True

    def list_records(self, userid, status):
        return iter(())

    call_counts: dict[str, int] = {}


def run(tmp_path, backend, count=20, parallelism=1):
    store = StateStore(tmp_path / "s.json")
    ledger = Ledger(store.load(), store)
    plan = make_plan(tasks(*(desired(key=f"t{i}") for i in range(count))), ledger.state)
    applier = Applier(ledger, WorkrecordBackend(backend), Reporter(), parallelism=parallelism)
    return ledger, applier.apply(plan)


def test_every_create_is_recorded(tmp_path):
    backend = FakeBackend()
    ledger, result = run(tmp_path, backend, parallelism=4)
    assert result.ok and len(result.created) == 20
    assert {r.record_id for r in ledger.state.records.values()} == set(backend.records)
    assert ledger.state.pending == {}


def test_a_fatal_error_stops_the_run_and_keeps_what_was_done(tmp_path):
    quota = QuotaExceededError("workrecord/add", 90020, "您的企业本月api调用量已超过限制")
    backend = FakeBackend(fail_on={5: quota})
    ledger, result = run(tmp_path, backend)
    assert result.fatal is not None and "90020" in result.fatal
    assert backend.calls == 5  # nothing more was sent after the quota answer
    assert len(ledger.state.records) == 4
    # the refused create stays pending: the quota answer does not prove it was not applied
    assert len(ledger.state.pending) == 1


class InterruptedBackend(FakeBackend):
    """Each create takes 10 ms; during the third, the user presses Ctrl-C."""

    entered = 0

    def create(self, userid, content, biz_id, create_time_ms):
        with self._lock:
            self.entered += 1
            if self.entered == 3:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        time.sleep(0.01)
        return super().create(userid, content, biz_id, create_time_ms)


def test_ctrl_c_starts_nothing_new_and_records_what_finished(tmp_path):
    backend = InterruptedBackend()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, backend, count=40, parallelism=4)
    assert backend.calls < 12  # the calls in flight finish; no new one starts
    state = StateStore(tmp_path / "s.json").load()  # the journal as the run left it
    # every create that DingTalk accepted is in the state: nothing is lost
    assert {r.record_id for r in state.records.values()} == set(backend.records)


class LostCompletionBackend(FakeBackend):
    """Completes the to-do, then loses the answer, as a reset after processing would."""

    def complete(self, userid, record_id):
        raise TransportError("connection reset after sending", maybe_committed=True)


def test_a_completion_whose_answer_was_lost_stays_dingsyncs_own(tmp_path):
    # Regression: the next refresh saw the to-do done and recorded it as the assignee's
    # doing, so reopening the task in the file never sent it again.
    backend = LostCompletionBackend()
    ledger, _ = run(tmp_path, backend, count=1)
    removed = make_plan(tasks(desired(key="other")), ledger.state)
    result = Applier(ledger, WorkrecordBackend(backend), Reporter()).apply(
        removed._replace(creates=())
    )
    assert list(result.failed) == ["t0@alice01"]
    record = ledger.state.records["t0@alice01"]
    assert record.status == "open" and record.completed_by == "dingsync"
    ledger.record_observations(completed=[record], missing=[])
    assert ledger.state.records["t0@alice01"].completed_by == "dingsync"
    reopened = make_plan(tasks(desired(key="t0")), ledger.state)
    assert [(c.action, c.reason) for c in reopened.changes] == [("create", "reopened")]


def test_a_refused_completion_leaves_the_record_plainly_open(tmp_path):
    backend = FakeBackend()
    ledger, _ = run(tmp_path, backend, count=1)
    backend.complete = lambda userid, record_id: (_ for _ in ()).throw(  # type: ignore[method-assign]
        TransportError("connection refused", maybe_committed=False)
    )
    removed = make_plan(tasks(desired(key="other")), ledger.state)
    Applier(ledger, WorkrecordBackend(backend), Reporter()).apply(removed._replace(creates=()))
    record = ledger.state.records["t0@alice01"]
    assert record.status == "open" and record.completed_by is None


class LostAnswerBlindLookupBackend(FakeBackend):
    """The create lands but its answer is lost, and the lists cannot be read just then."""

    def create(self, userid, content, biz_id, create_time_ms):
        super().create(userid, content, biz_id, create_time_ms)
        raise TransportError("read timed out", maybe_committed=True)

    def list_records(self, userid, status):
        raise TransportError("connection reset")


def test_a_lost_create_whose_lookup_failed_says_it_may_have_landed(tmp_path):
    ledger, result = run(tmp_path, LostAnswerBlindLookupBackend(), count=1)
    message = result.failed["t0@alice01"]
    assert "may have reached DingTalk" in message and "stays pending" in message
    assert "t0@alice01" in ledger.state.pending


class TimedBackend(FakeBackend):
    """Logs when each call starts and ends; a create takes ``create_s`` seconds."""

    def __init__(self, create_s: float = 0.0) -> None:
        super().__init__()
        self.create_s = create_s
        self.log: list[tuple[str, str, float]] = []  # (event, record or biz_id, time)
        self.titles: dict[str, str] = {}

    def _note(self, event: str, what: str) -> None:
        with self._lock:
            self.log.append((event, what, time.monotonic()))

    def create(self, userid, content, biz_id, create_time_ms):
        self._note("create-start", content.title)
        time.sleep(self.create_s)
        record_id = super().create(userid, content, biz_id, create_time_ms)
        self._note("create-end", content.title)
        return record_id

    def complete(self, userid, record_id):
        self._note("complete-start", record_id)
        return True


def applied(tmp_path, backend, first, second, parallelism):
    """Apply ``first`` with a plain backend, then ``second`` with ``backend``."""
    store = StateStore(tmp_path / "s.json")
    ledger = Ledger(store.load(), store)
    Applier(ledger, WorkrecordBackend(FakeBackend()), Reporter()).apply(
        make_plan(tasks(*first), ledger.state)
    )
    old = {r.content.title: r.record_id for r in ledger.state.records.values()}
    plan = make_plan(tasks(*second), ledger.state)
    result = Applier(ledger, WorkrecordBackend(backend), Reporter(), parallelism=parallelism).apply(
        plan
    )
    return plan, result, old


def at(backend, event, what):
    return next(t for e, w, t in backend.log if e == event and w == what)


@pytest.mark.parametrize("parallelism", [1, 2, 8])
def test_a_renamed_keys_completion_never_starts_before_its_create_finished(tmp_path, parallelism):
    titles = [f"待办 {n}" for n in range(6)]
    first = [desired(key=f"old{n}", content=content(t)) for n, t in enumerate(titles)]
    # New keys, same userid, title and form: renames; plus unrelated creates around them.
    second = [desired(key=f"new{n}", content=content(t)) for n, t in enumerate(titles)]
    second += [desired(key=f"extra{n}", content=content(f"其他 {n}")) for n in range(6)]
    backend = TimedBackend(create_s=0.02)
    plan, result, old = applied(tmp_path, backend, first, second, parallelism)
    assert len(plan.completes) == 6 and result.ok
    for title in titles:
        assert at(backend, "complete-start", old[title]) >= at(backend, "create-end", title)


def test_a_completion_waits_for_its_create_and_nothing_else(tmp_path):
    # One worker: the paired completion runs right after its create, not after the rest.
    first = [desired(key="old", content=content("改名的待办"))]
    second = [desired(key="new", content=content("改名的待办"))]
    second += [desired(key=f"extra{n}", content=content(f"其他 {n}")) for n in range(5)]
    backend = TimedBackend()
    _, result, old = applied(tmp_path, backend, first, second, parallelism=1)
    assert result.ok
    events = [(e, w) for e, w, _ in backend.log if e != "create-end"]
    renamed = events.index(("create-start", "改名的待办"))
    assert events[renamed + 1] == ("complete-start", old["改名的待办"])


def test_a_failed_create_keeps_its_paired_completion_back(tmp_path):
    first = [desired(key="old", content=content("改名的待办"))]
    second = [desired(key="new", content=content("改名的待办"))]
    backend = FakeBackend(fail_on={1: TransportError("refused", maybe_committed=False)})
    plan, result, _ = applied(tmp_path, backend, first, second, parallelism=4)
    assert list(result.skipped) == [plan.completes[0].address]


def test_unrelated_completions_run_side_by_side_with_the_creates(tmp_path):
    first = [desired(key=f"old{n}", content=content(f"旧 {n}")) for n in range(6)]
    second = [desired(key=f"new{n}", content=content(f"新 {n}")) for n in range(6)]
    backend = TimedBackend()
    plan, result, _ = applied(tmp_path, backend, first, second, parallelism=1)
    assert len(plan.creates) == len(plan.completes) == 6 and result.ok
    # One worker takes the changes in queue order: the two APIs alternate.
    kinds = [e for e, _, _ in backend.log if e != "create-end"]
    assert kinds == ["create-start", "complete-start"] * 6
