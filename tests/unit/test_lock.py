from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dingsync
from dingsync.errors import LockError
from dingsync.lock import StateLock
from dingsync.lock import _process_start

# A child process that takes the lock, says so, and holds it until its stdin closes.
HOLDER = """
import sys
from dingsync.lock import StateLock
with StateLock(sys.argv[1], command="apply"):
    print("locked", flush=True)
    sys.stdin.read()
"""

# A child process that increments a counter file without any atomicity of its own: only
# the lock keeps two children from reading the same value.
INCREMENTER = """
import sys, time
from pathlib import Path
from dingsync.lock import StateLock
counter = Path(sys.argv[2])
for _ in range(5):
    with StateLock(sys.argv[1], command="apply", timeout=30, poll_interval=0.005):
        value = int(counter.read_text())
        time.sleep(0.002)
        counter.write_text(str(value + 1))
"""


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tasks.state.json"


@pytest.fixture
def holder(state_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock until the test closes its stdin."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "locked\n"
        # Leaving the block closes the child's stdin, which lets it go, and waits for it.
        yield child


def lock_file(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".lock")


def gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    code = "import os; print(os.getpid())"
    child = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True, check=True)
    return int(child.stdout)


def test_lock_file_names_its_holder_and_goes_away(state_path: Path) -> None:
    with StateLock(state_path, command="apply") as lock:
        assert lock.path == lock_file(state_path)
        info = StateLock.read(state_path)
        assert info is not None
        named = {"pid", "host", "command", "created_at", "dingsync_version"}
        assert set(info) - {"pid_start"} == named  # the start time where /proc tells it
        assert info["pid"] == os.getpid()
        assert info["host"] == socket.gethostname()
        assert info["command"] == "apply"
        assert info["dingsync_version"] == dingsync.__version__
        assert time.strptime(info["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert not lock_file(state_path).exists()
    assert StateLock.read(state_path) is None


def test_lock_is_released_when_the_block_raises(state_path: Path) -> None:
    with pytest.raises(KeyError), StateLock(state_path, command="apply"):
        raise KeyError("boom")
    assert not lock_file(state_path).exists()


def test_second_holder_fails_at_once_naming_the_first(state_path: Path) -> None:
    with StateLock(state_path, command="apply"):
        started = time.monotonic()
        with pytest.raises(LockError) as info, StateLock(state_path, command="state rm"):
            pass
        assert time.monotonic() - started < 0.5
        assert lock_file(state_path).exists()  # the failed attempt left it alone
    assert StateLock.read(state_path) is None
    message = str(info.value)
    assert message.startswith(f"state is locked by pid {os.getpid()} on host ")
    assert "(apply, since " in message
    assert message.endswith(
        "; wait with --lock-timeout SECONDS, or run 'dingsync force-unlock' if that process is gone"
    )


def test_exact_message_for_a_known_holder() -> None:
    info = {
        "pid": 1234,
        "host": "ci-7",
        "command": "apply",
        "created_at": "2026-11-28T12:00:00Z",
    }
    assert StateLock.held_message(info) == (
        "state is locked by pid 1234 on host ci-7 (apply, since 2026-11-28T12:00:00Z); "
        "wait with --lock-timeout SECONDS, or run 'dingsync force-unlock' if that process "
        "is gone"
    )


def test_stale_lock_is_reported_as_such(state_path: Path) -> None:
    pid = gone_pid()
    info = {"pid": pid, "host": socket.gethostname(), "command": "apply", "created_at": "t"}
    lock_file(state_path).parent.mkdir(parents=True)
    lock_file(state_path).write_text(json.dumps(info))
    assert StateLock.is_stale(info)
    with pytest.raises(LockError, match=r"the process is gone \(stale lock\)") as error:
        StateLock(state_path, command="apply").acquire()
    assert f"pid {pid}" in str(error.value) and "force-unlock" in str(error.value)
    assert lock_file(state_path).exists()  # never taken over silently


@pytest.mark.parametrize(
    "info",
    [
        {"pid": os.getpid(), "host": socket.gethostname()},  # alive
        {"pid": 1, "host": socket.gethostname()},  # alive, owned by another user maybe
        {"pid": 999_999_999, "host": "another-host"},  # cannot be checked from here
        {"pid": 0, "host": socket.gethostname()},  # would signal our process group
        {"pid": -1, "host": socket.gethostname()},
        {"pid": "42", "host": socket.gethostname()},
        {"pid": True, "host": socket.gethostname()},
        {},
    ],
)
def test_not_stale(info: dict[str, object]) -> None:
    assert not StateLock.is_stale(info)


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/stat").exists(), reason="needs /proc")
def test_a_reused_pid_is_a_stale_lock(state_path: Path) -> None:
    with StateLock(state_path, command="apply"):
        mine = StateLock.read(state_path)
    assert mine is not None and isinstance(mine["pid_start"], int)
    assert not StateLock.is_stale(mine)  # this very process holds it
    # The same pid, but a process that started at another moment: not the holder.
    reused = {**mine, "pid_start": mine["pid_start"] - 1}
    assert StateLock.is_stale(reused)
    assert "stale lock" in StateLock.held_message(reused)


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/stat").exists(), reason="needs /proc")
def test_the_start_time_read_is_when_the_process_started() -> None:
    ours = _process_start(os.getpid())
    time.sleep(0.05)  # five clock ticks at the usual 100 per second
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        later = _process_start(child.pid)
        assert ours is not None and later is not None and later > ours
        assert _process_start(child.pid) == later  # the same process, the same value
    finally:
        child.kill()
        child.wait()


def test_unreadable_lock_file(state_path: Path) -> None:
    lock_file(state_path).parent.mkdir(parents=True)
    lock_file(state_path).write_bytes(b"")
    assert StateLock.read(state_path) == {}
    with pytest.raises(LockError, match="state is locked by an unknown process"):
        StateLock(state_path, command="apply").acquire()
    lock_file(state_path).write_bytes(b"[1]")
    assert StateLock.read(state_path) == {}


class FakeClock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def test_timeout_gives_up_after_waiting(state_path: Path) -> None:
    clock = FakeClock()
    with StateLock(state_path, command="apply"):
        waiting = StateLock(
            state_path, "apply", timeout=0.3, poll_interval=0.05, clock=clock, sleep=clock.sleep
        )
        with pytest.raises(LockError, match="state is locked by"):
            waiting.acquire()
    # It waited the whole timeout, polling at the interval, and not a moment longer.
    assert clock.now - 100.0 == pytest.approx(0.3)
    assert sum(clock.naps) == pytest.approx(0.3)
    assert max(clock.naps) == pytest.approx(0.05)


def test_release_leaves_a_lock_that_is_no_longer_ours(state_path: Path) -> None:
    lock = StateLock(state_path, command="apply")
    lock.acquire()
    # Someone ran force-unlock, and another run took the lock since.
    assert StateLock.force_remove(state_path)
    other = StateLock(state_path, command="drift")
    other.acquire()
    lock.release()
    info = StateLock.read(state_path)
    assert info is not None and info["command"] == "drift"
    other.release()
    assert StateLock.read(state_path) is None


def test_release_after_force_remove_is_quiet(state_path: Path) -> None:
    with StateLock(state_path, command="apply"):
        assert StateLock.force_remove(state_path)
    assert not StateLock.force_remove(state_path)


def test_double_acquire_is_a_bug(state_path: Path) -> None:
    lock = StateLock(state_path, command="apply")
    with lock, pytest.raises(RuntimeError):
        lock.acquire()


def test_lock_folder_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(LockError, match="cannot create"):
        StateLock(tmp_path / "file" / "s.state.json", command="apply").acquire()


# -- across processes ----------------------------------------------------------------------


def test_lock_held_by_another_process(state_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(LockError, match=f"state is locked by pid {holder.pid} "):
        StateLock(state_path, command="apply").acquire()
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=10)
    with StateLock(state_path, command="apply"):
        pass


def test_waiting_process_gets_the_lock_when_released(
    state_path: Path, holder: subprocess.Popen[str]
) -> None:
    assert holder.stdin is not None
    lock = StateLock(state_path, command="apply", timeout=10, poll_interval=0.02)
    holder.stdin.close()  # the holder lets go while we wait
    started = time.monotonic()
    with lock:
        info = StateLock.read(state_path)
        assert info is not None and info["pid"] == os.getpid()
    assert time.monotonic() - started < 5


def test_killed_holder_leaves_a_stale_lock(state_path: Path, holder: subprocess.Popen[str]) -> None:
    holder.kill()
    holder.wait(timeout=10)
    with pytest.raises(LockError, match="stale lock"):
        StateLock(state_path, command="apply").acquire()
    assert StateLock.force_remove(state_path)
    with StateLock(state_path, command="apply"):
        pass


def test_processes_take_turns(state_path: Path, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    children = [
        subprocess.Popen([sys.executable, "-c", INCREMENTER, str(state_path), str(counter)])
        for _ in range(4)
    ]
    assert [child.wait(timeout=60) for child in children] == [0, 0, 0, 0]
    assert counter.read_text() == "20"
    assert StateLock.read(state_path) is None


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    # A full disk once left an empty lock file that blocked every later run.
    import dingsync.lock as lock_module

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lock_module.os, "write", full_disk)
    with pytest.raises(LockError, match="No space left on device"):
        StateLock(tmp_path / "s.json", command="apply").acquire()
    assert not (tmp_path / "s.json.lock").exists()
