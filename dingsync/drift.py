"""Pure drift judgement: what was sent (state) against what DingTalk shows now.

Only the fields the API reads back are compared (``Capabilities.readable``): the legacy
list shows title, url and forms; v1.0 cards show title, both urls, due time and priority.
"""

from __future__ import annotations

from typing import Any
from typing import Literal
from typing import NamedTuple

from dingsync.model import FIELDS
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.wording import counted

FIELD_ORDER = tuple(f.name for f in FIELDS)
DriftKind = Literal["completed", "missing", "modified"]


class FieldDrift(NamedTuple):
    path: str  # e.g. "title", "form[1].content"
    expected: Any
    actual: Any


class DriftItem(NamedTuple):
    address: str
    record_id: str
    kind: DriftKind
    fields: tuple[FieldDrift, ...] = ()


class DriftReport(NamedTuple):
    items: tuple[DriftItem, ...]
    checked: int

    def of_kind(self, kind: DriftKind) -> tuple[DriftItem, ...]:
        return tuple(i for i in self.items if i.kind == kind)

    def summary(self) -> str:
        if not self.items:
            return f"No drift: {counted(self.checked, 'record')} checked."
        counts = ", ".join(
            f"{len(self.of_kind(k))} {k}" for k in ("completed", "missing", "modified")
        )
        return f"Drift: {counts} ({counted(self.checked, 'record')} checked)."


# The legacy list's fields: what a drift report compares unless told otherwise.
LISTED = frozenset({"title", "url", "form"})


def _comparable(item: Any, readable: frozenset[str]) -> dict[str, Any]:
    data = {name: getattr(item, name) for name in FIELD_ORDER if name in readable}
    if "form" in data:
        data["form"] = [{"title": t, "content": c} for t, c in data["form"]]
    return data


def _path(deepdiff_path: list[Any]) -> str:
    text = ""
    for part in deepdiff_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def field_drift(
    sent: StateRecord, remote: RemoteRecord, readable: frozenset[str] = LISTED
) -> tuple[FieldDrift, ...]:
    """Field-level differences between what dingsync sent and what DingTalk shows."""
    expected = _comparable(sent.content, readable)
    actual = _comparable(remote, readable)
    if expected == actual:
        return ()
    # Imported here: deepdiff is heavy, and most records have not drifted.
    from deepdiff import DeepDiff

    diff = DeepDiff(expected, actual, ignore_order=False, view="tree")
    drifts: list[FieldDrift] = []
    for kind in ("values_changed", "type_changes"):
        for level in diff.get(kind, []):
            drifts.append(FieldDrift(_path(level.path(output_format="list")), level.t1, level.t2))
    for kind in ("iterable_item_added", "iterable_item_removed"):
        for level in diff.get(kind, []):
            t1 = None if kind == "iterable_item_added" else level.t1
            t2 = level.t2 if kind == "iterable_item_added" else None
            drifts.append(FieldDrift(_path(level.path(output_format="list")), t1, t2))
    return tuple(sorted(drifts, key=lambda d: d.path))


# A refresh that cannot find this share of at least this many open records is more likely
# pointed at the wrong endpoint or app than facing mass deletion (SPEC "Identity and safety").
MISSING_MIN_RECORDS = 10
MISSING_MAX_SHARE = 0.30


def mostly_missing(report: DriftReport) -> str | None:
    """Why the refresh's missing records must not be believed without --force, or None."""
    missing = len(report.of_kind("missing"))
    if report.checked < MISSING_MIN_RECORDS or missing <= MISSING_MAX_SHARE * report.checked:
        return None
    return (
        f"DingTalk does not know {missing} of {report.checked} records: wrong endpoint or "
        "app? Check DINGSYNC_ENDPOINT and the app credentials; if the to-dos really were "
        "deleted, rerun with --force to record them as missing"
    )


def judge(
    records: list[StateRecord],
    observed: dict[str, RemoteRecord | None],
    readable: frozenset[str] = LISTED,
) -> DriftReport:
    """Classify each refreshed record; ``observed`` maps record_id to what was found."""
    items: list[DriftItem] = []
    for record in records:
        remote = observed.get(record.record_id)
        if remote is None:
            items.append(DriftItem(record.address, record.record_id, "missing"))
        elif remote.status == "done" and record.status == "open":
            items.append(DriftItem(record.address, record.record_id, "completed"))
        else:
            fields = field_drift(record, remote, readable)
            if fields:
                items.append(DriftItem(record.address, record.record_id, "modified", fields))
    return DriftReport(tuple(sorted(items, key=lambda i: (i.address, i.kind))), len(records))
