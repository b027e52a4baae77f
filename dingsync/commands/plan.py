"""`dingsync plan`: what apply would do; offline, no credentials."""

from __future__ import annotations

from pathlib import Path

import click

from dingsync.endpoint import DEFAULT_ENDPOINT
from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.options import DEFAULT_QPS
from dingsync.options import Connection
from dingsync.options import announce_new_state
from dingsync.options import file_options
from dingsync.options import format_option
from dingsync.options import load_tasks
from dingsync.options import lookup_option
from dingsync.options import output_format
from dingsync.options import require_credentials
from dingsync.options import sandbox_state_option
from dingsync.options import state_path_for
from dingsync.terminal import append_step_summary
from dingsync.terminal import out
from dingsync.terminal import out_json
from dingsync.terminal import style


@click.command()
@file_options
@format_option
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Save the plan for apply.")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are."
)
@sandbox_state_option
@click.option(
    "--refresh",
    is_flag=True,
    help="Look the records up on DingTalk first, as apply does (needs credentials); "
    "writes nothing.",
)
@click.option(
    "--endpoint",
    envvar="DINGSYNC_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="With --refresh: DingTalk API base URL (env DINGSYNC_ENDPOINT).",
)
@lookup_option
def plan(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    fmt: str | None,
    out_path: str | None,
    detailed_exitcode: bool,
    sandbox: bool,
    refresh: bool,
    endpoint: str,
    lookup: str,
) -> int:
    """Show what apply would do; offline (no credentials, no network) unless --refresh."""
    from dingsync.chinatime import today as china_today
    from dingsync.planner import make_plan
    from dingsync.render import calls_text
    from dingsync.render import drift_markdown
    from dingsync.render import drift_text
    from dingsync.render import plan_document
    from dingsync.render import plan_markdown
    from dingsync.render import plan_text
    from dingsync.render import to_json
    from dingsync.state import StateStore

    fmt = output_format(fmt, as_json)
    if refresh:
        require_credentials(sandbox)
    tf = load_tasks(task_file)
    path = state_path_for(task_file, state_path, sandbox)
    store = StateStore(path)
    state = store.load()
    existed = store.found
    if not existed:
        announce_new_state(path)
    from dingsync.session import check_api

    check_api(path, state, tf.api)
    report = None
    counts: dict[str, int] | None = None
    if refresh:
        from dingsync.session import check_remote
        from dingsync.terminal import TerminalReporter
        from dingsync.workflow import plan_with_refresh

        connection = Connection(endpoint, sandbox, task_file, DEFAULT_QPS, verbose, api=tf.api)
        check_remote(path, state, existed, connection.remote(), force=False)
        reporter = TerminalReporter(quiet=fmt != "text")
        with connection.open() as backend:
            the_plan, refreshed = plan_with_refresh(tf, state, backend, reporter, lookup)
            counts = dict(backend.call_counts)
        report = refreshed.report
        if refreshed.refusal:
            the_plan = the_plan._replace(notes=(*the_plan.notes, refreshed.refusal))
    else:
        the_plan = make_plan(tf, state, china_today())
    if out_path or fmt == "json":
        # A state that does not exist yet has no lineage: its first apply will create one.
        lineage = state.lineage if existed else None
        document = plan_document(the_plan, tf, str(path), lineage, state.serial, counts)
        if out_path:
            save_plan(Path(out_path), to_json(document) + "\n")
        if fmt == "json":
            out_json(document)
    elif fmt == "markdown":
        out(plan_markdown(the_plan, tf) + ("\n" + drift_markdown(report) if report else ""))
    else:
        if report is not None:
            out(drift_text(report, style) + "\n")
        out(plan_text(the_plan, style))
        if counts is not None:
            out(calls_text(counts))
        if out_path:
            out(f"Saved the plan to {out_path}; apply it with: dingsync apply {out_path}")
    append_step_summary(lambda: plan_markdown(the_plan, tf))
    if detailed_exitcode and the_plan.has_changes:
        return ExitCode.CHANGES
    return ExitCode.OK


def save_plan(path: Path, text: str) -> None:
    """Write the saved plan; a folder that is missing or not writable is the user's to fix."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DingsyncError(f"cannot save the plan to {path}: {exc.strerror}") from None
