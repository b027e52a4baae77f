"""Faults, kills and concurrent runs: never a duplicate, never a lost record.

Each test is seeded and bounded in time; they drive the real CLI in subprocesses (so a
SIGKILL is a real kill) against the emulator over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig
from tests.e2e.conftest import APP_KEY
from tests.e2e.conftest import APP_SECRET
from tests.helpers import adds
from tests.helpers import cli
from tests.helpers import finish as finish_process
from tests.helpers import many_tasks
from tests.helpers import remote_records
from tests.helpers import stop_all
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    done = finish_process(proc, timeout)
    return done.code, done.out, done.err


def assert_one_record_per_address(emulator: Emulator, state_file: Path, expected: int) -> None:
    records = remote_records(emulator)
    open_records = [r for r in records if r["status"] == 0]
    per_content = Counter((r["userid"], r["title"]) for r in records)
    duplicates = {k: n for k, n in per_content.items() if n > 1}
    assert duplicates == {}, f"duplicate remote records: {duplicates}"
    assert len(open_records) == expected
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state["pending"] == {}
    in_state = {a: r["record_id"] for a, r in state["records"].items()}
    assert len(in_state) == expected
    remote_ids = {r["record_id"] for r in open_records}
    assert set(in_state.values()) == remote_ids


def test_faults_of_every_kind_are_survived(tmp_path, api):
    """(a) 100 tasks, 15% of calls fail in every way (v1.0: also lockError): rerun until
    exit 0."""
    many_tasks(tmp_path / "tasks.yaml", 100, users=4, api=api)
    kinds = ("http500", "errcode-1", "reset", "lost_ack") + (
        ("lockerror",) if api == "todo" else ()
    )
    config = EmulatorConfig(
        apps={APP_KEY: APP_SECRET},
        qps=0,
        fault_rate=0.15,
        fault_kinds=kinds,
        seed=20261128,
    )
    with Emulator(config) as emulator:
        codes = []
        for _ in range(10):
            code, out, err = finish(cli(tmp_path, emulator.url, "apply", "-y", "--no-refresh"))
            assert "Traceback" not in err
            codes.append(code)
            if code == 0:
                break
        assert codes[-1] == 0, f"still failing after {len(codes)} runs: {err}"
        injected = emulator.fault_counts()
        assert set(injected) == set(kinds)
        print(f"\nfaults injected {sum(injected.values())} {injected}; runs {len(codes)}")
        emulator.set_faults(rate=0.0)
        assert_one_record_per_address(emulator, tmp_path / "state" / "tasks.state.json", 100)
        code, out, _ = finish(cli(tmp_path, emulator.url, "plan", "--detailed-exitcode"))
        assert code == 0, out


def test_concurrent_applies_one_wins_the_other_fails_fast(tmp_path, api):
    """(c) two applies at once on one state: the second fails at once naming the holder."""
    many_tasks(tmp_path / "tasks.yaml", 30, users=2, api=api)
    config = EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=0, latency_ms=30)
    with Emulator(config) as emulator:
        first = cli(tmp_path, emulator.url, "apply", "-y", "--parallelism", "1")
        lock = tmp_path / "state" / "tasks.state.json.lock"
        deadline = time.monotonic() + 20
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        code, _, err = finish(cli(tmp_path, emulator.url, "apply", "-y"))
        assert code == 1
        assert f"pid {first.pid}" in err
        assert time.monotonic() - started < 10
        code, _, err = finish(first)
        assert code == 0, err
        assert_one_record_per_address(emulator, tmp_path / "state" / "tasks.state.json", 30)


def test_a_server_rate_limit_and_tokens_expiring_mid_run_are_survived(tmp_path, api):
    """(d) the server throttles at 5 calls a second while the client does not pace
    itself, and every token is revoked once ten creates were sent: every record lands
    once, in one run."""
    many_tasks(tmp_path / "tasks.yaml", 40, users=4, api=api)
    config = EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=5)
    with Emulator(config) as emulator:
        proc = cli(tmp_path, emulator.url, "apply", "-y", "--max-qps", "0", "--parallelism", "8")
        try:
            wait_until(lambda: adds(emulator) >= 10 or proc.poll() is not None, "ten creates")
            assert proc.poll() is None, "the run ended before its token could expire"
            assert emulator.revoke_tokens() >= 1
            code, out, err = finish(proc)
        finally:
            stop_all([proc])
        assert code == 0, err
        assert "Traceback" not in err
        create = "todo/create" if api == "todo" else "workrecord/add"
        sent = emulator.call_counts()[create]
        assert sent > 40, "the server never throttled: the test proves nothing"
        assert len(emulator.issued_tokens()) >= 2, "no token was renewed mid-run"
        assert_one_record_per_address(emulator, tmp_path / "state" / "tasks.state.json", 40)
