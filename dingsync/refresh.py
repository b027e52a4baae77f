"""Look managed records up remotely with as few metered calls as the API allows.

Per user: page the open list until every open record of that user is found, then the done
list only while some are still unaccounted for. That is about users + records/50 calls,
against one call per record for a naive lookup (SPEC.md "Call economy").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from dingsync.backend import Backend
from dingsync.errors import InvalidUserError
from dingsync.errors import UnknownMethodError
from dingsync.model import RemoteRecord
from dingsync.model import StateRecord
from dingsync.recovery import STATUSES
from dingsync.reporter import Reporter


@dataclass(frozen=True)
class Observation:
    found: dict[str, RemoteRecord | None]  # record_id -> what DingTalk lists, or None
    fell_back: bool = False  # --lookup get was refused (errcode 22) and lists were used
    # record_id -> why it could not be looked up (its user's list failed): neither found
    # nor missing, so nothing is concluded about it.
    unchecked: dict[str, str] | None = None


def records_to_refresh(records: list[StateRecord]) -> list[StateRecord]:
    """Open records are the ones that can drift; done ones stay done.

    Records already seen missing are looked up again: they stay drift until recreated.
    """
    return [r for r in records if r.status == "open"]


def _lookup_by_lists(
    backend: Backend,
    records: list[StateRecord],
    reporter: Reporter,
    unchecked: dict[str, str] | None = None,
) -> dict[str, RemoteRecord | None]:
    by_user: dict[str, set[str]] = defaultdict(set)
    for record in records:
        by_user[record.userid].add(record.record_id)
    found: dict[str, RemoteRecord | None] = {}
    for userid in sorted(by_user):
        try:
            found.update(_lookup_user(backend, userid, set(by_user[userid]), reporter))
        except InvalidUserError as exc:
            if unchecked is None:
                raise
            # One user's failing list (a userid that left the organisation, 33012) must
            # not stop the others; its records are neither found nor missing.
            reporter.note(f"records of {userid} not checked: {exc}")
            for record_id in by_user[userid]:
                unchecked[record_id] = str(exc)
                reporter.advanced("refresh")
    return found


def _lookup_user(
    backend: Backend, userid: str, wanted: set[str], reporter: Reporter
) -> dict[str, RemoteRecord | None]:
    found: dict[str, RemoteRecord | None] = {}
    # The open list once more at the end: paging by offset can skip a record when the
    # assignee completes another one between two pages, and a record wrongly judged
    # missing would be created again.
    for status in (*STATUSES, "open"):
        if not wanted:
            break
        for remote in backend.list_records(userid, status):
            if remote.record_id in wanted:
                found[remote.record_id] = remote
                wanted.discard(remote.record_id)
                reporter.advanced("refresh")
                if not wanted:
                    break
    for record_id in wanted:
        found[record_id] = None
        reporter.advanced("refresh")
    return found


def _lookup_by_get(
    backend: Backend, records: list[StateRecord], reporter: Reporter
) -> dict[str, RemoteRecord | None]:
    found: dict[str, RemoteRecord | None] = {}
    for record in records:
        found[record.record_id] = backend.get_record(record.userid, record.record_id)
        reporter.advanced("refresh")
    return found


def observe(
    backend: Backend, records: list[StateRecord], reporter: Reporter, lookup: str = "list"
) -> Observation:
    """Find each record remotely; ``lookup`` is ``list`` (documented) or ``get``."""
    reporter.started(len(records), "refresh")
    unchecked: dict[str, str] = {}
    try:
        if lookup == "get":
            try:
                return Observation(_lookup_by_get(backend, records, reporter))
            except UnknownMethodError:
                reporter.note(
                    "this endpoint does not offer workrecord/get (errcode 22); "
                    "looking records up with the list call instead"
                )
                reporter.started(len(records), "refresh")
                found = _lookup_by_lists(backend, records, reporter, unchecked)
                return Observation(found, fell_back=True, unchecked=unchecked)
        found = _lookup_by_lists(backend, records, reporter, unchecked)
        return Observation(found, unchecked=unchecked)
    finally:
        reporter.finished("refresh")
