"""No secret ever leaves the process: not in output, logs, errors, state or plan files."""

from __future__ import annotations

import socket

from tests.e2e.conftest import APP_SECRET
from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_secret_and_tokens_never_appear_anywhere(workdir, emulator, monkeypatch, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING, api)
    summary = workdir / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    runs = [
        dingsync("validate", "-v"),
        dingsync("plan", "-v", "--out", "plan.json"),
        dingsync("apply", "-y", "-v"),
        dingsync("drift", "-v"),
        dingsync("drift", "-v", "--json"),
        dingsync("apply", "-y", "-v", "--json", "--endpoint", f"http://127.0.0.1:{closed_port()}"),
    ]
    emulator.revoke_tokens()  # forces a token refresh mid-run: a second token to look for
    runs.append(dingsync("drift", "-v"))
    monkeypatch.setenv("DINGTALK_APP_SECRET", "wrong-" + APP_SECRET)
    wrong = dingsync("apply", "-y", "-v")
    assert wrong.code == 1 and "DINGTALK_APP_KEY" in wrong.err
    runs.append(wrong)
    assert runs[2].code == 0, runs[2].err
    # -v logged the calls, the token redacted (a query parameter, or the v1.0 header)
    assert "access_token=***" in runs[2].err or "access-token: ***" in runs[2].err
    assert runs[5].code == 1  # closed port: a clear error, no traceback
    tokens = emulator.issued_tokens()
    assert len(tokens) >= 2
    needles = [APP_SECRET, *tokens]
    texts = [r.out + r.err for r in runs]
    files = [p for p in workdir.rglob("*") if p.is_file()]
    assert any(p.name == "tasks.state.json" for p in files)
    blobs = [p.read_bytes() for p in files]
    for needle in needles:
        assert not any(needle in t for t in texts), f"secret or token in output: {needle[:4]}…"
        raw = needle.encode()
        assert not any(raw in b for b in blobs), f"secret or token in a file: {needle[:4]}…"
    assert all("Traceback" not in t for t in texts)
