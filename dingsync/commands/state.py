"""`dingsync state list|show|rm`: inspect the state file, or forget records in it."""

from __future__ import annotations

import json

import click

from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.options import file_options
from dingsync.options import lock_timeout_option
from dingsync.options import sandbox_state_option
from dingsync.options import state_path_for
from dingsync.render import document
from dingsync.terminal import out
from dingsync.terminal import out_json


@click.group()
def state() -> None:
    """Inspect the state file, or forget records in it."""


@state.command("list")
@file_options
@sandbox_state_option
def state_list(
    task_file: str, state_path: str | None, as_json: bool, verbose: bool, sandbox: bool
) -> int:
    """List managed addresses, one a line."""
    from dingsync.state import StateStore

    st = StateStore(state_path_for(task_file, state_path, sandbox)).load()
    if as_json:
        out_json(document("state-list", addresses=sorted(st.records)))
    else:
        for address in sorted(st.records):
            out(address)
    return ExitCode.OK


@state.command("show")
@file_options
@click.argument("address")
@sandbox_state_option
def state_show(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    address: str,
    sandbox: bool,
) -> int:
    """Show one managed record."""
    from dingsync.state import StateStore

    st = StateStore(state_path_for(task_file, state_path, sandbox)).load()
    record = st.records.get(address)
    if record is None:
        raise DingsyncError(f"{address} is not in the state")
    data = record.to_dict()
    if as_json:
        out_json(document("state-show", address=address, record=data))
    else:
        out(address)
        shown = dict(data)
        if st.remote is not None and st.remote.api == "todo":
            # The state keeps either API's key as biz_id; a v1.0 user knows it as sourceId.
            shown["source_id"] = shown.pop("biz_id", "")
        width = max(len(k) for k in shown)
        for name in sorted(shown):
            value = shown[name]
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            out(f"  {name:<{width}}  {text}")
    return ExitCode.OK


@state.command("rm")
@file_options
@click.argument("address")
@sandbox_state_option
@lock_timeout_option
def state_rm(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    address: str,
    sandbox: bool,
    lock_timeout: float,
) -> int:
    """Forget ADDRESS: dingsync stops managing it; the DingTalk record is left alone."""
    from dingsync.ledger import Ledger
    from dingsync.lock import StateLock
    from dingsync.state import StateStore

    path = state_path_for(task_file, state_path, sandbox)
    with StateLock(path, command="state rm", timeout=lock_timeout):
        store = StateStore(path)
        with Ledger(store.load(), store) as ledger:
            record = ledger.forget(address)
    if record is None:
        raise DingsyncError(f"{address} is not in the state")
    if as_json:
        out_json(document("state-rm", address=address, record=record.to_dict()))
    else:
        out(f"Removed {address} (record {record.record_id}) from the state.")
    return ExitCode.OK
