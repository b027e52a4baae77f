"""`dingsync validate`: schema and semantic checks of the task file, offline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click

from dingsync.errors import ConfigError
from dingsync.errors import ExitCode
from dingsync.options import file_options
from dingsync.options import load_tasks
from dingsync.terminal import out
from dingsync.terminal import out_json
from dingsync.wording import counted

if TYPE_CHECKING:
    from dingsync.model import State


@click.command()
@file_options
def validate(task_file: str, state_path: str | None, as_json: bool, verbose: bool) -> int:
    """Check the task file against the schema and DingTalk's rules; no network.

    With --state, the state file is read and checked as well (its format, its journal).
    """
    loaded = check_state(state_path) if state_path else None
    state = loaded[1] if loaded else None
    try:
        tf = load_tasks(task_file)
    except ConfigError as exc:
        if as_json:
            from dingsync.render import problems_document

            out_json(problems_document(task_file, exc.problems))
            return ExitCode.ERROR
        raise
    if loaded is not None:
        from dingsync.session import check_api

        check_api(Path(loaded[1]["path"]), loaded[0], tf.api)
    if as_json:
        from dingsync.render import validate_document

        out_json(validate_document(task_file, len(tf.records), state))
    else:
        tasks = len({r.key for r in tf.records})
        records = len(tf.records)
        out(f"{task_file}: valid ({counted(tasks, 'task')}, {counted(records, 'record')})")
        if state is not None:
            out(
                f"{state['path']}: readable ({counted(state['records'], 'record')}, serial "
                f"{state['serial']})"
            )
    return ExitCode.OK


def check_state(path: str) -> tuple[State, dict[str, Any]]:
    """Read the state file as apply would; a damaged one raises StateError (exit 1).

    Returns the state and what validate reports of it."""
    from dingsync.state import StateStore

    store = StateStore(path)
    state = store.load()
    if not store.found:
        from dingsync.errors import StateError

        raise StateError(f"no state at {path}")
    return state, {"path": path, "records": len(state.records), "serial": state.serial}
