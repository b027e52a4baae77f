"""The steps of apply, drift and import, wired together; no terminal I/O here.

The CLI parses options, builds a backend and calls these; tests can call them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dingsync.backend import Backend
from dingsync.drift import DriftReport
from dingsync.drift import field_drift
from dingsync.drift import judge
from dingsync.errors import DingsyncError
from dingsync.errors import PlanError
from dingsync.ledger import Ledger
from dingsync.ledger import utc_now
from dingsync.model import StateRecord
from dingsync.model import TaskFile
from dingsync.planner import Plan
from dingsync.recovery import STATUSES
from dingsync.refresh import observe
from dingsync.refresh import records_to_refresh
from dingsync.render import change_to_dict
from dingsync.reporter import Reporter


def read_plan_file(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read the saved plan: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "plan":
        raise PlanError(f"{path}: not a dingsync plan file")
    return data


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


def check_within_saved(plan: Plan, saved: dict[str, Any]) -> None:
    """After settling interrupted creates, the plan may shrink but never grow."""
    approved = {(c["action"], c["address"]) for c in saved.get("changes", [])}
    extra = [
        c["address"]
        for c in (change_to_dict(ch) for ch in plan.changes)
        if (c["action"], c["address"]) not in approved
    ]
    if extra:
        raise PlanError(
            "the saved plan does not cover " + ", ".join(sorted(extra)) + "; run plan again"
        )


def refresh_and_judge(
    ledger: Ledger, backend: Backend, reporter: Reporter, lookup: str
) -> tuple[DriftReport, bool]:
    records = records_to_refresh(list(ledger.state.records.values()))
    observation = observe(backend, records, reporter, lookup)
    report = judge(records, observation.found)
    by_id = {r.record_id: r for r in records}
    completed = [by_id[i.record_id] for i in report.of_kind("completed")]
    missing = [by_id[i.record_id] for i in report.of_kind("missing")]
    found_again = [r for r in records if r.missing and observation.found.get(r.record_id)]
    ledger.record_observations(completed, missing, found_again)
    return report, observation.fell_back


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
    remote = None
    for status in STATUSES:
        for item in backend.list_records(desired.userid, status):
            if item.record_id == record_id:
                remote = item
                break
        if remote is not None:
            break
    if remote is None:
        raise DingsyncError(f"DingTalk lists no record {record_id} for user {desired.userid}")
    content = desired.content
    imported_content = type(content)(
        title=remote.title,
        url=remote.url,
        form=remote.form,
        pc_url=content.pc_url,
        source_name=content.source_name,
        originator_userid=content.originator_userid,
        pc_open_type=content.pc_open_type,
    )
    now = utc_now()
    record = StateRecord(
        key=desired.key,
        userid=desired.userid,
        record_id=record_id,
        biz_id="",
        generation=ledger.state.next_generation(address),
        content=imported_content,
        fingerprint=imported_content.fingerprint(),
        status=remote.status,
        create_time_ms=remote.create_time_ms,
        created_at=now,
        updated_at=now,
        completed_by="assignee" if remote.status == "done" else None,
    )
    differences = [
        f"{d.path}: DingTalk has {d.actual!r}, the file says {d.expected!r}"
        for d in field_drift(record._replace(content=content), remote)
    ]
    ledger.adopt(record)
    return record, differences
