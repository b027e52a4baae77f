"""The changes a run makes to its state, as events: built here, applied here.

The ledger applies each event to the state in memory right after the journal made it
durable, and loading a state replays a leftover journal through the same ``apply_event``,
so the live state and a replayed one can never disagree. Pure: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dingsync.model import PendingCreate
from dingsync.model import Remote
from dingsync.model import State
from dingsync.model import StateRecord

Event = dict[str, Any]

# Event kinds. ``begin`` is the journal's header line; the others change the state.
# ``generation`` is no longer written, but a journal of an older version may hold it.
OPS = frozenset(
    {
        "begin",
        "pending",
        "abandon",
        "record",
        "retire",
        "retired",
        "forget",
        "generation",
        "remote",
        "union_ids",
    }
)


def pending(create: PendingCreate) -> Event:
    """A create is about to be sent: remember its address, key and generation."""
    return {"op": "pending", "address": create.address, "pending": create.to_dict()}


def abandon(address: str) -> Event:
    """DingTalk certainly refused the pending create of ``address``: drop it."""
    return {"op": "abandon", "address": address}


def record(kept: StateRecord) -> Event:
    """A record now stands for its address (its pending create, if any, is resolved)."""
    return {"op": "record", "address": kept.address, "record": kept.to_dict()}


def retire(old: StateRecord) -> Event:
    """``old`` is replaced: keep it in ``retiring`` until it has been completed."""
    return {"op": "retire", "record_id": old.record_id, "record": old.to_dict()}


def retired(record_id: str) -> Event:
    """A retiring record has been completed (or deleted) remotely: no more work."""
    return {"op": "retired", "record_id": record_id}


def forget(address: str) -> Event:
    """Stop managing the record of ``address`` (its generation is kept)."""
    return {"op": "forget", "address": address}


def remote(where: Remote) -> Event:
    """The state's records live in ``where`` from now on."""
    return {"op": "remote", "remote": where.to_dict()}


def union_ids(learnt: Mapping[str, str]) -> Event:
    """userids resolved to unionIds (v1.0), kept for the life of the state."""
    return {"op": "union_ids", "union_ids": dict(learnt)}


def apply_event(state: State, event: Mapping[str, Any]) -> None:
    """Apply one event to ``state`` in memory.

    Every event is idempotent as part of its journal: replaying a whole journal over a
    state that already holds it changes nothing.
    """
    op = event["op"]
    if op == "pending":
        create = PendingCreate.from_dict(event["pending"])
        state.pending[event["address"]] = create
        _raise_generation(state, event["address"], create.generation)
    elif op == "abandon":
        state.pending.pop(event["address"], None)
    elif op == "record":
        kept = StateRecord.from_dict(event["record"])
        state.records[event["address"]] = kept
        # Only the record that an interrupted create became settles it: a status change of
        # the record it replaces must leave the pending create alone.
        waiting = state.pending.get(event["address"])
        if waiting is not None and waiting.biz_id == kept.biz_id:
            del state.pending[event["address"]]
        _raise_generation(state, event["address"], kept.generation)
    elif op == "retire":
        old = StateRecord.from_dict(event["record"])
        state.retiring[event["record_id"]] = old
        # Only the record being retired leaves `records`: on replay the address may already
        # hold its successor, which must stay.
        current = state.records.get(old.address)
        if current is not None and current.record_id == event["record_id"]:
            del state.records[old.address]
    elif op == "retired":
        state.retiring.pop(event["record_id"], None)
    elif op == "forget":
        state.records.pop(event["address"], None)
    elif op == "generation":
        _raise_generation(state, event["address"], int(event["value"]))
    elif op == "remote":
        state.remote = Remote.from_dict(event["remote"])
    elif op == "union_ids":
        state.union_ids.update(event["union_ids"])
    else:
        raise ValueError(f"unknown journal event {op!r}")


def check(event: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for an event that would make every later load fail."""
    op = event.get("op")
    if op not in OPS or op == "begin":
        raise ValueError(f"not a journal event: {op!r}")
    apply_event(State(lineage="check"), event)  # tried on a scratch state


def _raise_generation(state: State, address: str, generation: int) -> None:
    # DingTalk refuses a key it has seen once, so the highest generation never goes down.
    state.generations[address] = max(state.generations.get(address, -1), generation)
