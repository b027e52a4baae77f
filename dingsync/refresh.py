"""Look managed records up remotely with as few metered calls as the API allows.

How is the backend's own: per user for workrecord (users + records/50 calls), per creator
for v1.0 (creators + records/page calls), never one call per record (SPEC.md "Call
economy"). This module chooses what to look up and reports progress.
"""

from __future__ import annotations

from collections.abc import Sequence

from dingsync.backend import Backend
from dingsync.backend import Observation
from dingsync.model import StateRecord
from dingsync.reporter import Reporter

__all__ = ["Observation", "observe", "records_to_refresh"]


def records_to_refresh(records: Sequence[StateRecord]) -> list[StateRecord]:
    """Open records are the ones that can drift; done ones stay done.

    Records already seen missing are looked up again: they stay drift until recreated.
    """
    return [r for r in records if r.status == "open"]


def observe(
    backend: Backend, records: Sequence[StateRecord], reporter: Reporter, lookup: str = "list"
) -> Observation:
    """Find each record remotely; ``lookup`` is ``list`` (documented) or ``get``."""
    reporter.started(len(records), "refresh")
    try:
        return backend.observe(records, reporter, lookup)
    finally:
        reporter.finished("refresh")
