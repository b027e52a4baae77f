"""Pure drift judgement: what was sent (state) against what DingTalk shows now.

Only the fields the API reads back are compared (``Capabilities.readable``): the legacy
list shows title, url and forms; v1.0 cards show title, both urls, due time and priority.
"""

from __future__ import annotations

from typing import Literal
from typing import NamedTuple

from dingsync.diff import FieldChange
from dingsync.diff import diff
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.wording import counted

DriftKind = Literal["completed", "missing", "modified"]


class DriftItem(NamedTuple):
    address: str
    record_id: str
    kind: DriftKind
    # What was sent (before) against what DingTalk shows (after).
    fields: tuple[FieldChange, ...] = ()


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


def field_drift(
    sent: StateRecord, remote: RemoteRecord, readable: frozenset[str] = LISTED
) -> tuple[FieldChange, ...]:
    """Field-level differences between what dingsync sent and what DingTalk shows."""
    return diff(sent.content, remote, readable)


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
