"""`dingsync plan`: what apply would do; offline, no credentials."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone
from pathlib import Path

import click

from dingsync.errors import ExitCode
from dingsync.options import file_options
from dingsync.options import format_option
from dingsync.options import load_tasks
from dingsync.options import sandbox_state_option
from dingsync.options import state_path_for
from dingsync.terminal import append_step_summary
from dingsync.terminal import err
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
def plan(
    task_file: str,
    state_path: str | None,
    as_json: bool,
    verbose: bool,
    fmt: str | None,
    out_path: str | None,
    detailed_exitcode: bool,
    sandbox: bool,
) -> int:
    """Show what apply would do; offline: needs no credentials and no network."""
    from dingsync.planner import china_day
    from dingsync.planner import make_plan
    from dingsync.render import plan_document
    from dingsync.render import plan_markdown
    from dingsync.render import plan_text
    from dingsync.render import to_json
    from dingsync.state import StateStore

    tf = load_tasks(task_file)
    path = state_path_for(task_file, state_path, sandbox)
    store = StateStore(path)
    state = store.load()
    the_plan = make_plan(tf, state, china_day(datetime.now(timezone.utc)))
    fmt = fmt or ("json" if as_json else "text")
    if out_path or fmt == "json":
        # A state that does not exist yet has no lineage: its first apply will create one.
        lineage = state.lineage if store.exists() else None
        document = plan_document(the_plan, tf, str(path), lineage, state.serial)
        if out_path:
            Path(out_path).write_text(to_json(document) + "\n", encoding="utf-8")
        if fmt == "json":
            out_json(document)
    elif fmt == "markdown":
        out(plan_markdown(the_plan, tf))
    else:
        out(plan_text(the_plan, style))
        if the_plan.unsafe_reason():
            err(f"Warning: apply will refuse this plan without --force: {the_plan.unsafe_reason()}")
        if out_path:
            out(f"Saved the plan to {out_path}; apply it with: dingsync apply {out_path}")
    append_step_summary(lambda: plan_markdown(the_plan, tf))
    if detailed_exitcode and the_plan.has_changes:
        return ExitCode.CHANGES
    return ExitCode.OK
