"""`dingsync apply`: plan, confirm, create and complete, record, then check drift."""

from __future__ import annotations

import sys
from datetime import datetime
from datetime import timezone

import click

from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.errors import PlanError
from dingsync.options import api_options
from dingsync.options import file_options
from dingsync.options import load_tasks
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
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@click.option("-y", "--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Changes carried out at once.",
)
@click.option("--no-refresh", is_flag=True, help="Skip the drift check after applying.")
@click.option(
    "--force", is_flag=True, help="Apply even when the plan exceeds the safety threshold."
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
    parallelism: int,
    no_refresh: bool,
    force: bool,
    lookup: str,
) -> int:
    """Plan (or take PLANFILE), confirm, create and complete to-dos, then check drift."""
    from dingsync.applier import Applier
    from dingsync.ledger import Ledger
    from dingsync.lock import StateLock
    from dingsync.planner import china_day
    from dingsync.planner import make_plan
    from dingsync.recovery import look_up_pending
    from dingsync.render import apply_document
    from dingsync.render import apply_summary
    from dingsync.render import calls_text
    from dingsync.render import drift_markdown
    from dingsync.render import drift_text
    from dingsync.render import plan_document
    from dingsync.render import plan_markdown
    from dingsync.render import plan_text
    from dingsync.state import StateStore
    from dingsync.workflow import check_saved_plan
    from dingsync.workflow import check_within_saved
    from dingsync.workflow import read_plan_file
    from dingsync.workflow import refresh_and_judge

    require_credentials(sandbox)
    if not auto_approve and not sys.stdin.isatty():
        raise DingsyncError(
            "apply needs -y/--auto-approve when it cannot ask (no terminal); nothing was done"
        )
    saved = read_plan_file(planfile) if planfile else None
    tf = load_tasks(task_file)
    path = state_path_for(task_file, state_path, sandbox)
    reporter = TerminalReporter(quiet=as_json)
    with StateLock(path, command="apply", timeout=lock_timeout):
        store = StateStore(path)
        state = store.load()
        if saved is not None:
            lineage = state.lineage if store.exists() else None
            check_saved_plan(saved, tf, lineage, state.serial)
        with (
            open_backend(endpoint, sandbox, task_file, max_qps, verbose, parallelism) as backend,
            Ledger(state, store) as ledger,
        ):
            look_up_pending(ledger, backend, reporter)
            the_plan = make_plan(tf, ledger.state, china_day(datetime.now(timezone.utc)))
            # The state as planned against, for the JSON document printed at the end.
            planned = (ledger.state.lineage if store.exists() else None, ledger.state.serial)
            if saved is not None:
                check_within_saved(the_plan, saved)
            unsafe = the_plan.unsafe_reason()
            if unsafe and not force:
                raise PlanError(f"refusing to apply: {unsafe}")
            if not as_json:
                out(plan_text(the_plan, style))
            if the_plan.has_changes and not auto_approve:
                if not click.confirm("Apply these changes?", default=False, err=True):
                    err("Nothing was applied.")
                    return ExitCode.ERROR
            applier = Applier(ledger, backend, reporter, parallelism=parallelism)
            result = applier.apply(the_plan)
            report = None
            fell_back = False
            if not no_refresh and result.fatal is None:
                report, fell_back = refresh_and_judge(ledger, backend, reporter, lookup)
            counts = dict(backend.call_counts)
    if as_json:
        plan_doc = plan_document(the_plan, tf, str(path), *planned)
        state_doc = {"path": str(path), "serial": ledger.state.serial}
        out_json(apply_document(plan_doc, result, report, lookup, fell_back, counts, state_doc))
    else:
        out("")
        out(style(apply_summary(result), bold=True, fg="green" if result.ok else "red"))
        if result.fatal:
            err(style(f"Error: stopped: {redact(result.fatal)}", fg="red"))
        if report is not None:
            out(drift_text(report, style))
        out(calls_text(counts))
    append_step_summary(
        lambda: plan_markdown(the_plan, tf) + ("\n" + drift_markdown(report) if report else "")
    )
    return ExitCode.OK if result.ok else ExitCode.ERROR
