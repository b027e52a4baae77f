"""The plan and apply schemas accept the v1.0 to-do API's actions (update, reopen, delete)
and its content, as dingsync.render writes them, and still reject what it never writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dingsync.applier import ApplyResult
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import State
from dingsync.model import StateRecord
from dingsync.model import TaskFile
from dingsync.planner import make_plan
from dingsync.render import apply_document
from dingsync.render import plan_document

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schema(kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8"))


def errors(kind: str, document: dict[str, Any], skip: str = "") -> list[str]:
    """Every schema error, as path: message; those under the path ``skip`` left out."""
    validator = Draft202012Validator(schema(kind))
    found = []
    for error in validator.iter_errors(document):
        path = "/".join(map(str, error.absolute_path)) or "<root>"
        if not (skip and path.startswith(skip)):
            found.append(f"{path}: {error.message}")
    return sorted(found)


def todo_content(title: str = "领取笔记本电脑", **kw: Any) -> Content:
    base: dict[str, Any] = {
        "url": "https://intranet.example.com/it",
        "description": "到 IT 服务台领取",
        "due_time": 1_796_000_000_000,
        "priority": 30,
        "ding": True,
        "creator_userid": "manager7078",
    }
    base.update(kw)
    return Content(title=title, **base)


def desired(key: str, content: Content) -> DesiredRecord:
    return DesiredRecord(key=key, userid="alice01", content=content)


def managed(key: str, content: Content, record_id: str, **kw: Any) -> StateRecord:
    base: dict[str, Any] = dict(
        key=key,
        userid="alice01",
        record_id=record_id,
        biz_id=f"dingsync-{key}-0",
        generation=0,
        content=content,
        fingerprint=content.fingerprint(),
        status="open",
        create_time_ms=1,
        created_at="2026-11-28T00:00:00Z",
        updated_at="2026-11-28T00:00:00Z",
    )
    base.update(kw)
    return StateRecord(**base)


@pytest.fixture
def plan_doc() -> dict[str, Any]:
    """A todo plan with one update, one reopen (empty diff), one delete and one replace."""
    wanted = [
        desired("laptop", todo_content("领取笔记本电脑和显示器")),  # title: updated in place
        desired("badge", todo_content("领取工牌")),  # completed by dingsync: reopened
        desired("desk", todo_content("领取工位", url="https://intranet.example.com/desk")),
    ]
    records = [
        managed("laptop", todo_content(), "task-laptop"),
        managed(
            "badge", todo_content("领取工牌"), "task-badge", status="done", completed_by="dingsync"
        ),
        managed("desk", todo_content("领取工位"), "task-desk"),  # url changed: replaced
        managed("nda", todo_content("签署保密协议"), "task-nda"),  # gone from the file: deleted
    ]
    task_file = TaskFile(
        path="tasks.yaml",
        sha256="0" * 64,
        records=tuple(wanted),
        api="todo",
        on_removal="delete",
    )
    state = State(lineage="L", serial=3, records={r.address: r for r in records})
    return plan_document(make_plan(task_file, state), task_file, "tasks.state.json", "L", 3)


def test_a_todo_plan_with_update_reopen_and_delete_is_valid(plan_doc):
    actions = {c["address"]: c["action"] for c in plan_doc["changes"]}
    assert actions == {
        "laptop@alice01": "update",
        "badge@alice01": "reopen",
        "desk@alice01": "replace",
        "nda@alice01": "delete",
    }
    assert next(c for c in plan_doc["changes"] if c["action"] == "reopen")["diff"] == []
    assert (
        plan_doc["summary"]["text"] == "Plan: 1 to update, 1 to replace, 1 to reopen, 1 to delete."
    )
    assert errors("plan", plan_doc) == []


def test_an_apply_document_of_the_todo_plan_is_valid(plan_doc):
    result = ApplyResult(
        updated=["laptop@alice01"],
        replaced=["desk@alice01"],
        reopened=["badge@alice01"],
        deleted=["nda@alice01"],
    )
    doc = apply_document(
        plan_doc,
        result,
        None,
        "list",
        False,
        {"todo/create": 1, "todo/update": 2, "todo/delete": 1},
        {"path": "tasks.state.json", "serial": 4},
    )
    # api_calls (the v1.0 call names) is drift.schema.json's part, not checked here.
    assert errors("apply", doc, skip="api_calls") == []
    assert doc["result"]["reopened"] == ["badge@alice01"]
    del doc["result"]["reopened"]
    assert errors("apply", doc, skip="api_calls")


def mutated(doc: dict[str, Any], action: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` whose first change of ``action`` has ``fields`` instead."""
    changed = copy.deepcopy(doc)
    change = next(c for c in changed["changes"] if c["action"] == action)
    change.update(fields)
    return changed


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("update", {"action": "rename"}),  # an invented action
        ("delete", {"action": "archive"}),
        ("update", {"diff": []}),  # an update always changes something
        ("delete", {"reason": "done"}),
        ("reopen", {"status": "done"}),
    ],
)
def test_what_render_never_writes_is_rejected(plan_doc, action, fields):
    assert errors("plan", mutated(plan_doc, action, fields))


@pytest.mark.parametrize(
    "content",
    [
        {"priority": 25},
        {"due_time": "2026-12-05"},
        {"description": "x" * 4097},
        {"source_name": "入职流程"},  # a workrecord field in a todo content
        {"form": [{"title": "任务描述", "content": "到 IT 服务台领取"}]},  # a form with v1.0 fields
    ],
)
def test_a_content_mixing_or_mistyping_fields_is_rejected(plan_doc, content):
    change = next(c for c in plan_doc["changes"] if c["action"] == "update")
    assert errors(
        "plan", mutated(plan_doc, "update", {"content": {**change["content"], **content}})
    )


def test_summary_needs_every_action(plan_doc):
    changed = copy.deepcopy(plan_doc)
    del changed["summary"]["delete"]
    assert errors("plan", changed)
