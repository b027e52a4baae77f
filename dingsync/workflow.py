"""The steps of apply, plan --refresh, drift and import, wired together; no terminal I/O.

The CLI parses options, opens a session and calls these; tests can call them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from typing import NamedTuple
from typing import Protocol

import click

from dingsync.applier import Applier
from dingsync.applier import ApplyResult
from dingsync.backend import Backend
from dingsync.chinatime import today as china_today
from dingsync.drift import DriftReport
from dingsync.drift import field_drift
from dingsync.drift import judge
from dingsync.drift import mostly_missing
from dingsync.errors import DingsyncError
from dingsync.errors import PlanError
from dingsync.ledger import Ledger
from dingsync.ledger import utc_now
from dingsync.model import RemoteRecord
from dingsync.model import State
from dingsync.model import StateRecord
from dingsync.model import TaskFile
from dingsync.model import generation_of_key
from dingsync.planner import Change
from dingsync.planner import Plan
from dingsync.planner import make_plan
from dingsync.recovery import adopt_existing
from dingsync.recovery import look_up_pending
from dingsync.refresh import observe
from dingsync.refresh import records_to_refresh
from dingsync.reporter import Reporter
from dingsync.session import Session
from dingsync.state import ScratchStore
from dingsync.wording import counted


def read_plan_file(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read the saved plan: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "plan":
        raise PlanError(f"{path}: not a dingsync plan file")
    return data


def files_of_saved_plan(
    saved: dict[str, Any], planfile: str, task_file: str, state_path: str | None
) -> tuple[str, str | None]:
    """The task file and state a saved plan was made for, unless -f/--state say others.

    A plan made for ``team.yaml`` is applied to ``team.yaml``, whatever ``-f`` defaults to;
    an explicit ``-f`` or ``--state`` naming another file is refused by name.
    """
    context = click.get_current_context(silent=True)

    def given(name: str) -> bool:
        source = context.get_parameter_source(name) if context else None
        return source not in (None, click.core.ParameterSource.DEFAULT)

    planned_file = saved.get("task_file", {}).get("path")
    planned_state = saved.get("state", {}).get("path")
    if isinstance(planned_file, str):
        if given("task_file") and Path(task_file) != Path(planned_file):
            raise PlanError(f"{planfile} is a plan for {planned_file}, not {task_file}")
        task_file = planned_file
    if isinstance(planned_state, str):
        if (
            state_path is not None
            and given("state_path")
            and Path(state_path) != Path(planned_state)
        ):
            raise PlanError(f"{planfile} is a plan for the state {planned_state}, not {state_path}")
        state_path = planned_state
    return task_file, state_path


def check_saved_plan(
    saved: dict[str, Any], task_file: TaskFile, lineage: str | None, serial: int
) -> None:
    """Refuse a plan made against another task file or another state (Terraform's rule)."""
    problems = []
    if saved.get("task_file", {}).get("sha256") != task_file.sha256:
        problems.append(f"the task file {task_file.path} changed since the plan was made")
    state = saved.get("state", {})
    if state.get("lineage") is None and lineage is not None:
        problems.append("the state was created since the plan was made")
    elif state.get("lineage") != lineage:
        problems.append("the plan was made for another state (lineage differs)")
    elif state.get("serial") != serial:
        problems.append(
            f"the state changed since the plan was made (serial {state.get('serial')} → {serial})"
        )
    if problems:
        raise PlanError("saved plan is stale: " + "; ".join(problems) + "; run plan again")


def restrict_to_saved(plan: Plan, saved: dict[str, Any]) -> tuple[Plan, list[str]]:
    """The part of ``plan`` that the saved plan approved, and what it leaves out.

    After the refresh the plan may differ from the one reviewed: a change it no longer
    needs is dropped; a change the reviewer never saw is reported, not carried out.
    """
    approved = {(c["action"], c["address"]) for c in saved.get("changes", [])}

    def kept(change: Change) -> bool:
        return (change.action, change.address) in approved

    left_out = sorted(f"{c.action} {c.address}" for c in plan.changes if not kept(c))
    restricted = plan._replace(
        creates=tuple(c for c in plan.creates if kept(c)),
        replaces=tuple(c for c in plan.replaces if kept(c)),
        completes=tuple(c for c in plan.completes if kept(c)),
        updates=tuple(c for c in plan.updates if kept(c)),
        reopens=tuple(c for c in plan.reopens if kept(c)),
        deletes=tuple(c for c in plan.deletes if kept(c)),
    )
    return restricted, left_out


class Refresh(NamedTuple):
    report: DriftReport
    fell_back: bool  # --lookup get was refused and the lists were used
    refusal: str | None  # set when most records look missing and --force was not given


def refresh_and_judge(
    ledger: Ledger,
    backend: Backend,
    reporter: Reporter,
    lookup: str,
    force: bool = False,
    take_edits: bool = False,
) -> Refresh:
    """Look the managed open records up and write down what DingTalk says of them.

    When most of them look missing, the run is more likely pointed at the wrong DingTalk:
    then nothing is marked missing (the next apply would create it all again) unless
    ``force``. With ``take_edits``, fields edited on DingTalk that the API updates in
    place are written into the state as they are now, so the plan updates them back to
    the file (``drift`` writes status only).
    """
    caps = backend.capabilities
    records = records_to_refresh(list(ledger.state.records.values()))
    observation = observe(backend, records, reporter, lookup)
    records = [r for r in records if r.record_id not in observation.unchecked]
    report = judge(records, observation.found, caps.readable)
    refusal = None if force else mostly_missing(report)
    by_id = {r.record_id: r for r in records}
    completed = [by_id[i.record_id] for i in report.of_kind("completed")]
    missing = [] if refusal else [by_id[i.record_id] for i in report.of_kind("missing")]
    found_again = [r for r in records if r.missing and observation.found.get(r.record_id)]
    still_open = [r for r in records if _shown_open(observation.found.get(r.record_id))]
    ledger.record_observations(completed, missing, found_again, still_open)
    if take_edits and caps.in_place:
        for item in report.of_kind("modified"):
            record, remote = by_id[item.record_id], observation.found[item.record_id]
            heads = {f.head for f in item.fields} & caps.in_place
            edited = {name: getattr(remote, name) for name in sorted(heads)}
            if remote is not None and edited:
                ledger.record_remote_content(record, record.content._replace(**edited))
    return Refresh(report, observation.fell_back, refusal)


def _shown_open(remote: RemoteRecord | None) -> bool:
    return remote is not None and remote.status == "open"


class ApplyView(Protocol):
    """What apply shows and asks on its way; the CLI prints, tests may record."""

    def show_drift(self, report: DriftReport) -> None: ...

    def show_plan(self, plan: Plan) -> None: ...

    def note(self, text: str) -> None: ...

    def confirm(self) -> bool: ...


class ApplySettings(NamedTuple):
    refresh: bool = True
    force: bool = False
    parallelism: int = 8
    lookup: str = "list"
    auto_approve: bool = False


class ApplyRun(NamedTuple):
    plan: Plan
    result: ApplyResult
    refresh: Refresh | None
    planned: tuple[str | None, int]  # lineage (None for a new state) and serial planned on
    left_out: list[str]  # changes the refresh found that a saved plan did not approve
    approved: bool  # False when the user said no at the prompt


def run_apply(
    session: Session,
    task_file: TaskFile,
    view: ApplyView,
    reporter: Reporter,
    settings: ApplySettings,
    saved: dict[str, Any] | None = None,
) -> ApplyRun:
    """The steps of apply, in order: settle interrupted creates, refresh, adopt, plan,
    check, confirm, carry out. Every step's result is in the state as it happens."""
    ledger, backend = session.ledger, session.backend
    look_up_pending(ledger, backend, reporter)
    refreshed = None
    if settings.refresh:
        refreshed = refresh_and_judge(
            ledger, backend, reporter, settings.lookup, settings.force, take_edits=True
        )
        view.show_drift(refreshed.report)
        if refreshed.refusal:
            raise PlanError(f"refusing to apply: {refreshed.refusal}")
    else:
        view.note(
            "--no-refresh: DingTalk was not asked first, so a to-do its assignee completed "
            "may be replaced or reassigned"
        )
    adopted = adopt_existing(
        ledger,
        backend,
        task_file.records,
        reporter,
        parallelism=settings.parallelism,
        namespace=task_file.namespace,
    )
    if adopted:
        view.note(f"Adopted {counted(len(adopted), 'existing to-do')} instead of creating them.")
    the_plan = make_plan(task_file, ledger.state, china_today())
    planned = (ledger.state.lineage if session.existed else None, ledger.state.serial)
    left_out: list[str] = []
    if saved is not None:
        the_plan, left_out = restrict_to_saved(the_plan, saved)
        for change in left_out:
            view.note(f"not in the saved plan, so not done: {change}; run plan again")
    unsafe = the_plan.unsafe_reason()
    if unsafe and not settings.force:
        raise PlanError(f"refusing to apply: {unsafe}")
    view.show_plan(the_plan)
    result = ApplyResult(adopted=adopted)
    if the_plan.has_changes and not settings.auto_approve and not view.confirm():
        return ApplyRun(the_plan, result, refreshed, planned, left_out, approved=False)
    if the_plan.has_changes or adopted:
        session.bind()
    applier = Applier(
        ledger,
        backend,
        reporter,
        parallelism=settings.parallelism,
        namespace=task_file.namespace,
    )
    applier.apply(the_plan, result)
    return ApplyRun(the_plan, result, refreshed, planned, left_out, approved=True)


def plan_with_refresh(
    task_file: TaskFile, state: State, backend: Backend, reporter: Reporter, lookup: str
) -> tuple[Plan, Refresh]:
    """What apply would do now (``plan --refresh``): the refresh and the adoption happen
    on a scratch copy of the state; nothing is written."""
    ledger = Ledger(state, ScratchStore(state))
    backend.attach(ledger)
    look_up_pending(ledger, backend, reporter)
    refreshed = refresh_and_judge(ledger, backend, reporter, lookup, take_edits=True)
    adopt_existing(ledger, backend, task_file.records, reporter, namespace=task_file.namespace)
    the_plan = make_plan(task_file, ledger.state, china_today())
    return the_plan, refreshed


def import_record(
    ledger: Ledger, backend: Backend, task_file: TaskFile, address: str, record_id: str
) -> tuple[StateRecord, list[str]]:
    """Adopt an existing remote record for an address of the task file.

    Returns the new state record and the differences between the file and the record
    (which the next plan turns into a replace).
    """
    desired = task_file.by_address().get(address)
    if desired is None:
        raise DingsyncError(f"{address} is not an address of {task_file.path}")
    if address in ledger.state.records:
        raise DingsyncError(
            f"{address} is already managed (record {ledger.state.records[address].record_id})"
        )
    if address in ledger.state.pending:
        raise DingsyncError(f"{address} has an interrupted create; run apply first")
    if record_id in ledger.known_record_ids():
        raise DingsyncError(f"record {record_id} is already managed by another address")
    remote = backend.lookup(desired, record_id)
    if remote is None:
        raise DingsyncError(f"DingTalk has no to-do {record_id} for user {desired.userid}")
    content = desired.content
    readable = backend.capabilities.readable
    imported_content = content._replace(
        **{name: getattr(remote, name) for name in readable if getattr(remote, name) is not None}
    )
    if "form" in readable:
        imported_content = imported_content._replace(form=remote.form)
    now = utc_now()
    record = StateRecord(
        key=desired.key,
        userid=desired.userid,
        record_id=record_id,
        biz_id=remote.key or "",
        generation=max(ledger.state.next_generation(address), generation_of_key(remote.key or "")),
        content=imported_content,
        fingerprint=imported_content.fingerprint(),
        status=remote.status,
        create_time_ms=remote.create_time_ms,
        created_at=now,
        updated_at=now,
        completed_by="assignee" if remote.status == "done" else None,
    )
    differences = [
        f"{d.field}: DingTalk has {d.after!r}, the file says {d.before!r}"
        for d in field_drift(record._replace(content=content), remote, readable)
    ]
    ledger.adopt(record)
    return record, differences
