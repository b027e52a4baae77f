"""Options shared by several commands, and the backend they open.

Credentials come from the environment only (never a flag or a file), and ``--sandbox``
swaps DingTalk for the built-in emulator with dummy credentials and its own state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from typing import TypeVar

import click

from dingsync.endpoint import DEFAULT_ENDPOINT
from dingsync.endpoint import SANDBOX_KEY
from dingsync.endpoint import SANDBOX_SECRET
from dingsync.errors import CredentialsError
from dingsync.terminal import err
from dingsync.terminal import redact

if TYPE_CHECKING:
    from dingsync.backend import Backend
    from dingsync.model import Remote
    from dingsync.model import TaskFile

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_QPS = 20.0  # DingTalk's documented limit per app and API
# Calls in flight = rate x latency: a plan keeps two APIs busy at once (creates beside
# completions, a replace's create and delete), and a call to DingTalk from a runner far away
# can take 200 ms. So 0.4 changes at once per call a second of --max-qps.
_IN_FLIGHT_PER_QPS = 2 * 0.2
_PARALLELISM = (8, 64)  # the default's floor, and its ceiling: --parallelism's most


def parallelism_for(max_qps: float) -> int:
    """``apply``'s default ``--parallelism``: enough changes at once to keep up with
    ``max_qps`` (8 with no limit, and at DingTalk's 20/s)."""
    least, most = _PARALLELISM
    if max_qps <= 0:
        return least
    return max(least, min(most, math.ceil(max_qps * _IN_FLIGHT_PER_QPS)))


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
        default=DEFAULT_QPS,
        show_default=True,
        help="Client-side calls per second per API (0: no limit); slows down on rate limits.",
    )(func)
    return lock_timeout_option(func)


# Single options that several commands take, each defined once.
lock_timeout_option = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Wait this many seconds for the state lock instead of failing at once.",
)
sandbox_state_option = click.option("--sandbox", is_flag=True, help="Use the sandbox state.")
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default=None,
    help="Output format [default: text; json with --json].",
)
lookup_option = click.option(
    "--lookup",
    type=click.Choice(["list", "get"]),
    default="list",
    show_default=True,
    help="How records are looked up: list, the documented getbyuserid call; get, "
    "workrecord/get where a gateway offers it.",
)


def output_format(fmt: str | None, as_json: bool) -> str:
    """The one format asked for: --json is --format json; the two may not disagree."""
    if as_json and fmt not in (None, "json"):
        from dingsync.errors import DingsyncError

        raise DingsyncError(f"--json and --format {fmt} ask for different outputs; give one")
    return fmt or ("json" if as_json else "text")


def state_path_for(task_file: str, state_path: str | None, sandbox: bool = False) -> Path:
    from dingsync.state import default_state_path

    return Path(state_path) if state_path else default_state_path(task_file, sandbox)


def announce_new_state(path: Path) -> None:
    """Never start a new state silently: a moved, renamed or lost state shows here."""
    err(f"No state at {path}: a new state")


def load_tasks(task_file: str) -> TaskFile:
    """The task file, validated."""
    from dingsync.loader import load_task_file

    task_file_ = load_task_file(task_file)
    return task_file_


# ---------------------------------------------------------------- backends


class Connection(NamedTuple):
    """How a command reaches DingTalk: what ``--endpoint``, ``--sandbox`` and co. said."""

    endpoint: str
    sandbox: bool
    task_file: str
    max_qps: float
    verbose: bool
    pool_size: int = 8
    api: str | None = "workrecord"  # None: the state's (a command that reads no task file)

    def remote(self) -> Remote:
        """The DingTalk this connection reaches, as a state file records it."""
        from dingsync.endpoint import check_endpoint
        from dingsync.model import SANDBOX_ENDPOINT
        from dingsync.model import Remote
        from dingsync.model import app_key_fingerprint

        api = self.api or "workrecord"
        if self.sandbox:
            return Remote(api, SANDBOX_ENDPOINT)
        key, _ = credentials()
        return Remote(api, check_endpoint(self.endpoint), app_key_fingerprint(key))

    def open(self) -> AbstractContextManager[Backend]:
        return open_backend(
            self.endpoint,
            self.sandbox,
            self.task_file,
            self.max_qps,
            self.verbose,
            self.pool_size,
            self.api or "workrecord",
        )


@contextmanager
def open_backend(
    endpoint: str,
    sandbox: bool,
    task_file: str,
    max_qps: float,
    verbose: bool,
    pool_size: int = 8,
    api: str = "workrecord",
) -> Iterator[Backend]:
    """The backend of ``api``: the real endpoint with env credentials, or a sandbox
    emulator (which serves both APIs)."""
    from dingsync.endpoint import check_endpoint

    log = (lambda line: err(redact(line))) if verbose else None
    if sandbox:
        from dingsync.emulator import Emulator
        from dingsync.emulator import EmulatorConfig

        data = Path("state") / f"{Path(task_file).stem}.sandbox.emulator.json"
        config = EmulatorConfig(apps={SANDBOX_KEY: SANDBOX_SECRET}, data_path=data)
        with Emulator(config) as emulator:
            backend = _backend(
                api, emulator.url, SANDBOX_KEY, SANDBOX_SECRET, max_qps, log, pool_size
            )
            try:
                yield backend
            finally:
                backend.close()
        return
    key, secret = credentials()
    backend = _backend(api, check_endpoint(endpoint), key, secret, max_qps, log, pool_size)
    try:
        yield backend
    finally:
        backend.close()


def _backend(
    api: str,
    endpoint: str,
    key: str,
    secret: str,
    max_qps: float,
    log: Callable[[str], None] | None,
    pool_size: int,
) -> Backend:
    if api == "todo":
        from dingsync.todo_backend import TodoBackend
        from dingsync.todo_client import TodoClient

        todo = TodoClient(endpoint, key, secret, max_qps=max_qps, log=log, pool_size=pool_size)
        return TodoBackend(todo)
    from dingsync.client import DingTalkClient
    from dingsync.workrecord import WorkrecordBackend

    calls = DingTalkClient(endpoint, key, secret, max_qps=max_qps, log=log, pool_size=pool_size)
    return WorkrecordBackend(calls)


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
