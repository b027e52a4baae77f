"""Drift classes and field-level diffs, from plain values."""

from __future__ import annotations

from dingsync.diff import FieldChange
from dingsync.drift import judge
from dingsync.model import Content
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord

SENT = Content(
    "签署保密协议", "https://hr.example.com/nda", (("说明", "线上签署"), ("截止", "周五"))
)


def record(record_id: str = "r1", key: str = "nda") -> StateRecord:
    return StateRecord(
        key, "alice01", record_id, "b", 0, SENT, SENT.fingerprint(), "open", 1, "t", "t"
    )


def remote(record_id: str = "r1", status: str = "open", **kw) -> RemoteRecord:
    fields = {"title": SENT.title, "url": SENT.url, "form": SENT.form}
    fields.update(kw)
    return RemoteRecord(record_id, "alice01", 1, status=status, **fields)


def test_unchanged_record_is_no_drift():
    report = judge([record()], {"r1": remote()})
    assert report.items == ()
    assert report.summary() == "No drift: 1 record checked."


def test_done_remotely_is_completed():
    (item,) = judge([record()], {"r1": remote(status="done")}).items
    assert (item.kind, item.address) == ("completed", "nda@alice01")


def test_absent_is_missing():
    (item,) = judge([record()], {"r1": None}).items
    assert item.kind == "missing"


def test_modified_lists_each_field():
    changed = remote(title="签署协议", form=(("说明", "线下签署"), ("截止", "周五")))
    (item,) = judge([record()], {"r1": changed}).items
    assert item.kind == "modified"
    assert item.fields == (  # in the order of the content's fields, as a plan shows them
        FieldChange("title", "签署保密协议", "签署协议"),
        FieldChange("form[0].content", "线上签署", "线下签署"),
    )


def test_added_and_removed_form_items():
    longer = remote(form=(*SENT.form, ("新增", "x")))
    (item,) = judge([record()], {"r1": longer}).items
    assert item.fields == (FieldChange("form[2]", None, {"title": "新增", "content": "x"}),)
    shorter = remote(form=SENT.form[:1])
    (item,) = judge([record()], {"r1": shorter}).items
    assert item.fields == (FieldChange("form[1]", {"title": "截止", "content": "周五"}, None),)


def test_summary_counts_each_kind():
    records = [record("r1", "a"), record("r2", "b"), record("r3", "c")]
    report = judge(
        records,
        {"r1": remote("r1", status="done"), "r2": None, "r3": remote("r3", url="https://x")},
    )
    assert report.summary() == "Drift: 1 completed, 1 missing, 1 modified (3 records checked)."
