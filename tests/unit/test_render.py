"""Rendered plans and drift reports: aligned text, markdown tables, JSON documents."""

from __future__ import annotations

import json

from dingsync.diff import FieldChange
from dingsync.drift import DriftItem
from dingsync.drift import DriftReport
from dingsync.model import State
from dingsync.planner import make_plan
from dingsync.render import display_width
from dingsync.render import drift_markdown
from dingsync.render import drift_text
from dingsync.render import plan_document
from dingsync.render import plan_markdown
from dingsync.render import plan_text
from dingsync.render import to_json
from tests.unit.test_planner import content
from tests.unit.test_planner import desired
from tests.unit.test_planner import managed
from tests.unit.test_planner import state_of
from tests.unit.test_planner import tasks


def sample_plan():
    keep = desired(key="laptop")
    changed = desired(key="badge", content=content(title="领取门禁卡|新"))
    new = desired(key="wiki", userid="bob02", content=content(title="阅读新人手册"))
    state = state_of(
        managed(keep, "r-laptop"),
        managed(desired(key="badge"), "r-badge"),
        managed(desired(key="old"), "r-old"),
    )
    return make_plan(tasks(keep, changed, new), state)


def test_text_plan_is_aligned_and_ends_with_the_summary():
    text = plan_text(sample_plan())
    lines = text.splitlines()
    assert lines[-1] == "Plan: 1 to create, 1 to replace, 1 to complete."
    rows = [line for line in lines if line.startswith("  ") and "@" in line]
    assert [r.split()[0] for r in rows] == ["+", "-/+", "✓"]
    # the address column starts at the same place on every row
    starts = {r.index(r.split()[2]) for r in rows}
    assert len(starts) == 1
    assert 'title: "领取笔记本电脑" → "领取门禁卡|新"' in text


def test_display_width_counts_cjk_double():
    assert display_width("ab") == 2
    assert display_width("领取") == 4


def test_markdown_plan_escapes_pipes():
    md = plan_markdown(sample_plan(), tasks())
    assert "| + | create | `wiki@bob02` |" in md
    assert "领取门禁卡\\|新" in md
    assert md.rstrip().endswith("**Plan: 1 to create, 1 to replace, 1 to complete.**")


def test_plan_document_is_versioned_and_json_serialisable():
    doc = plan_document(sample_plan(), tasks(), "state/x.json", "L", 7)
    parsed = json.loads(to_json(doc))
    assert parsed["format_version"] == 1
    assert parsed["kind"] == "plan"
    assert parsed["state"] == {"path": "state/x.json", "lineage": "L", "serial": 7}
    assert [c["action"] for c in parsed["changes"]] == ["create", "replace", "complete"]
    assert parsed["changes"][1]["diff"][0]["field"] == "title"
    assert parsed["summary"]["text"] == "Plan: 1 to create, 1 to replace, 1 to complete."


def test_no_changes_plan():
    assert plan_text(make_plan(tasks(), State(lineage="L"))) == "No changes."


def test_drift_text_and_markdown():
    report = DriftReport(
        (
            DriftItem("a@u", "r1", "completed"),
            DriftItem("b@u", "r2", "modified", (FieldChange("title", "甲", "乙"),)),
        ),
        checked=5,
    )
    text = drift_text(report)
    assert "completed  a@u" in text
    assert 'title: "甲" → "乙"' in text
    assert text.splitlines()[-1] == "Drift: 1 completed, 0 missing, 1 modified (5 records checked)."
    assert "| modified | `b@u` |" in drift_markdown(report)


def unsafe_plan():
    """Twelve managed records, all dropped from the file, and one interrupted create."""
    records = [managed(desired(key=f"t{i}"), f"r{i}") for i in range(12)]
    plan = make_plan(tasks(desired(key="new")), state_of(*records))
    return plan._replace(notes=("new@alice01: a create was interrupted",))


def test_every_format_carries_the_refusal_and_the_notes():
    plan = unsafe_plan()
    assert plan.unsafe_reason()
    text = plan_text(plan)
    markdown = plan_markdown(plan, tasks())
    document = plan_document(plan, tasks(), "s.json", None, 0)
    for shown_text in (text, markdown):
        assert "apply will refuse this plan without --force" in shown_text
        assert "new@alice01: a create was interrupted" in shown_text
    assert document["unsafe"] == plan.unsafe_reason()
    assert document["notes"] == ["new@alice01: a create was interrupted"]


def test_unprintable_characters_are_escaped_in_human_output():
    sneaky = desired(key="x", content=content(title="领取\x1b[2K\r电脑\u202e"))
    plan = make_plan(tasks(sneaky), State(lineage="l"))
    for rendered in (plan_text(plan), plan_markdown(plan, tasks(sneaky))):
        assert "\x1b" not in rendered and "\r" not in rendered and "\u202e" not in rendered
        assert "领取\\x1b[2K\\r电脑\\u202e" in rendered
