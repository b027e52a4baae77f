"""`dingsync import`: adopt an existing DingTalk record for an address of the file."""

from __future__ import annotations

import click

from dingsync.errors import ExitCode
from dingsync.options import Connection
from dingsync.options import api_options
from dingsync.options import file_options
from dingsync.options import load_tasks
from dingsync.options import require_credentials
from dingsync.options import state_path_for
from dingsync.terminal import out
from dingsync.terminal import out_json


@click.command("import")
@file_options
@api_options
@click.argument("address")
@click.argument("record_id")
@click.option(
    "--force", is_flag=True, help="Import even though the state belongs to another endpoint or app."
)
def import_(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    endpoint: str,
    sandbox: bool,
    max_qps: float,
    lock_timeout: float,
    address: str,
    record_id: str,
    force: bool,
) -> int:
    """Adopt the existing DingTalk record RECORD_ID as ADDRESS (KEY@USERID) of the file."""
    from dingsync.session import open_session
    from dingsync.workflow import import_record

    require_credentials(sandbox)
    tf = load_tasks(task_file)
    path = state_path_for(task_file, state_path, sandbox)
    connection = Connection(endpoint, sandbox, task_file, max_qps, verbose, api=tf.api)
    with open_session(path, "import", connection, lock_timeout=lock_timeout, force=force) as run:
        run.bind()
        record, differences = import_record(run.ledger, run.backend, tf, address, record_id)
    if as_json:
        from dingsync.render import import_document

        out_json(import_document(address, record.to_dict(), differences))
    else:
        out(f"Imported {record_id} as {address} ({record.status}).")
        for difference in differences:
            out(f"  differs: {difference}")
        if differences:
            out("The next plan replaces it with the file's content.")
    return ExitCode.OK
