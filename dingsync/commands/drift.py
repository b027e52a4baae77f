"""`dingsync drift`: look managed records up and report what changed on DingTalk."""

from __future__ import annotations

import click

from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.options import Connection
from dingsync.options import announce_new_state
from dingsync.options import api_options
from dingsync.options import file_options
from dingsync.options import format_option
from dingsync.options import lookup_option
from dingsync.options import output_format
from dingsync.options import require_credentials
from dingsync.options import state_path_for
from dingsync.state import StateStore
from dingsync.terminal import TerminalReporter
from dingsync.terminal import append_step_summary
from dingsync.terminal import err
from dingsync.terminal import out
from dingsync.terminal import out_json
from dingsync.terminal import redact
from dingsync.terminal import style


@click.command()
@file_options
@api_options
@format_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 without drift, 2 with drift.")
@click.option(
    "--force",
    is_flag=True,
    help="Record records as missing even when most look missing, or the state belongs to "
    "another endpoint or app.",
)
@lookup_option
def drift(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    endpoint: str,
    sandbox: bool,
    max_qps: float,
    lock_timeout: float,
    fmt: str | None,
    detailed_exitcode: bool,
    force: bool,
    lookup: str,
) -> int:
    """Look every managed record up on DingTalk and report drift; writes only observed status."""
    from dingsync.recovery import look_up_pending
    from dingsync.render import calls_text
    from dingsync.render import drift_markdown
    from dingsync.render import drift_run_document
    from dingsync.render import drift_text
    from dingsync.session import open_session
    from dingsync.workflow import refresh_and_judge

    fmt = output_format(fmt, as_json)
    require_credentials(sandbox)
    path = state_path_for(task_file, state_path, sandbox)
    reporter = TerminalReporter(quiet=as_json or fmt in ("json", "markdown"))
    connection = Connection(endpoint, sandbox, task_file, max_qps, verbose, api=None)
    store = StateStore(path)
    if not store.exists() and not store.journal_path.exists():
        announce_new_state(path)
        raise DingsyncError(
            f"nothing to check: no state at {path} (run from the folder the state was made "
            "in, or give --state PATH)"
        )
    with open_session(path, "drift", connection, lock_timeout=lock_timeout, force=force) as run:
        look_up_pending(run.ledger, run.backend, reporter)
        # What stays pending is settled (resumed or cancelled) by the next apply only:
        # drift never sends a create.
        unsettled = [
            f"{address}: an interrupted create was not found on DingTalk; "
            "the next apply resumes or cancels it"
            for address in sorted(run.ledger.state.pending)
        ]
        refreshed = refresh_and_judge(run.ledger, run.backend, reporter, lookup, force)
        counts = dict(run.backend.call_counts)
    report = refreshed.report
    if fmt == "json":
        unsettled_shown = [redact(u) for u in unsettled]
        out_json(
            drift_run_document(
                report, lookup, refreshed.fell_back, unsettled_shown, refreshed.refusal, counts
            )
        )
    elif fmt == "markdown":
        out(drift_markdown(report))
    else:
        out(drift_text(report, style))
        out(calls_text(counts))
    append_step_summary(lambda: drift_markdown(report))
    for note in unsettled:
        err(f"Note: {note}")
    if refreshed.refusal:
        err(style("Error: ", fg="red") + f"{refreshed.refusal}; nothing was marked missing")
        return ExitCode.ERROR
    if detailed_exitcode and report.items:
        return ExitCode.CHANGES
    return ExitCode.OK
