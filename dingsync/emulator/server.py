"""``Emulator``: the gateway, the store and the HTTP server put together, and ``serve``."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from types import TracebackType
from typing import Any

from dingsync.emulator.config import EmulatorConfig
from dingsync.emulator.config import check_rate_settings
from dingsync.emulator.control import handle_control
from dingsync.emulator.faults import FaultPlan
from dingsync.emulator.gateway import Clock
from dingsync.emulator.gateway import Gateway
from dingsync.emulator.gateway import Settings
from dingsync.emulator.gateway import directory_of
from dingsync.emulator.handler import EmulatorHTTPServer
from dingsync.emulator.persist import EmulatorDataError
from dingsync.emulator.persist import Saver
from dingsync.emulator.persist import load
from dingsync.emulator.store import Store
from dingsync.emulator.store import form_pairs
from dingsync.emulator.todo_store import check_edit

POLL_INTERVAL = 0.05  # how quickly stop() is noticed by the serving loop


class Emulator:
    """A fake DingTalk (legacy topapi/workrecord and the v1.0 to-dos) on a local HTTP server.

    Every helper method is thread-safe and may be called while requests are served.
    With ``data_path`` the data is loaded when the emulator is built and saved shortly
    after each change and on ``stop``.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = dataclasses.replace(config) if config is not None else EmulatorConfig()
        self.config.check()
        self._clock = Clock(self.config.clock)
        self._store = Store()
        self._gateway = Gateway(self._store, self._clock, Settings.from_config(self.config))
        self._http: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._saver: Saver | None = None
        if self.config.data_path is not None:
            self._saver = Saver(Path(self.config.data_path), self._snapshot)
            self._load(self._saver.path)
            self._store.on_change = self._saver.notify

    # Serving

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread; return the base URL, e.g. ``http://127.0.0.1:53124``."""
        if self._http is not None:
            raise RuntimeError("the emulator is already running")
        server = EmulatorHTTPServer(
            (host, port),
            self._gateway.handle,
            self._control,
            ipv6=":" in host,
            sleep=self.config.sleep,
        )
        self._http = server
        shown = f"[{host}]" if ":" in host else host
        self._url = f"http://{shown}:{server.server_port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="dingtalk-emulator",
            daemon=True,
        )
        self._thread.start()
        if self._saver is not None:
            self._saver.start()
        return self._url

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._url

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (a keep-alive client should need few)."""
        return self._http.accepted if self._http is not None else 0

    def stop(self) -> None:
        """Stop serving, close open connections and save the data if there is a data file."""
        server, thread = self._http, self._thread
        self._http = self._thread = None
        self._url = None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if thread is not None:
            thread.join()
        if self._saver is not None:
            self._saver.stop()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # What DingTalk holds

    def records(self) -> list[dict[str, Any]]:
        """Every stored record with all its fields, oldest first."""
        with self._store.lock:
            return [record.full() for record in self._store.records.values()]

    def complete(self, record_id: str) -> dict[str, Any]:
        """Mark a record done, as its assignee would in DingTalk. KeyError if unknown."""
        with self._store.lock:
            record = self._store.records[record_id]
            self._store.complete(record)
            return record.full()

    def delete(self, record_id: str) -> None:
        """Remove a record, as an admin would. Its biz_id stays used. KeyError if unknown."""
        with self._store.lock:
            self._store.delete(record_id)

    def modify(
        self,
        record_id: str,
        title: str | None = None,
        url: str | None = None,
        forms: Iterable[Any] | None = None,
    ) -> dict[str, Any]:
        """Change a record on the DingTalk side. ``forms``: ``{title, content}`` items or
        ``(title, content)`` pairs. KeyError if unknown."""
        pairs = None if forms is None else form_pairs(forms)
        with self._store.lock:
            return self._store.modify(record_id, title, url, pairs).full()

    # The v1.0 to-dos

    def todos(self) -> list[dict[str, Any]]:
        """Every stored v1.0 to-do with all its fields, oldest first (deleted ones are gone)."""
        with self._store.lock:
            return [task.full() for task in self._store.todo.tasks.values()]

    def todo_records(self) -> list[dict[str, Any]]:
        """The v1.0 to-dos in the shape of ``records()``: one entry per executor, with its
        userid (where the directory knows it), the subject as title and status 0 open /
        1 done, so that checks written for records work for both APIs."""
        with self._store.lock:
            directory = self._gateway.settings.directory
            views = []
            for task in self._store.todo.tasks.values():
                data = task.full()
                for executor in task.executor_ids:
                    done = task.executors_done.get(executor, task.done)
                    views.append(
                        {
                            "record_id": task.task_id,
                            "userid": directory.userid_of(executor) or executor,
                            "title": task.subject,
                            "url": task.app_url,
                            "status": 1 if done else 0,
                            "source_id": task.source_id,
                            "todo": data,
                        }
                    )
            return views

    def complete_todo(self, task_id: str, executor: str | None = None) -> dict[str, Any]:
        """Mark a to-do done as its assignee would: the executor ``executor`` (a unionId),
        or the whole to-do when None. KeyError if unknown, ValueError for a non-executor."""
        with self._store.lock:
            task = self._store.todo.tasks[task_id]
            if executor is not None and executor not in task.executor_ids:
                raise ValueError(f"{executor} is not an executor of {task_id}")
            self._store.todo.complete(task, executor, self._clock.now())
            return task.full()

    def modify_todo(self, task_id: str, **changes: Any) -> dict[str, Any]:
        """Edit a to-do as a user would in DingTalk: any of ``subject``, ``description``,
        ``dueTime`` (ms), ``priority``, ``appUrl``, ``pcUrl``; None clears a field. The
        task's modifiedTime moves on. KeyError if unknown, ValueError for a bad change."""
        checked = check_edit(changes)
        with self._store.lock:
            task = self._store.todo.tasks[task_id]
            self._store.todo.edit(task, checked, task.creator_id, self._clock.now())
            return task.full()

    def delete_todo(self, task_id: str) -> None:
        """Delete a to-do as a user would. Its sourceId stays used. KeyError if unknown."""
        with self._store.lock:
            self._store.todo.delete(task_id)

    # Observation

    def call_counts(self) -> dict[str, int]:
        """Requests received per API name, rejected ones included (control calls are not)."""
        with self._store.lock:
            return dict(self._gateway.settings.calls)

    def fault_counts(self) -> dict[str, int]:
        """Faults injected so far, by kind (since start, reset or the last set_faults)."""
        with self._store.lock:
            return dict(self._gateway.settings.faults.injected)

    def issued_tokens(self) -> list[str]:
        """Every access token ever issued, oldest first."""
        with self._store.lock:
            return list(self._store.issued)

    def now(self) -> float:
        """The emulator's current time in epoch seconds."""
        return self._clock.now()

    # Steering

    def revoke_tokens(self) -> int:
        """Invalidate every token (later use gets 88/40014); return how many there were."""
        with self._store.lock:
            return self._store.revoke_tokens()

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator's time forward (or back); return the new time. Both APIs
        follow it: token expiry, the legacy day rules, the v1.0 list's 180 days."""
        with self._store.lock:
            self._clock.offset += seconds
            return self._clock.now()

    def set_faults(
        self,
        rate: float | None = None,
        kinds: Sequence[str] | None = None,
        seed: int | None = None,
        latency_ms: float | None = None,
        qps: float | None = None,
    ) -> dict[str, Any]:
        """Change fault injection, latency or the rate limit; None leaves a setting as it is.

        ``qps=0`` disables the limit. Changing rate, kinds or seed restarts the fault
        sequence from the seed. Returns the settings now in force.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError("seed must be an integer")
        check_rate_settings(qps, 0 if latency_ms is None else latency_ms)
        with self._store.lock:
            settings = self._gateway.settings
            if rate is not None or kinds is not None or seed is not None:
                settings.faults = FaultPlan(
                    settings.faults.rate if rate is None else rate,
                    settings.faults.kinds if kinds is None else kinds,
                    settings.faults.seed if seed is None else seed,
                )
            if latency_ms is not None:
                settings.latency = latency_ms / 1000.0
            if qps is not None:
                settings.limiter.set_qps(qps)
            return {
                **settings.faults.settings(),
                "latency_ms": settings.latency * 1000.0,
                "qps": settings.limiter.qps or 0,
            }

    def set_users(
        self, users: Iterable[str] | None, union_ids: Mapping[str, str] | None = None
    ) -> None:
        """Accept only these userids (others get 33012), or every userid with None.

        ``union_ids`` gives userids their own unionIds; None keeps those already set.
        """
        with self._store.lock:
            current = self._gateway.settings.directory.union_ids
            directory = directory_of(users, current if union_ids is None else union_ids)
            self._gateway.settings.directory = directory

    def union_id(self, userid: str) -> str:
        """The unionId ``topapi/v2/user/get`` gives a userid. KeyError if not a member."""
        with self._store.lock:
            union_id = self._gateway.settings.directory.union_id(userid)
        if union_id is None:
            raise KeyError(userid)
        return union_id

    def users(self) -> dict[str, Any]:
        """The members (None: every userid) and the configured userid -> unionId pairs."""
        with self._store.lock:
            directory = self._gateway.settings.directory
            members = None if directory.users is None else sorted(directory.users)
            return {"users": members, "unionIds": dict(directory.union_ids)}

    def reset(self) -> None:
        """Back to a fresh emulator built from the config.

        Drops records, tokens and every counter, rewinds the clock offset, and restores the
        settings changed by ``set_faults`` and ``set_users`` (the fault sequence restarts).
        """
        with self._store.lock:
            self._store.clear()
            self._clock.offset = 0.0
            self._gateway.settings = Settings.from_config(self.config)
            self._store.on_change()

    def save(self) -> None:
        """Write the data file now (no-op without ``data_path``)."""
        if self._saver is not None:
            self._saver.save()

    # Internals

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        return handle_control(self, method, path, raw)

    def _snapshot(self) -> dict[str, Any]:
        with self._store.lock:
            return self._store.snapshot()

    def _load(self, path: Path) -> None:
        data = load(path)
        if data is None:
            return
        try:
            with self._store.lock:
                self._store.restore(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EmulatorDataError(f"emulator data {path} is malformed: {exc!r}") from None


def serve(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run an emulator until Ctrl-C or SIGTERM (the ``dingsync emulator`` command).

    Prints one line, ``DingTalk emulator listening on http://HOST:PORT``, to stderr; on
    the way out it stops cleanly and saves the data file, if any.
    """
    emulator = Emulator(config)
    url = emulator.start(host, port)
    print(f"DingTalk emulator listening on {url}", file=sys.stderr, flush=True)
    stopping = threading.Event()
    restore = _on_sigterm(stopping.set)
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        emulator.stop()


def _on_sigterm(callback: Callable[[], None]) -> Callable[[], None]:
    """Route SIGTERM to ``callback`` while serving; return a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals can only be handled on the main thread

    def handler(signum: int, frame: FrameType | None) -> None:
        callback()

    previous = signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore
