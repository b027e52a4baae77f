"""`dingsync drift`: look managed records up and report what changed on DingTalk."""

from __future__ import annotations

import click

from dingsync.errors import ExitCode
from dingsync.options import api_options
from dingsync.options import file_options
from dingsync.options import format_option
from dingsync.options import lookup_option
from dingsync.options import open_backend
from dingsync.options import require_credentials
from dingsync.options import state_path_for
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
    lookup: str,
) -> int:
    """Look every managed record up on DingTalk and report drift; writes only observed status."""
    from dingsync.ledger import Ledger
    from dingsync.lock import StateLock
    from dingsync.recovery import look_up_pending
    from dingsync.render import calls_text
    from dingsync.render import drift_document
    from dingsync.render import drift_markdown
    from dingsync.render import drift_text
    from dingsync.state import StateStore
    from dingsync.workflow import refresh_and_judge

    require_credentials(sandbox)
    path = state_path_for(task_file, state_path, sandbox)
    reporter = TerminalReporter(quiet=as_json or fmt in ("json", "markdown"))
    with StateLock(path, command="drift", timeout=lock_timeout):
        store = StateStore(path)
        state = store.load()
        with (
            open_backend(endpoint, sandbox, task_file, max_qps, verbose) as backend,
            Ledger(state, store) as ledger,
        ):
            look_up_pending(ledger, backend, reporter)
            # What stays pending is settled (resumed or cancelled) by the next apply only:
            # drift never sends a create.
            unsettled = [
                f"{address}: an interrupted create was not found on DingTalk; "
                "the next apply resumes or cancels it"
                for address in sorted(ledger.state.pending)
            ]
            report, fell_back = refresh_and_judge(ledger, backend, reporter, lookup)
            counts = dict(backend.call_counts)
    fmt = fmt or ("json" if as_json else "text")
    if fmt == "json":
        doc = {
            "format_version": 1,
            "kind": "drift",
            **drift_document(report),
            "lookup": lookup,
            "lookup_fell_back": fell_back,
            "unsettled": [redact(u) for u in unsettled],
            "api_calls": {"total": sum(counts.values()), "by_api": counts},
        }
        out_json(doc)
    elif fmt == "markdown":
        out(drift_markdown(report))
    else:
        out(drift_text(report, style))
        out(calls_text(counts))
    append_step_summary(lambda: drift_markdown(report))
    for note in unsettled:
        err(f"Note: {note}")
    if detailed_exitcode and report.items:
        return ExitCode.CHANGES
    return ExitCode.OK
