"""What a command that talks to DingTalk holds while it runs, opened in one fixed order.

The lock first (no other writer), then the state (read under the lock), the check that
the state belongs to the DingTalk this run reaches, the backend, and the ledger through
which every change of the state goes. They close in the reverse order: the ledger folds
the journal into the state file before the lock is released.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dingsync.backend import Backend
from dingsync.errors import StateError
from dingsync.ledger import Ledger
from dingsync.lock import StateLock
from dingsync.model import Remote
from dingsync.model import State
from dingsync.options import Connection
from dingsync.state import StateStore


@dataclass
class Session:
    path: Path
    store: StateStore
    ledger: Ledger
    backend: Backend
    remote: Remote
    existed: bool  # whether the state file was there when the run began

    def bind(self) -> None:
        """Tie the state to this run's remote: called before the first write to DingTalk."""
        if self.ledger.state.remote != self.remote:
            self.ledger.bind(self.remote)


def is_sandbox_state(path: Path, state: State, existed: bool) -> bool:
    """Whether a sandbox run may use this state.

    A state names its remote since this check exists; an older one counts as a sandbox
    state only by its file name (``*.sandbox.state.json``), as --sandbox names them.
    """
    if state.remote is not None:
        return state.remote.sandbox
    return not existed or path.name.endswith(".sandbox.state.json")


def state_api(state: State) -> str | None:
    """The API a state's records live in; a state from before v1.0 support is workrecord."""
    if state.remote is not None:
        return state.remote.api
    return "workrecord" if state.records or state.pending or state.retiring else None


def check_api(path: Path, state: State, api: str) -> None:
    """A state belongs to one API: its records are not to-dos of the other (not even with
    --force, which moves a state between endpoints of one API)."""
    own = state_api(state)
    if own is None or own == api:
        return
    stem = path.name.removesuffix(".json").removesuffix(".state").removesuffix(".sandbox")
    suggested = path.with_name(f"{stem}.{api}.state.json")
    raise StateError(
        f"state {path} holds to-dos of the {own} API, and this task file is for the {api} "
        f"API; a state belongs to one API. To move to {api}, give this file a new state "
        f"(--state {suggested}); the {own} to-dos of the old state stay as they are "
        "(README: moving a team from workrecord to todo)"
    )


def check_remote(path: Path, state: State, existed: bool, remote: Remote, force: bool) -> None:
    """Refuse a state whose records live in another DingTalk than the one this run reaches.

    Against the wrong endpoint or app every record would look missing, and the next apply
    would create them all again. ``--force`` lets a run move a state on purpose (a gateway
    in front of the same DingTalk, say); the sandbox never touches a real state.
    """
    if remote.sandbox and not is_sandbox_state(path, state, existed):
        owner = state.remote.describe() if state.remote else "a real DingTalk, by its name"
        raise StateError(
            f"{path} is not a sandbox state (it belongs to {owner}); --sandbox never uses a "
            "real state: leave out --state, and sandbox runs keep their own state"
        )
    if state.remote is None or state.remote == remote or force:
        return
    raise StateError(
        f"state {path} belongs to {state.remote.describe()}, not {remote.describe()} that "
        "this run reaches; check DINGSYNC_ENDPOINT/--endpoint and the app credentials, or "
        "pass --force to move the state to it"
    )


@contextmanager
def open_session(
    path: Path,
    command: str,
    connection: Connection,
    *,
    lock_timeout: float = 0.0,
    force: bool = False,
) -> Iterator[Session]:
    """Hold everything a run needs, once the state is known to belong to this remote.

    A connection without an API (``drift``, which reads no task file) takes the state's.
    """
    with StateLock(path, command=command, timeout=lock_timeout):
        store = StateStore(path)
        state = store.load()
        existed = store.found
        if connection.api is None:
            connection = connection._replace(api=state_api(state) or "workrecord")
        else:
            check_api(path, state, connection.api)
        remote = connection.remote()
        check_remote(path, state, existed, remote, force)
        with connection.open() as backend, Ledger(state, store) as ledger:
            backend.attach(ledger)
            yield Session(path, store, ledger, backend, remote, existed)
