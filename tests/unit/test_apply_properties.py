"""Plan, apply, fault, crash, replan: a stateful property test over an in-memory DingTalk.

A hypothesis state machine edits the task file (add, remove, edit, rename a key, mark done or
open again), runs apply (the same day or the next), makes one call of an apply fail (refused,
timed out, or landed with its answer lost), kills an apply at one of its calls (before or
after the call lands; the next apply reads what the kill left on disk), loses the state (file,
backup and journal), and lets assignees complete to-dos. After every step it checks the
promises of SPEC.md ("Identity and safety", "Faults and recovery"):

(a) no address (KEY@USERID) ever has two open records on DingTalk;
(b) every open record that dingsync created on DingTalk is in the state (records, retiring
    or pending), or adoptable: open, with exactly the title, url and form the file wants
    for an address the state does not hold;
(c) apply never completes a to-do that is still the record of an address the file wants
    open ("Never left without the task").

Done records need no tracking, so (b) is about open ones. Two exceptions follow from the
design, not from a bug. A replace creates the new record before it completes the old one, so
while the completion of a retiring record is outstanding (a fault, a kill) both are open: (a)
does not count a record the state is retiring. And a lost state takes with it what only it
knew: an open record that the next apply cannot adopt (its content is no longer in the file)
is written off by the loss. Stricter checks hold where they can: only records that existed
when a state was lost are ever adopted (a kill or a fault loses nothing from the journal),
and after an apply that reports success the state is in line with the file (a new plan has
no changes) and holds every open record.

The in-memory DingTalk follows docs/dingtalk-workrecord.md: a biz_id is refused (854001)
for a user forever; so is a second to-do with the same title and form for a user on the
same China-time day, done or not; update takes a record_id or a biz_id; getbyuserid pages
50 at a time, newest create_time first, and shows only record_id, create_time, title, url
and form.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from typing import NamedTuple
from unittest import mock

from hypothesis import HealthCheck
from hypothesis import currently_in_test_context
from hypothesis import event
from hypothesis import note
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import initialize
from hypothesis.stateful import invariant
from hypothesis.stateful import precondition
from hypothesis.stateful import rule

from dingsync import applier as applier_module
from dingsync.chinatime import china_day
from dingsync.errors import DingsyncError
from dingsync.errors import DuplicateError
from dingsync.errors import TransportError
from dingsync.errors import UnknownMethodError
from dingsync.ledger import Ledger
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import Remote
from dingsync.model import RemoteRecord
from dingsync.model import State
from dingsync.model import Status
from dingsync.model import TaskFile
from dingsync.model import biz_id_for
from dingsync.model import make_address
from dingsync.planner import make_plan
from dingsync.reporter import Reporter
from dingsync.session import Session
from dingsync.state import StateStore
from dingsync.workflow import ApplySettings
from dingsync.workflow import run_apply
from dingsync.workrecord import WorkrecordBackend

NAMESPACE = "tasks"
REMOTE = Remote("workrecord", "sandbox")
PAGE = 50
DAY_MS = 86_400_000
# 2026-03-02 10:00 in China: far from midnight, so only the day rule crosses a day.
START_MS = 1_772_416_800_000

USERS = ("alice01", "bob02")
ASSIGNMENTS = (("alice01",), ("bob02",), ("alice01", "bob02"))
KEYS = ("laptop", "badge", "desk", "vpn")
TITLES = ("领取笔记本电脑", "领取工牌", "开通邮箱")
FORMS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("任务描述", "到 IT 服务台领取并签收"),),
    (("任务描述", "到前台领取"), ("截止日期", "2026-12-05")),
)
URLS = ("https://intranet.example.com/it", "https://intranet.example.com/hr")

# Every biz_id this file can send, so that a remote record can be traced to its address.
ADDRESS_OF_BIZ_ID = {
    biz_id_for(NAMESPACE, make_address(key, userid), generation): make_address(key, userid)
    for key in KEYS
    for userid in USERS
    for generation in range(200)
}


def say(text: str) -> None:
    """Part of the report of a failing sequence (also when a test drives the machine)."""
    if currently_in_test_context():
        note(text)


def tally(what: str) -> None:
    """Counted in --hypothesis-show-statistics: how often each path was taken."""
    if currently_in_test_context():
        event(what)


class Killed(BaseException):
    """The dingsync process was killed: nothing after this reaches DingTalk or the disk."""


class Process:
    """Whether the running dingsync process is alive; shared by the backend and the store."""

    def __init__(self) -> None:
        self.dead = False

    def check(self) -> None:
        if self.dead:
            raise Killed()

    def kill(self) -> Killed:
        self.dead = True
        return Killed()


class KillableStore(StateStore):
    """A real state store that writes nothing once its process is dead, as after a kill."""

    def __init__(self, path: Path, process: Process) -> None:
        super().__init__(path)
        self._process = process

    def append(self, event: Any) -> None:
        self._process.check()
        super().append(event)

    def save(self, state: State) -> None:
        self._process.check()
        super().save(state)


class Clock:
    def __init__(self) -> None:
        self.now_ms = START_MS

    def tick(self) -> None:
        self.now_ms += 1000

    def day(self) -> str:
        return china_day(datetime.fromtimestamp(self.now_ms / 1000, timezone.utc))


@dataclass
class FakeRecord:
    record_id: str
    userid: str
    biz_id: str
    content: Content
    create_time_ms: int
    day: str  # the China-time day DingTalk received it: the same-day rule's day
    seq: int
    status: Status = "open"

    @property
    def address(self) -> str:
        return ADDRESS_OF_BIZ_ID[self.biz_id]

    def same_as(self, other: FakeRecord) -> bool:
        """Whether the two show the same title, url and form (all the list shows)."""
        mine, theirs = self.content, other.content
        return (mine.title, mine.url, mine.form) == (theirs.title, theirs.url, theirs.form)

    def listed(self) -> RemoteRecord:
        c = self.content
        return RemoteRecord(
            self.record_id, self.userid, self.create_time_ms, c.title, c.url, c.form, self.status
        )


class Trouble(NamedTuple):
    """What goes wrong in one run: with the nth call of a kind, a kill or a lost answer.

    ``kind`` is ``create``, ``complete``, ``list``, ``write`` (create or complete) or
    ``any``. A write that ``lands`` takes effect on DingTalk before its answer is lost.
    """

    kind: str
    nth: int
    kill: bool
    lands: bool
    maybe_committed: bool = True

    def describe(self) -> str:
        if self.kill:
            return f"killed at {self.kind} call {self.nth}" + (" after it landed" * self.lands)
        if self.kind == "list":
            return "list failed"
        if self.lands:
            return f"{self.kind} landed, answer lost"
        return f"{self.kind} " + ("timed out" if self.maybe_committed else "refused")


class FakeDingTalk:
    """The workrecord API in memory; ``trouble`` strikes one call of the next run."""

    def __init__(self, clock: Clock, process: Process) -> None:
        self.clock = clock
        self.process = process
        self.records: dict[str, FakeRecord] = {}
        self.biz_ids: dict[str, set[str]] = defaultdict(set)  # per user, forever
        self.counts: dict[str, int] = defaultdict(int)
        self.trouble: Trouble | None = None
        self.struck: Trouble | None = None
        self._seen: dict[str, int] = defaultdict(int)  # calls of each kind in this run
        # Asked before each completion: is this to-do still the one an address wants open?
        self.wanted: Callable[[FakeRecord], bool] = lambda record: False
        # Completions of to-dos that the run itself still held as an address's wanted one.
        self.wrongly_closed: list[str] = []

    def start_run(self, trouble: Trouble | None) -> None:
        self.trouble, self.struck = trouble, None
        self._seen.clear()

    # -- the Backend protocol -------------------------------------------------------------

    def create(self, userid: str, content: Content, biz_id: str, create_time_ms: int) -> str:
        strike = self._call("workrecord/add", "create")
        if strike is not None and not strike.lands:
            raise self._fail(strike)
        try:
            record_id = self._add(userid, content, biz_id, create_time_ms)
        except DuplicateError:
            if strike is not None:
                raise self._fail(strike) from None
            raise
        if strike is not None:
            raise self._fail(strike)
        return record_id

    def complete(self, userid: str, record_id: str) -> bool:
        strike = self._call("workrecord/update", "complete")
        if strike is not None and not strike.lands:
            raise self._fail(strike)
        record = self._find(userid, record_id)
        if record is not None and record.status == "open":
            if self.wanted(record):
                self.wrongly_closed.append(f"{record.record_id} ({record.address})")
            record.status = "done"
        if strike is not None:
            raise self._fail(strike)
        return record is not None

    def list_records(self, userid: str, status: Status) -> Iterator[RemoteRecord]:
        offset = 0
        while True:
            strike = self._call("workrecord/getbyuserid", "list")
            if strike is not None:
                raise self._fail(strike._replace(maybe_committed=False))
            matching = sorted(
                (r for r in self.records.values() if r.userid == userid and r.status == status),
                key=lambda r: (r.create_time_ms, r.seq),
                reverse=True,
            )
            page = matching[offset : offset + PAGE]
            yield from (r.listed() for r in page)
            if not page or offset + PAGE >= len(matching):
                return
            offset += PAGE

    def get_record(self, userid: str, record_id: str) -> RemoteRecord | None:
        self._call("workrecord/get", "get")
        raise UnknownMethodError("workrecord/get", 22, "不合法的api名称")

    @property
    def call_counts(self) -> dict[str, int]:
        return dict(self.counts)

    def close(self) -> None:
        pass

    # -- DingTalk's side ------------------------------------------------------------------

    def _call(self, api: str, kind: str) -> Trouble | None:
        """Count one call; return the trouble that strikes it, if any."""
        self.process.check()
        self.clock.tick()
        self.counts[api] += 1
        kinds = (kind, "any", "write") if kind in ("create", "complete") else (kind, "any")
        for k in kinds:
            self._seen[k] += 1
        trouble = self.trouble
        if trouble is None or trouble.kind not in kinds or self._seen[trouble.kind] != trouble.nth:
            return None
        self.trouble, self.struck = None, trouble
        return trouble

    def _fail(self, strike: Trouble) -> BaseException:
        if strike.kill:
            return self.process.kill()
        return TransportError(
            f"{strike.kind}: no answer", maybe_committed=strike.maybe_committed or strike.lands
        )

    def _add(self, userid: str, content: Content, biz_id: str, create_time_ms: int) -> str:
        if biz_id in self.biz_ids[userid]:
            raise DuplicateError("workrecord/add", 854001, "待办任务重复: biz_id 已存在")
        today = self.clock.day()
        if any(
            r.userid == userid
            and r.day == today
            and r.content.title == content.title
            and r.content.form == content.form
            for r in self.records.values()
        ):
            raise DuplicateError("workrecord/add", 854001, "待办任务重复: 同一人同一天相同内容")
        seq = len(self.records) + 1
        record_id = f"record{seq:032x}"
        self.records[record_id] = FakeRecord(
            record_id, userid, biz_id, content, create_time_ms, today, seq
        )
        self.biz_ids[userid].add(biz_id)
        return record_id

    def _find(self, userid: str, ref: str) -> FakeRecord | None:
        record = self.records.get(ref)
        if record is not None and record.userid == userid:
            return record
        return next(
            (r for r in self.records.values() if r.userid == userid and r.biz_id == ref), None
        )

    def open_records(self) -> list[FakeRecord]:
        return [r for r in self.records.values() if r.status == "open"]


class AcceptingView:
    """apply's view when run with -y: shows nothing, agrees to everything."""

    def show_drift(self, report: Any) -> None:
        pass

    def show_plan(self, plan: Any) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def confirm(self) -> bool:
        return True


class Task(NamedTuple):
    userids: tuple[str, ...]
    title: str
    form: tuple[tuple[str, str], ...]
    url: str
    status: Status = "open"

    def content(self) -> Content:
        return Content(title=self.title, url=self.url, form=self.form)


def in_state(record: FakeRecord, state: State) -> bool:
    held = {r.record_id for r in state.records.values()} | set(state.retiring)
    return record.record_id in held or record.biz_id in {p.biz_id for p in state.pending.values()}


def adoptable(record: FakeRecord, state: State, task_file: TaskFile) -> bool:
    """Open, with exactly what the file wants for an address of its user the state lacks."""
    if record.status != "open":
        return False
    return any(
        d.userid == record.userid
        and d.status == "open"
        and d.address not in state.records
        and d.address not in state.pending
        and (d.content.title, d.content.url, d.content.form)
        == (record.content.title, record.content.url, record.content.form)
        for d in task_file.records
    )


class ApplyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="dingsync-apply-"))
        self.path = self.folder / "tasks.state.json"
        self.clock = Clock()
        self.process = Process()
        self.dingtalk = FakeDingTalk(self.clock, self.process)
        self.dingtalk.wanted = self.wanted_open
        self.ledger: Ledger | None = None  # the running apply's
        self.tasks: dict[str, Task] = {}
        # Open records a lost state took with it and the next apply could not adopt.
        self.written_off: set[str] = set()
        # Every record that existed when a state was lost: the only ones apply may adopt.
        self.before_loss: set[str] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- the task file --------------------------------------------------------------------

    def task_file(self) -> TaskFile:
        records = tuple(
            DesiredRecord(key=key, userid=userid, content=task.content(), status=task.status)
            for key, task in sorted(self.tasks.items())
            for userid in task.userids
        )
        digest = hashlib.sha256(repr(records).encode()).hexdigest()
        return TaskFile(path="tasks.yaml", sha256=digest, records=records, namespace=NAMESPACE)

    def wanted_open(self, record: FakeRecord) -> bool:
        """Whether the running apply holds this to-do as the record of an address the file
        wants open: one it must not complete (a replaced record is retired first)."""
        if self.ledger is None:
            return False
        wanted = {d.address for d in self.task_file().records if d.status == "open"}
        return any(
            r.record_id == record.record_id and address in wanted
            for address, r in self.ledger.state.records.items()
        )

    def keys(self) -> list[str]:
        return sorted(self.tasks)

    def free_keys(self) -> list[str]:
        return [k for k in KEYS if k not in self.tasks]

    def change(self, tasks: dict[str, Task], what: str) -> None:
        """Take the edited file if it passes validate's rule: no two tasks send the same
        userid, title and form."""
        sent = [(u, t.title, t.form) for t in tasks.values() for u in t.userids]
        if len(sent) == len(set(sent)):
            self.tasks = tasks
            say(f"file: {what}")

    @initialize()
    def a_first_file(self) -> None:
        self.tasks = {
            "laptop": Task(("alice01", "bob02"), TITLES[0], FORMS[0], URLS[0]),
            "badge": Task(("alice01",), TITLES[1], FORMS[1], URLS[1]),
        }

    @precondition(lambda self: len(self.tasks) < len(KEYS))
    @rule(
        pick=st.integers(0, len(KEYS) - 1),
        userids=st.sampled_from(ASSIGNMENTS),
        title=st.sampled_from(TITLES),
        form=st.sampled_from(FORMS),
        url=st.sampled_from(URLS),
    )
    def add_task(
        self, pick: int, userids: tuple[str, ...], title: str, form: Any, url: str
    ) -> None:
        free = self.free_keys()
        key = free[pick % len(free)]
        task = Task(userids, title, form, url)
        self.change({**self.tasks, key: task}, f"add {key} {task}")

    @precondition(lambda self: self.tasks)
    @rule(pick=st.integers(0, len(KEYS) - 1))
    def remove_task(self, pick: int) -> None:
        key = self.keys()[pick % len(self.tasks)]
        self.change({k: t for k, t in self.tasks.items() if k != key}, f"remove {key}")

    @precondition(lambda self: self.tasks)
    @rule(
        pick=st.integers(0, len(KEYS) - 1),
        title=st.sampled_from(TITLES),
        form=st.sampled_from(FORMS),
        url=st.sampled_from(URLS),
    )
    def edit_task(self, pick: int, title: str, form: Any, url: str) -> None:
        key = self.keys()[pick % len(self.tasks)]
        task = self.tasks[key]._replace(title=title, form=form, url=url)
        self.change({**self.tasks, key: task}, f"edit {key} {task}")

    @precondition(lambda self: self.tasks and len(self.tasks) < len(KEYS))
    @rule(pick=st.integers(0, len(KEYS) - 1), pick_new=st.integers(0, len(KEYS) - 1))
    def rename_key(self, pick: int, pick_new: int) -> None:
        key = self.keys()[pick % len(self.tasks)]
        free = self.free_keys()
        new = free[pick_new % len(free)]
        tasks = {(new if k == key else k): t for k, t in self.tasks.items()}
        self.change(tasks, f"rename {key} to {new}")

    @precondition(lambda self: self.tasks)
    @rule(pick=st.integers(0, len(KEYS) - 1))
    def toggle_done(self, pick: int) -> None:
        key = self.keys()[pick % len(self.tasks)]
        task = self.tasks[key]
        status: Status = "open" if task.status == "done" else "done"
        self.change({**self.tasks, key: task._replace(status=status)}, f"{key} {status}")

    # -- DingTalk and the world around it -------------------------------------------------

    @precondition(lambda self: self.dingtalk.open_records())
    @rule(pick=st.integers(0, 20))
    def assignee_completes(self, pick: int) -> None:
        records = self.dingtalk.open_records()
        record = records[pick % len(records)]
        record.status = "done"
        say(f"assignee completes {record.record_id} ({record.address})")

    # -- dingsync -------------------------------------------------------------------------

    def run(self, trouble: Trouble | None = None, refresh: bool = True) -> bool:
        """One apply, as a fresh process that reads the state from disk; True when it
        reported success (nothing failed, nothing held back)."""
        self.process.dead = False
        self.dingtalk.start_run(trouble)
        store = KillableStore(self.path, self.process)
        state = store.load()
        ledger = self.ledger = Ledger(state, store)
        backend = WorkrecordBackend(self.dingtalk)
        session = Session(self.path, store, ledger, backend, REMOTE, store.exists())
        options = ApplySettings(refresh=refresh, parallelism=1, auto_approve=True)
        # The applier's clock is DingTalk's: the same-day rule is judged on one calendar.
        applier_clock = SimpleNamespace(time=lambda: self.clock.now_ms / 1000)
        struck = "" if trouble is None else "no trouble struck; "
        try:
            with mock.patch.object(applier_module, "time", applier_clock):
                outcome = run_apply(session, self.task_file(), AcceptingView(), Reporter(), options)
        except Killed:
            self.ledger = None
            say(f"apply: {trouble.describe() if trouble else 'killed'}")
            tally("apply: killed")
            return False  # no flush: the state file and the journal are what a kill leaves
        except DingsyncError as exc:
            self.ledger = None
            ledger.flush()  # as the session does when apply stops with an error
            say(f"apply stopped: {exc}")
            tally("apply: stopped by an error")
            return False
        self.ledger = None
        ledger.flush()
        if self.dingtalk.struck is not None:
            struck = self.dingtalk.struck.describe() + "; "
            tally(f"trouble: {self.dingtalk.struck.describe()}")
        result = outcome.result
        ok = result.ok and not result.skipped
        say(f"apply: {struck}adopted {result.adopted}, failed {result.failed}")
        if result.adopted:
            tally("apply: adopted existing to-dos")
            # Adopting is the net for a lost state; a kill or a fault loses nothing from
            # the journal, so a record created since the last loss never needs it.
            adopted = {ledger.state.records[a].record_id for a in result.adopted}
            assert adopted <= self.before_loss, f"the state lost {adopted - self.before_loss}"
        tally("apply: succeeded" if ok else "apply: some changes failed")
        return ok

    def check_converged(self) -> None:
        """After a successful apply: the state is the file, and holds every open record."""
        state = StateStore(self.path).load()
        plan = make_plan(self.task_file(), state)
        assert not plan.has_changes, [(c.action, c.address) for c in plan.changes]
        assert not state.pending and not state.retiring
        held = {r.record_id for r in state.records.values()}
        strays = [
            r.record_id
            for r in self.dingtalk.open_records()
            if r.record_id not in held and r.record_id not in self.written_off
        ]
        assert not strays, f"open records that the state does not hold: {strays}"

    @rule(next_day=st.booleans(), refresh=st.booleans())
    def apply(self, next_day: bool, refresh: bool) -> None:
        """An apply, the next day or later the same day (DingTalk's same-day rule)."""
        if next_day:
            self.clock.now_ms += DAY_MS
            say("the next day")
        if self.run(refresh=refresh):
            self.check_converged()

    @rule(
        kind=st.sampled_from(("create", "complete", "list")),
        nth=st.integers(1, 2),
        outcome=st.sampled_from(("refused", "timed out", "landed")),
    )
    def apply_with_fault(self, kind: str, nth: int, outcome: str) -> None:
        """The nth call of a kind gets no answer: refused before it reached DingTalk, timed
        out (it may have), or it landed and the answer was lost."""
        landed = outcome == "landed"
        trouble = Trouble(kind, nth, kill=False, lands=landed, maybe_committed=outcome != "refused")
        if self.run(trouble):
            self.check_converged()

    @rule(
        kind=st.sampled_from(("create", "complete", "any")),
        nth=st.integers(1, 6),
        landed=st.booleans(),
    )
    def apply_killed(self, kind: str, nth: int, landed: bool) -> None:
        """The process is killed with its nth call of a kind, before or after it lands; the
        next apply starts from what is on disk."""
        if self.run(Trouble(kind, nth, kill=True, lands=landed)):
            self.check_converged()

    @rule()
    def lose_state_then_apply(self) -> None:
        """The state file, its backup and journal are gone; the next apply must adopt."""
        for suffix in ("", ".backup", ".journal"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        say("state lost")
        self.before_loss.update(self.dingtalk.records)
        ok = self.run()
        state = StateStore(self.path).load()
        task_file = self.task_file()
        for record in self.dingtalk.open_records():
            if not in_state(record, state):
                # An apply that got through leaves nothing adoptable behind.
                assert not (ok and adoptable(record, state, task_file)), record
                self.written_off.add(record.record_id)
        if ok:
            self.check_converged()

    # -- the promises -----------------------------------------------------------------

    @invariant()
    def one_open_record_per_address(self) -> None:
        state = StateStore(self.path).load()
        on_the_way_out = set(state.retiring) | {
            p.replaces for p in state.pending.values() if p.replaces is not None
        }
        holder = {r.record_id: a for a, r in state.records.items()}
        by_address: dict[str, list[str]] = defaultdict(list)
        for record in self.dingtalk.open_records():
            if record.record_id in on_the_way_out or record.record_id in self.written_off:
                continue
            address = holder.get(record.record_id, record.address)
            by_address[address].append(record.record_id)
        doubles = {a: ids for a, ids in by_address.items() if len(ids) > 1}
        assert not doubles, f"two open records for one address: {doubles}"

    @invariant()
    def every_record_is_known_or_adoptable(self) -> None:
        state = StateStore(self.path).load()
        task_file = self.task_file()
        lost = [
            record.record_id
            for record in self.dingtalk.open_records()
            if record.record_id not in self.written_off
            and not in_state(record, state)
            and not adoptable(record, state, task_file)
        ]
        assert not lost, f"open records neither in the state nor adoptable: {lost}"

    @invariant()
    def never_closes_a_wanted_todo(self) -> None:
        """Never left without the task: apply completes no to-do that is still the record of
        an address the file wants open (the old record of a replace is retired first)."""
        closed = self.dingtalk.wrongly_closed
        assert not closed, f"dingsync completed to-dos the file wants open: {closed}"


ApplyMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
TestApplyProperties = ApplyMachine.TestCase


def test_a_lost_state_then_an_interrupted_replace_keeps_the_adopted_todo_open():
    """The shortest sequence found that breaks "Never left without the task".

    laptop@alice01 is replaced once (its record now carries generation 1's biz_id); the state
    is lost and the record adopted, as generation 0. The next replace sends generation 1's
    biz_id again: its answer is lost, DingTalk refuses the resend (the key is the adopted
    record's), and the create stays pending. Once the file changes again, apply cancels
    that pending create by its biz_id, and so completes the adopted record, the one the
    address still holds, before any successor exists. Had the new create failed, alice01
    would be left with no laptop to-do, and the next refresh would record it as completed
    by her, never to be sent again.
    """
    machine = ApplyMachine()
    try:
        machine.a_first_file()
        machine.apply(next_day=False, refresh=True)
        machine.edit_task(1, TITLES[2], FORMS[0], URLS[0])  # laptop: a new title
        machine.apply(next_day=False, refresh=True)
        machine.lose_state_then_apply()
        machine.edit_task(1, TITLES[2], FORMS[1], URLS[0])  # laptop: a new form
        machine.apply_with_fault("create", 1, "timed out")  # laptop@alice01 stays pending
        machine.edit_task(1, TITLES[0], FORMS[0], URLS[0])  # laptop: the first content
        machine.apply(next_day=False, refresh=True)
        machine.one_open_record_per_address()
        machine.every_record_is_known_or_adoptable()
        machine.never_closes_a_wanted_todo()
    finally:
        machine.teardown()
