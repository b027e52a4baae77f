"""The ``dingsync`` command line: thin adapters that parse options, call the core, print.

Heavy imports (requests, deepdiff, the emulator) happen inside the commands that need
them, so ``dingsync validate`` starts fast in pre-commit hooks and CI steps.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

import click

from dingsync import __version__
from dingsync.errors import ConfigError
from dingsync.errors import CredentialsError
from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.errors import PlanError
from dingsync.progress import ProgressBar
from dingsync.reporter import Reporter

if TYPE_CHECKING:
    from dingsync.backend import Backend
    from dingsync.model import TaskFile

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ENDPOINT = "https://oapi.dingtalk.com"
SANDBOX_KEY = "dingsync-sandbox-key"
SANDBOX_SECRET = "dingsync-sandbox-secret"


# ---------------------------------------------------------------- terminal output


def use_color(stream: Any = None) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def style(text: str, **kwargs: Any) -> str:
    return click.style(text, **kwargs) if use_color() else text


def out(text: str) -> None:
    click.echo(text, color=use_color())


def err(text: str) -> None:
    click.echo(text, err=True, color=use_color(sys.stderr))


def out_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout: indented for a person at a terminal, compact otherwise.

    Compact output goes through the C encoder, which matters for plans of 100,000 records.
    """
    pretty = sys.stdout.isatty()
    out(
        json.dumps(
            document,
            ensure_ascii=False,
            sort_keys=True,
            indent=2 if pretty else None,
            separators=None if pretty else (",", ":"),
        )
    )


def redact(text: str) -> str:
    secret = os.environ.get("DINGTALK_APP_SECRET")
    if secret:
        text = text.replace(secret, "***")
    return text


def append_step_summary(markdown: Callable[[], str]) -> None:
    """On GitHub Actions, the markdown also lands on the run's summary page.

    Takes a function, so that the markdown of a large plan is only built when wanted.
    """
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown() + "\n")


# ---------------------------------------------------------------- shared options


def file_options(func: F) -> F:
    func = click.option(
        "-f",
        "--file",
        "task_file",
        default="tasks.yaml",
        show_default=True,
        type=click.Path(dir_okay=False),
        help="The task file.",
    )(func)
    func = click.option(
        "--state",
        "state_path",
        default=None,
        help="State file [default: state/<task-file-stem>.state.json].",
    )(func)
    func = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")(
        func
    )
    func = click.option("-v", "--verbose", is_flag=True, help="Log HTTP calls (token redacted).")(
        func
    )
    return func


def api_options(func: F) -> F:
    func = click.option(
        "--endpoint",
        envvar="DINGSYNC_ENDPOINT",
        default=DEFAULT_ENDPOINT,
        show_default=True,
        help="DingTalk API base URL (env DINGSYNC_ENDPOINT); http only for loopback.",
    )(func)
    func = click.option(
        "--sandbox",
        is_flag=True,
        help="Run against the built-in emulator on 127.0.0.1 with dummy credentials; "
        "state goes to state/<stem>.sandbox.state.json.",
    )(func)
    func = click.option(
        "--max-qps",
        type=click.FloatRange(min=0),
        default=20.0,
        show_default=True,
        help="Client-side calls per second per API (0: no limit); slows down on rate limits.",
    )(func)
    func = click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=0.0,
        help="Wait this many seconds for the state lock instead of failing at once.",
    )(func)
    return func


def state_path_for(task_file: str, state_path: str | None, sandbox: bool = False) -> Path:
    from dingsync.state import default_state_path

    return Path(state_path) if state_path else default_state_path(task_file, sandbox)


def load_tasks(task_file: str) -> TaskFile:
    from dingsync.loader import load_task_file

    return load_task_file(task_file)


# ---------------------------------------------------------------- backends


@contextmanager
def open_backend(
    endpoint: str,
    sandbox: bool,
    task_file: str,
    max_qps: float,
    verbose: bool,
    pool_size: int = 8,
) -> Iterator[Backend]:
    """A DingTalk client: the real endpoint with env credentials, or a sandbox emulator."""
    from dingsync.client import DingTalkClient
    from dingsync.client import check_endpoint

    log = (lambda line: err(redact(line))) if verbose else None
    if sandbox:
        from dingsync.emulator import Emulator
        from dingsync.emulator import EmulatorConfig

        data = Path("state") / f"{Path(task_file).stem}.sandbox.emulator.json"
        config = EmulatorConfig(apps={SANDBOX_KEY: SANDBOX_SECRET}, data_path=data)
        with Emulator(config) as emulator:
            client = DingTalkClient(
                emulator.url,
                SANDBOX_KEY,
                SANDBOX_SECRET,
                max_qps=max_qps,
                log=log,
                pool_size=pool_size,
            )
            try:
                yield client
            finally:
                client.close()
        return
    key, secret = credentials()
    client = DingTalkClient(
        check_endpoint(endpoint), key, secret, max_qps=max_qps, log=log, pool_size=pool_size
    )
    try:
        yield client
    finally:
        client.close()


def credentials() -> tuple[str, str]:
    """The app key and secret, from the environment only (SPEC: never a flag or a file)."""
    key = os.environ.get("DINGTALK_APP_KEY", "")
    secret = os.environ.get("DINGTALK_APP_SECRET", "")
    missing = [n for n, v in (("DINGTALK_APP_KEY", key), ("DINGTALK_APP_SECRET", secret)) if not v]
    if missing:
        raise CredentialsError(
            f"{' and '.join(missing)} not set; export the app's credentials "
            "(or use --sandbox to try dingsync against the built-in emulator)"
        )
    return key, secret


def require_credentials(sandbox: bool) -> None:
    """Fail before any work when credentials are missing."""
    if not sandbox:
        credentials()


# ---------------------------------------------------------------- reporter


class TerminalReporter(Reporter):
    """Reports to stderr (so --json stays clean): a progress bar on a terminal, else lines.

    On a terminal each change is not printed (thousands would scroll away): the bar
    counts them and only failures and notes are printed above it. In CI logs, where there
    is no bar, every change gets its line.
    """

    SYMBOLS = {"create": "+", "replace": "-/+", "complete": "✓"}
    LABELS = {"apply": "Applying  ", "refresh": "Refreshing"}

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = not quiet and sys.stderr.isatty()
        self._bar: ProgressBar | None = None

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write_line(text)
        else:
            err(text)

    def resolved(self, address: str, outcome: str) -> None:
        self._line(f"  ~ {address}: interrupted create {outcome}")

    def started(self, total: int, what: str) -> None:
        if self.tty and total:
            self._bar = ProgressBar(sys.stderr, total, self.LABELS.get(what, what))
        elif what == "refresh" and total:
            self._line(f"Refreshing {total} records…")

    def advanced(self, what: str) -> None:
        if self._bar is not None:
            self._bar.advance()

    def succeeded(self, action: str, address: str, detail: str) -> None:
        if not self.tty:
            verb = {"create": "created", "replace": "replaced", "complete": "completed"}[action]
            self._line(f"  {self.SYMBOLS[action]} {address}: {verb} ({detail})")

    def failed(self, action: str, address: str, message: str) -> None:
        self._line(style(f"  ! {address}: {action} failed: {redact(message)}", fg="red"))

    def note(self, message: str) -> None:
        self._line(f"Note: {message}")

    def finished(self, what: str) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ---------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dingsync")
def cli() -> None:
    """dingsync keeps DingTalk to-dos (待办) in line with a YAML file kept in git.

    validate and plan work offline; apply and drift call DingTalk with the app
    credentials from DINGTALK_APP_KEY and DINGTALK_APP_SECRET.
    """


@cli.command()
@file_options
def validate(task_file: str, state_path: str | None, as_json: bool, verbose: bool) -> int:
    """Check the task file against the schema and DingTalk's rules; no network."""
    try:
        tf = load_tasks(task_file)
    except ConfigError as exc:
        if as_json:
            out_json(_problems_doc(task_file, exc))
            return ExitCode.ERROR
        raise
    if as_json:
        doc = {
            "format_version": 1,
            "kind": "validate",
            "valid": True,
            "file": task_file,
            "records": len(tf.records),
            "problems": [],
        }
        out_json(doc)
    else:
        tasks = len({r.key for r in tf.records})
        out(f"{task_file}: valid ({tasks} tasks, {len(tf.records)} records)")
    return ExitCode.OK


def _problems_doc(task_file: str, exc: ConfigError) -> dict[str, Any]:
    return {
        "format_version": 1,
        "kind": "validate",
        "valid": False,
        "file": task_file,
        "problems": [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": p.path,
                "message": p.message,
            }
            for p in exc.problems
        ],
    }


@cli.command()
@file_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default=None,
    help="Output format [default: text; json with --json].",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Save the plan for apply.")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are."
)
@click.option("--sandbox", is_flag=True, help="Plan against the sandbox state.")
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
    the_plan = make_plan(tf, state)
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


@cli.command()
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
@click.option(
    "--lookup",
    type=click.Choice(["list", "get"]),
    default="list",
    show_default=True,
    help="How the drift check finds records.",
)
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
    from dingsync.planner import make_plan
    from dingsync.recovery import look_up_pending
    from dingsync.render import calls_text
    from dingsync.render import drift_document
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
            the_plan = make_plan(tf, ledger.state)
            plan_doc = plan_document(
                the_plan,
                tf,
                str(path),
                ledger.state.lineage if store.exists() else None,
                ledger.state.serial,
            )
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
    failures = result.failed
    ok = result.ok
    if as_json:
        doc = {
            "format_version": 1,
            "kind": "apply",
            "ok": ok,
            "plan": plan_doc,
            "result": {
                "created": sorted(result.created),
                "replaced": sorted(result.replaced),
                "completed": sorted(result.completed),
                "failed": {k: redact(v) for k, v in sorted(failures.items())},
                "fatal": redact(result.fatal) if result.fatal else None,
            },
            "drift": drift_document(report) if report else None,
            "lookup": lookup,
            "lookup_fell_back": fell_back,
            "api_calls": {"total": sum(counts.values()), "by_api": counts},
            "state": {"path": str(path), "serial": ledger.state.serial},
        }
        out_json(doc)
    else:
        done = len(result.created) + len(result.replaced) + len(result.completed)
        line = (
            f"Apply complete: {len(result.created)} created, {len(result.replaced)} replaced, "
            f"{len(result.completed)} completed"
        )
        if failures:
            line += f", {len(failures)} failed"
        out("")
        out(
            style(line + ".", bold=True, fg="green" if ok else "red")
            if done or failures
            else "Nothing to apply."
        )
        if result.fatal:
            err(style(f"Error: stopped: {redact(result.fatal)}", fg="red"))
        if report is not None:
            out(drift_text(report, style))
        out(calls_text(counts))
    append_step_summary(
        lambda: plan_markdown(the_plan, tf) + ("\n" + drift_markdown(report) if report else "")
    )
    return ExitCode.OK if ok else ExitCode.ERROR


@cli.command()
@file_options
@api_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default=None,
    help="Output format [default: text; json with --json].",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 without drift, 2 with drift.")
@click.option(
    "--lookup",
    type=click.Choice(["list", "get"]),
    default="list",
    show_default=True,
    help="list: the documented getbyuserid call; get: workrecord/get where a gateway offers it.",
)
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


# ---------------------------------------------------------------- state commands


@cli.group()
def state() -> None:
    """Inspect the state file, or forget records in it."""


@state.command("list")
@file_options
@click.option("--sandbox", is_flag=True, help="Use the sandbox state.")
def state_list(
    task_file: str, state_path: str | None, as_json: bool, verbose: bool, sandbox: bool
) -> int:
    """List managed addresses, one a line."""
    from dingsync.state import StateStore

    st = StateStore(state_path_for(task_file, state_path, sandbox)).load()
    if as_json:
        out_json({"format_version": 1, "kind": "state-list", "addresses": sorted(st.records)})
    else:
        for address in sorted(st.records):
            out(address)
    return ExitCode.OK


@state.command("show")
@file_options
@click.argument("address")
@click.option("--sandbox", is_flag=True, help="Use the sandbox state.")
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
        out_json({"format_version": 1, "kind": "state-show", "address": address, "record": data})
    else:
        out(address)
        width = max(len(k) for k in data)
        for name in sorted(data):
            value = data[name]
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            out(f"  {name:<{width}}  {text}")
    return ExitCode.OK


@state.command("rm")
@file_options
@click.argument("address")
@click.option("--sandbox", is_flag=True, help="Use the sandbox state.")
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Wait this many seconds for the state lock instead of failing at once.",
)
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
    out(f"Removed {address} (record {record.record_id}) from the state.")
    return ExitCode.OK


@cli.command("import")
@file_options
@api_options
@click.argument("address")
@click.argument("record_id")
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
) -> int:
    """Adopt the existing DingTalk record RECORD_ID as ADDRESS (KEY@USERID) of the file."""
    from dingsync.ledger import Ledger
    from dingsync.lock import StateLock
    from dingsync.state import StateStore
    from dingsync.workflow import import_record

    require_credentials(sandbox)
    tf = load_tasks(task_file)
    path = state_path_for(task_file, state_path, sandbox)
    with StateLock(path, command="import", timeout=lock_timeout):
        store = StateStore(path)
        with (
            Ledger(store.load(), store) as ledger,
            open_backend(endpoint, sandbox, task_file, max_qps, verbose) as backend,
        ):
            record, differences = import_record(ledger, backend, tf, address, record_id)
    if as_json:
        out_json(
            {
                "format_version": 1,
                "kind": "import",
                "address": address,
                "record": record.to_dict(),
                "differences": differences,
            }
        )
    else:
        out(f"Imported {record_id} as {address} ({record.status}).")
        for difference in differences:
            out(f"  differs: {difference}")
        if differences:
            out("The next plan replaces it with the file's content.")
    return ExitCode.OK


@cli.command("force-unlock")
@file_options
@click.option("--sandbox", is_flag=True, help="Use the sandbox state.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def force_unlock(
    task_file: str, state_path: str | None, as_json: bool, verbose: bool, sandbox: bool, yes: bool
) -> int:
    """Show who holds the state lock and remove it (when that process is gone)."""
    from dingsync.lock import StateLock

    path = state_path_for(task_file, state_path, sandbox)
    info = StateLock.read(path)
    if info is None:
        raise DingsyncError(f"{path} is not locked")
    stale = " (the process is gone)" if StateLock.is_stale(info) else ""
    err(
        f"Lock held by pid {info.get('pid')} on {info.get('host')} "
        f"({info.get('command')}, since {info.get('created_at')}){stale}."
    )
    if not yes:
        if not sys.stdin.isatty():
            raise DingsyncError("force-unlock needs -y when it cannot ask (no terminal)")
        if not click.confirm("Remove the lock?", default=False, err=True):
            return ExitCode.ERROR
    StateLock.force_remove(path)
    out(f"Removed the lock of {path}.")
    return ExitCode.OK


@cli.command()
def schema() -> int:
    """Print the JSON Schema of the task file."""
    from dingsync.loader import load_schema

    out(json.dumps(load_schema(), ensure_ascii=False, indent=2))
    return ExitCode.OK


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port (0: any free one).")
@click.option("--data", type=click.Path(dir_okay=False), help="Persist records to this JSON file.")
@click.option("--qps", default=20.0, show_default=True, type=float, help="Per app and API; 0: off.")
@click.option(
    "--latency-ms", default=0, show_default=True, type=int, help="Added to every API answer."
)
@click.option(
    "--token-ttl", default=7200, show_default=True, type=int, help="Access token lifetime (s)."
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of workrecord calls that fail: HTTP 500, errcode -1, reset, lost answer.",
)
@click.option(
    "--fault-kinds",
    default="http500,errcode-1,reset,lost_ack",
    show_default=True,
    help="Comma-separated faults to draw from (also: ipblock, qps-global).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault draws.")
@click.option(
    "--serve-workrecord-get", is_flag=True, help="Answer topapi/workrecord/get (not in DingTalk)."
)
def emulator(
    host: str,
    port: int,
    data: str | None,
    qps: float,
    latency_ms: int,
    token_ttl: int,
    fault_rate: float,
    fault_kinds: str,
    seed: int,
    serve_workrecord_get: bool,
) -> int:
    """Run the DingTalk emulator as an HTTP server (for demos, tests and benchmarks).

    It accepts the app in DINGTALK_APP_KEY / DINGTALK_APP_SECRET when they are set, so
    that `dingsync apply --endpoint http://127.0.0.1:PORT` works with the same variables;
    otherwise the sandbox's dummy pair.
    """
    from dingsync.emulator import EmulatorConfig
    from dingsync.emulator import serve
    from dingsync.emulator.config import check_fault_settings

    kinds = tuple(k.strip() for k in fault_kinds.split(",") if k.strip())
    app_key = os.environ.get("DINGTALK_APP_KEY") or SANDBOX_KEY
    app_secret = os.environ.get("DINGTALK_APP_SECRET") or SANDBOX_SECRET
    try:
        check_fault_settings(fault_rate, kinds)
        config = EmulatorConfig(
            apps={app_key: app_secret},
            qps=qps,
            latency_ms=latency_ms,
            token_ttl=token_ttl,
            fault_rate=fault_rate,
            fault_kinds=kinds,
            seed=seed,
            serve_workrecord_get=serve_workrecord_get,
            data_path=data,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    serve(config, host, port)
    return ExitCode.OK


# ---------------------------------------------------------------- entry point


def _error_document(message: str, problems: list[dict[str, Any]]) -> None:
    """With --json, a failed command still prints one JSON document (schemas/error.schema.json)."""
    doc = {"format_version": 1, "kind": "error", "error": message, "problems": problems}
    out_json(doc)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every user-facing error becomes one line on stderr and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    wants_json = "--json" in args
    try:
        result = cli.main(args=args, prog_name="dingsync", standalone_mode=False)
    except ConfigError as exc:
        for problem in exc.problems:
            err(redact(str(problem)))
        if wants_json:
            doc = _problems_doc("", exc)
            _error_document(f"{len(exc.problems)} problems in the task file", doc["problems"])
        return ExitCode.ERROR
    except DingsyncError as exc:
        err(style("Error: ", fg="red") + redact(str(exc)))
        if wants_json:
            _error_document(redact(str(exc)), [])
        return int(exc.exit_code)
    except click.exceptions.Abort:
        err("Aborted.")
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        err("Interrupted.")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: say so, without a traceback unless asked
        if os.environ.get("DINGSYNC_TRACEBACK"):
            raise
        err(f"Internal error: {redact(type(exc).__name__ + ': ' + str(exc))}")
        err("This is a bug in dingsync; rerun with DINGSYNC_TRACEBACK=1 to see the traceback.")
        return ExitCode.INTERNAL
    return int(result) if isinstance(result, int) else ExitCode.OK
