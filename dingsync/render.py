"""Plans, apply results and drift reports as text, markdown and JSON documents.

Pure: every function returns a string or a dict; only the CLI writes to the terminal.
JSON documents carry ``format_version`` (documented in the README); a breaking change to
their shape bumps it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any

from dingsync import __version__
from dingsync.chinatime import CHINA
from dingsync.diff import FieldChange
from dingsync.errors import Problem
from dingsync.model import TaskFile
from dingsync.planner import ACTIONS
from dingsync.planner import Change
from dingsync.planner import Complete
from dingsync.planner import Create
from dingsync.planner import Delete
from dingsync.planner import Plan

if TYPE_CHECKING:
    from dingsync.applier import ApplyResult
    from dingsync.drift import DriftReport

JSON_FORMAT_VERSION = 1


def document(kind: str, **fields: Any) -> dict[str, Any]:
    """A JSON document of ``kind``: what every command prints under --json."""
    return {"format_version": JSON_FORMAT_VERSION, "kind": kind, **fields}


def validate_document(
    task_file: str, records: int, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``validate --json`` of a valid file (and of the state it read, with --state)."""
    doc = document("validate", valid=True, file=task_file, records=records, problems=[])
    if state is not None:
        doc["state"] = state
    return doc


def problems_document(task_file: str, problems: Iterable[Problem]) -> dict[str, Any]:
    """``validate --json`` of a file with problems; every command's error document lists
    them the same way."""
    listed = [
        {"file": p.file, "line": p.line, "column": p.column, "path": p.path, "message": p.message}
        for p in problems
    ]
    return document("validate", valid=False, file=task_file, problems=listed)


def import_document(address: str, record: dict[str, Any], differences: list[str]) -> dict[str, Any]:
    return document("import", address=address, record=record, differences=differences)


def unlock_document(path: str, holder: dict[str, Any]) -> dict[str, Any]:
    return document("force-unlock", path=path, holder=holder)


def drift_run_document(
    report: DriftReport,
    lookup: str,
    fell_back: bool,
    unsettled: list[str],
    refusal: str | None,
    counts: dict[str, int],
) -> dict[str, Any]:
    """What ``drift --json`` prints (schemas/drift.schema.json)."""
    return document(
        "drift",
        **drift_document(report),
        lookup=lookup,
        lookup_fell_back=fell_back,
        unsettled=unsettled,
        refused=refusal,
        api_calls=_calls(counts),
    )


Style = Callable[..., str]


def _plain(text: str, **_: Any) -> str:
    return text


SYMBOLS = {
    "create": "+",
    "update": "~",
    "replace": "-/+",
    "reopen": "↺",
    "complete": "✓",
    "delete": "-",
}
COLORS = {
    "create": "green",
    "update": "yellow",
    "replace": "yellow",
    "reopen": "green",
    "complete": "cyan",
    "delete": "red",
}
REASONS = {
    "new": "",
    "missing": "recreate: missing on DingTalk",
    "reopened": "reopened in the file",
    "resume": "interrupted create, confirmed first",
    "removed": "removed from the file",
    "done": "status: done",
    "replaced": "old record of a replace",
    "interrupted": "interrupted create, no longer wanted",
}


def display_width(text: str) -> int:
    """Terminal columns: CJK characters take two, so Chinese titles still align."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


# Characters that could rewrite a terminal line or hide text: controls (ESC, CR), format
# characters (zero-width space, right-to-left override), line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def shown(text: str) -> str:
    """``text`` safe to print: every unprintable character escaped (``\\x1b``, ``\\u202e``)."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in _UNPRINTABLE
        else ch
        for ch in text
    )


def _short(value: Any, field: str = "") -> str:
    if field == "due_time" and isinstance(value, int) and not isinstance(value, bool):
        # Unix milliseconds in the state; shown as the China time a user wrote.
        moment = datetime.fromtimestamp(value / 1000, CHINA)
        return moment.strftime("%Y-%m-%d %H:%M:%S+08:00")
    if isinstance(value, list):
        return "[" + ", ".join(f"{shown(i['title'])}: {shown(i['content'])}" for i in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _field_line(fc: FieldChange) -> str:
    return f"{fc.field}: {_short(fc.before, fc.field)} → {_short(fc.after, fc.field)}"


def warnings(plan: Plan) -> list[tuple[str, str]]:
    """What a reviewer must see in every format, as (label, text): the refusal to come,
    then the plan's notes (interrupted creates, DingTalk's same-day refusals)."""
    unsafe = plan.unsafe_reason()
    refusal = [("Warning", f"apply will refuse this plan without --force: {unsafe}")]
    return (refusal if unsafe else []) + [("Note", shown(note)) for note in plan.notes]


def _field_changes(change: Change) -> tuple[FieldChange, ...]:
    """The field diff a change shows: replaces, updates and reopens have one."""
    return getattr(change, "changes", ())


def _detail(change: Change) -> str:
    if isinstance(change, (Complete, Delete)):
        reason = REASONS.get(change.reason, change.reason)
        return f"{shown(change.current.content.title)}  ({reason}, {change.current.record_id})"
    text = shown(change.desired.content.title)
    if isinstance(change, Create) and REASONS.get(change.reason):
        text += f"  ({REASONS[change.reason]})"
    return text


def plan_text(plan: Plan, style: Style = _plain) -> str:
    lines: list[str] = []
    changes = plan.changes
    if changes:
        label_width = max(len(f"{SYMBOLS[c.action]} {c.action}") for c in changes)
        address_width = max(display_width(shown(c.address)) for c in changes)
        lines.append("dingsync will perform these actions:")
        lines.append("")
        for change in changes:
            label = _pad(f"{SYMBOLS[change.action]} {change.action}", label_width)
            lines.append(
                f"  {style(label, fg=COLORS[change.action])}  "
                f"{_pad(shown(change.address), address_width)}  {_detail(change)}"
            )
            if _field_changes(change):
                indent = " " * (label_width + 4)
                for fc in _field_changes(change):
                    lines.append(f"{indent}{_field_line(fc)}")
        lines.append("")
    for label, text in warnings(plan):
        lines.append(f"{label}: {text}")
    lines.append(style(plan.summary(), bold=True))
    return "\n".join(lines)


def _md(text: str) -> str:
    return shown(text.replace("\n", " ")).replace("|", "\\|")


def plan_markdown(plan: Plan, task_file: TaskFile) -> str:
    lines = [f"#### dingsync plan for `{_md(task_file.path)}`", ""]
    if plan.changes:
        lines += ["| | action | address | details |", "|---|---|---|---|"]
        for change in plan.changes:
            details = _detail(change)
            if _field_changes(change):
                details += "<br>" + "<br>".join(_field_line(fc) for fc in _field_changes(change))
            lines.append(
                f"| {SYMBOLS[change.action]} | {change.action} | `{_md(change.address)}` "
                f"| {_md(details)} |"
            )
        lines.append("")
    for label, text in warnings(plan):
        lines += [f"> **{label}:** {_md(text)}", ""]
    lines.append(f"**{plan.summary()}**")
    return "\n".join(lines) + "\n"


def change_to_dict(change: Change) -> dict[str, Any]:
    data: dict[str, Any] = {"action": change.action, "address": change.address}
    if isinstance(change, (Complete, Delete)):
        data.update(record_id=change.current.record_id, reason=change.reason)
        return data
    data.update(
        key=change.desired.key,
        userid=change.desired.userid,
        status=change.desired.status,
        content=change.desired.content.to_dict(),
        fingerprint=change.desired.content.fingerprint(),
    )
    if isinstance(change, Create):
        data["reason"] = change.reason
    else:
        data["record_id"] = change.current.record_id
        # Whole fields, as the plan schema has them; the text shows the form line by line.
        before, after = change.current.content.to_dict(), change.desired.content.to_dict()
        heads = dict.fromkeys(fc.head for fc in _field_changes(change))
        data["diff"] = [
            {"field": head, "before": before.get(head), "after": after.get(head)} for head in heads
        ]
    return data


def plan_document(
    plan: Plan,
    task_file: TaskFile,
    state_path: str,
    lineage: str | None,
    serial: int,
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The plan as JSON: printed by ``plan --json`` and saved by ``plan --out``.
    ``counts``: the calls of ``plan --refresh``, which alone makes any."""
    calls = {} if counts is None else {"api_calls": _calls(counts)}
    return {
        **calls,
        "format_version": JSON_FORMAT_VERSION,
        "kind": "plan",
        "dingsync_version": __version__,
        "task_file": {"path": task_file.path, "sha256": task_file.sha256},
        "state": {"path": state_path, "lineage": lineage, "serial": serial},
        "has_changes": plan.has_changes,
        "summary": {
            **plan.counts(),
            "unchanged": plan.unchanged,
            "managed": plan.managed,
            "text": plan.summary(),
        },
        "unsafe": plan.unsafe_reason(),
        "changes": [change_to_dict(c) for c in plan.changes],
        "notes": list(plan.notes),
    }


def drift_document(report: DriftReport) -> dict[str, Any]:
    return {
        "checked": report.checked,
        "summary": {k: len(report.of_kind(k)) for k in ("completed", "missing", "modified")},
        "items": [
            {
                "address": item.address,
                "record_id": item.record_id,
                "kind": item.kind,
                "fields": [
                    {"path": f.field, "expected": f.before, "actual": f.after} for f in item.fields
                ],
            }
            for item in report.items
        ],
    }


DRIFT_EXPLAINED = {
    "completed": "done on DingTalk (recorded; not recreated)",
    "missing": "in neither list on DingTalk (recreated by the next apply)",
    "modified": "changed on DingTalk",
}


def drift_text(report: DriftReport, style: Style = _plain) -> str:
    lines: list[str] = []
    if report.items:
        width = max(display_width(shown(i.address)) for i in report.items)
        for item in report.items:
            tag = style(f"{item.kind:<9}", fg="yellow")
            address = _pad(shown(item.address), width)
            lines.append(f"  {tag}  {address}  {DRIFT_EXPLAINED[item.kind]}")
            for f in item.fields:
                lines.append(f"{' ' * 13}{_field_line(f)}")
        lines.append("")
    lines.append(style(report.summary(), bold=True))
    return "\n".join(lines)


def drift_markdown(report: DriftReport) -> str:
    lines = ["#### dingsync drift", ""]
    if report.items:
        lines += ["| kind | address | details |", "|---|---|---|"]
        for item in report.items:
            details = DRIFT_EXPLAINED[item.kind]
            if item.fields:
                details += "<br>" + "<br>".join(_field_line(f) for f in item.fields)
            lines.append(f"| {item.kind} | `{_md(item.address)}` | {_md(details)} |")
        lines.append("")
    lines.append(f"**{report.summary()}**")
    return "\n".join(lines) + "\n"


PAST_TENSE = {
    "create": "created",
    "update": "updated",
    "replace": "replaced",
    "reopen": "reopened",
    "complete": "completed",
    "delete": "deleted",
}


def apply_summary(result: ApplyResult) -> str:
    adopted = f"{len(result.adopted)} adopted" if result.adopted else ""
    if not (any(result.done_list(a) for a in ACTIONS) or result.failed):
        if result.skipped:
            return f"Nothing applied: {len(result.skipped)} completion(s) skipped."
        return f"Nothing to apply ({adopted})." if adopted else "Nothing to apply."
    parts = [
        f"{len(result.done_list(action))} {PAST_TENSE[action]}"
        for action in ACTIONS
        if result.done_list(action)
    ]
    if adopted:
        parts.append(adopted)
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    if result.failed:
        parts.append(f"{len(result.failed)} failed")
    return "Apply complete: " + ", ".join(parts) + "."


def apply_markdown(
    plan: Plan, task_file: TaskFile, result: ApplyResult, report: DriftReport | None
) -> str:
    """The job summary of an apply: its outcome first, with every failure's reason."""
    lines = ["## dingsync apply", "", f"**{_md(apply_summary(result))}**", ""]
    if result.fatal:
        lines += [f"Stopped: {_md(result.fatal)}", ""]
    for title, items in (("Failed", result.failed), ("Skipped", result.skipped)):
        if items:
            lines += [f"### {title}", ""]
            lines += [f"- `{_md(a)}`: {_md(why)}" for a, why in sorted(items.items())]
            lines.append("")
    out = "\n".join(lines) + "\n" + plan_markdown(plan, task_file)
    return out + ("\n" + drift_markdown(report) if report else "")


def apply_document(
    plan_doc: dict[str, Any],
    result: ApplyResult,
    report: DriftReport | None,
    lookup: str,
    fell_back: bool,
    counts: dict[str, int],
    state: dict[str, Any],
) -> dict[str, Any]:
    """What ``apply --json`` prints (schemas/apply.schema.json)."""
    return {
        "format_version": JSON_FORMAT_VERSION,
        "kind": "apply",
        "ok": result.ok,
        "plan": plan_doc,
        "result": {
            **{PAST_TENSE[action]: sorted(result.done_list(action)) for action in ACTIONS},
            "failed": dict(sorted(result.failed.items())),
            "skipped": dict(sorted(result.skipped.items())),
            "adopted": sorted(result.adopted),
            "fatal": result.fatal,
        },
        "drift": drift_document(report) if report else None,
        "lookup": lookup,
        "lookup_fell_back": fell_back,
        "api_calls": _calls(counts),
        "state": state,
    }


def _calls(counts: dict[str, int]) -> dict[str, Any]:
    return {"total": sum(counts.values()), "by_api": counts}


def calls_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()) if n)
    return f"API calls: {total}" + (f" ({parts})" if parts else "")


def to_json(document: dict[str, Any]) -> str:
    """Compact JSON (the C encoder: indenting would be ten times slower on large plans)."""
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
