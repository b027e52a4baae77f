"""`dingsync force-unlock`: show the lock's holder and remove the lock."""

from __future__ import annotations

import sys

import click

from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.options import file_options
from dingsync.options import sandbox_state_option
from dingsync.options import state_path_for
from dingsync.terminal import err
from dingsync.terminal import out
from dingsync.terminal import out_json


@click.command("force-unlock")
@file_options
@sandbox_state_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--force",
    is_flag=True,
    help="Remove the lock even though its holder is still running on this host.",
)
def force_unlock(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    sandbox: bool,
    yes: bool,
    force: bool,
) -> int:
    """Show who holds the state lock and remove it (when that process is gone)."""
    from dingsync.lock import StateLock

    path = state_path_for(task_file, state_path, sandbox)
    info = StateLock.read(path)
    if info is None:
        raise DingsyncError(f"{path} is not locked")
    stale = " (the process is gone)" if StateLock.is_stale(info) else ""
    err(f"Lock held by {StateLock.describe(info)}{stale}.")
    if StateLock.is_alive(info) and not force:
        # Two runs writing one state lose each other's records: the next apply would
        # create those to-dos again.
        raise DingsyncError(
            f"the holder of the lock of {path} is still running (pid {info.get('pid')}); "
            "wait for it, stop it, or pass --force if you are sure it no longer writes "
            "the state"
        )
    if not yes:
        if not sys.stdin.isatty():
            raise DingsyncError("force-unlock needs -y when it cannot ask (no terminal)")
        if not click.confirm("Remove the lock?", default=False, err=True):
            return ExitCode.ERROR
    StateLock.force_remove(path)
    if as_json:
        from dingsync.render import unlock_document

        out_json(unlock_document(str(path), info))
    else:
        out(f"Removed the lock of {path}.")
    return ExitCode.OK
