"""`dingsync apply`: refresh, plan, confirm, then create and complete, recording each result."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.options import Connection
from dingsync.options import announce_new_state
from dingsync.options import api_options
from dingsync.options import file_options
from dingsync.options import load_tasks
from dingsync.options import lookup_option
from dingsync.options import parallelism_for
from dingsync.options import require_credentials
from dingsync.options import state_path_for
from dingsync.terminal import TerminalReporter
from dingsync.terminal import append_step_summary
from dingsync.terminal import err
from dingsync.terminal import out
from dingsync.terminal import out_json
from dingsync.terminal import redact
from dingsync.terminal import style

if TYPE_CHECKING:
    from dingsync.drift import DriftReport
    from dingsync.planner import Plan


@click.command()
@file_options
@api_options
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@click.option("-y", "--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=None,
    help="Changes carried out at once. Default: enough to keep two APIs at --max-qps "
    "at 200 ms a call, max-qps x 0.4 (8 at 20/s, 40 at 100/s; 8 with no limit).",
)
@click.option(
    "--no-refresh",
    is_flag=True,
    help="Do not look the records up on DingTalk first (fewer calls; a to-do an assignee "
    "completed may then be replaced or reassigned).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Apply even when the plan exceeds the safety threshold, most records look "
    "missing, or the state belongs to another endpoint or app.",
)
@lookup_option
def apply(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    endpoint: str,
    sandbox: bool,
    max_qps: float,
    lock_timeout: float,
    planfile: str | None,
    auto_approve: bool,
    parallelism: int | None,
    no_refresh: bool,
    force: bool,
    lookup: str,
) -> int:
    """Refresh, plan (or take PLANFILE), confirm, then create, update and complete to-dos."""
    from dingsync.render import apply_document
    from dingsync.render import apply_markdown
    from dingsync.render import apply_summary
    from dingsync.render import calls_text
    from dingsync.render import plan_document
    from dingsync.session import open_session
    from dingsync.workflow import ApplySettings
    from dingsync.workflow import check_saved_plan
    from dingsync.workflow import files_of_saved_plan
    from dingsync.workflow import read_plan_file
    from dingsync.workflow import run_apply

    require_credentials(sandbox)
    if not auto_approve and not sys.stdin.isatty():
        raise DingsyncError(
            "apply needs -y/--auto-approve when it cannot ask (no terminal); nothing was done"
        )
    saved = read_plan_file(planfile) if planfile else None
    if saved is not None:
        task_file, state_path = files_of_saved_plan(saved, planfile or "", task_file, state_path)
    tf = load_tasks(task_file)
    if parallelism is None:
        parallelism = parallelism_for(max_qps)
    path = state_path_for(task_file, state_path, sandbox)
    reporter = TerminalReporter(quiet=as_json)
    view = TerminalApplyView(quiet=as_json)
    connection = Connection(endpoint, sandbox, task_file, max_qps, verbose, parallelism, tf.api)
    settings = ApplySettings(
        refresh=not no_refresh,
        force=force,
        parallelism=parallelism,
        lookup=lookup,
        auto_approve=auto_approve,
    )
    with open_session(path, "apply", connection, lock_timeout=lock_timeout, force=force) as run:
        if not run.existed:
            announce_new_state(path)
        if saved is not None:
            lineage = run.ledger.state.lineage if run.existed else None
            check_saved_plan(saved, tf, lineage, run.ledger.state.serial)
        outcome = run_apply(run, tf, view, reporter, settings, saved)
        counts = dict(run.backend.call_counts)
    if not outcome.approved:
        err("Nothing was applied.")
        return ExitCode.ERROR
    serial = run.ledger.state.serial  # final: the session folded the journal on closing
    result, refreshed = outcome.result, outcome.refresh
    report = refreshed.report if refreshed else None
    fell_back = refreshed.fell_back if refreshed else False
    if as_json:
        plan_doc = plan_document(outcome.plan, tf, str(path), *outcome.planned)
        state_doc = {"path": str(path), "serial": serial}
        out_json(apply_document(plan_doc, result, report, lookup, fell_back, counts, state_doc))
    else:
        out("")
        out(style(apply_summary(result), bold=True, fg="green" if result.ok else "red"))
        if result.fatal:
            err(style(f"Error: stopped: {redact(result.fatal)}", fg="red"))
        out(calls_text(counts))
    append_step_summary(lambda: apply_markdown(outcome.plan, tf, result, report))
    return ExitCode.OK if result.ok else ExitCode.ERROR


class TerminalApplyView:
    """What apply shows on the terminal on its way (nothing under --json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def show_drift(self, report: DriftReport) -> None:
        from dingsync.render import drift_text

        if not self.quiet and report.checked:  # a new state has nothing to look up
            out(drift_text(report, style))
            out("")

    def show_plan(self, plan: Plan) -> None:
        from dingsync.render import plan_text

        if not self.quiet:
            out(plan_text(plan, style))

    def note(self, text: str) -> None:
        if not self.quiet:
            err(f"Note: {redact(text)}")

    def confirm(self) -> bool:
        return click.confirm("Apply these changes?", default=False, err=True)
