"""How close ``dingsync apply`` comes to DingTalk's rate limit, per plan shape and API.

Run from the repository root::

    python benchmarks/bench_apply.py                # the table, both APIs
    python benchmarks/bench_apply.py --api todo     # the v1.0 to-do API only
    python benchmarks/bench_apply.py --json         # one JSON document

Every scenario starts a fresh built-in emulator in this process on 127.0.0.1 (50 ms per
call, the per-API cap under test, a ``bucket`` or ``sliding`` limiter), writes a task file
into a temp folder, and runs ``dingsync apply -y`` there as a real subprocess, pointed at
the emulator with ``DINGSYNC_ENDPOINT`` and the emulator's app in ``DINGTALK_APP_KEY``/
``_SECRET``. Both of dingsync's backends are measured (``--api workrecord|todo|both``):
the legacy ``workrecord`` API (a task file without ``api``) and the v1.0 to-do API (the
same tasks in a file with ``api: todo``, all created as one ``creator_userid``). The
emulator serves both on its one port, with the cap applied to each call name separately.

Plan shapes, each of ``--records`` (N) changes, and the calls of the API they write to
(``workrecord`` / ``todo``):

* ``creates``: N creates (N ``workrecord/add`` / N ``todo/create``);
* ``replaces``: N replaces (N adds and N ``workrecord/update`` / N ``todo/create`` and
  N ``todo/delete``);
* ``mixed``: N creates and N completions of unrelated to-dos (N adds and N updates /
  N ``todo/create`` and N ``todo/update``);
* ``completes``: N completions (N ``workrecord/update`` / N ``todo/update``, ``done: true``).

A replace changes the form (``workrecord``) or the url (``todo``: a title, description or
due-time change would be an update in place there). The shapes that change existing
to-dos first create them in a setup run with no limit on either side, a day earlier on the
emulator's clock (DingTalk takes 100 new legacy to-dos per userid per day), then move the
clock back to the real time and restore the cap. (Not the other way round: an emulator
clock a day ahead names the end of a throttling window a day ahead, and dingsync then
pauses that API for 60 s, its longest wait, on any rate-limit answer.) The physical limit
of a plan is its busiest API call's count divided by the cap: N / cap for every shape and
both APIs.

The baseline is what a simple script does: get a token, then one blocking ``requests.post``
per task to the create call, in sequence, no retries (for ``todo`` it first maps the creator
and each assignee to a unionId once, as it must). It runs as a subprocess too (this file
with ``--baseline-worker``), so that both sides pay for an interpreter start and neither
shares a GIL with the emulator.

The fault scenario (``--faults``) runs ``apply`` on 100 creates again and again, against
one emulator that fails 60% of all calls, token included: for ``workrecord`` 15% each of
HTTP 500, errcode -1 (busy), a reset before the call is processed and a reset after the
record was stored; for ``todo`` the same kinds plus ``lockerror`` (400
``todo.taskCreate.lockError``, drawn only by creates, which carry a sourceId): 12% each of
the five on a create, 15% each of the other four on every other call. It reports, per API,
runs until convergence, calls, seconds, records still missing after each run and
duplicates (to-dos of one task that exist more than once).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from checkout import child_env as checkout_env  # first: puts this checkout on sys.path
from checkout import compile_checkout

APP_KEY = "bench-app-key"
APP_SECRET = "bench-app-secret-0123456789"
LATENCY_MS = 50
RECORDS_PER_USER = 75  # DingTalk takes at most 100 new to-dos per userid per day
# The rate-limit answers in the client's -v log: a legacy errcode, or a v1.0 code after the
# HTTP status of the exchange's own line (the retry line repeats it; not counted twice).
RATE_LIMIT_LOG = re.compile(
    r"errcode=(?:88/)?(?:90018|90002|90005|90006)\b"
    r"|-> \d{3} (?:Forbidden\.AccessDenied\.Qp[sm]Limit\w*|system\.?[bB]usy)\b"
)
TASK_FILE = "tasks.yaml"
STATE_FILE = "state/tasks.state.json"
SHAPES = ("creates", "replaces", "mixed", "completes")
LIMITERS = ("bucket", "sliding")
DAY_SECONDS = 86400.0
FAULT_RECORDS = 100
FAULT_RATE = 0.6  # the kinds drawn evenly: 15% each of four
TIMED_OUT = -9  # the exit code shown for a child killed at --timeout
FAULT_KINDS = ("http500", "errcode-1", "reset", "lost_ack")
TARGET_CAP = 20.0  # DingTalk's documented cap per app and API
TARGET_RATIO = 1.10  # wall time over the physical limit, at TARGET_CAP
URL = "https://intranet.example.com/bench"
CHANGED_URL = "https://intranet.example.com/bench-v2"  # forces a v1.0 replace
CREATOR = "bench-owner"


@dataclass(frozen=True)
class Api:
    """What the benchmark needs to know of one of dingsync's DingTalk APIs."""

    name: str
    create: str  # the emulator's call name of a create
    complete: str  # ... of a completion
    retire: str  # ... of what retires the old to-do of a replace
    token_path: str  # the token call, which the emulator never fails on its own
    fault_kinds: tuple[str, ...]
    list_page: int  # to-dos per list call

    @property
    def writes(self) -> frozenset[str]:
        return frozenset({self.create, self.complete, self.retire})


LEGACY_API = Api(
    name="workrecord",
    create="workrecord/add",
    complete="workrecord/update",
    retire="workrecord/update",
    token_path="/gettoken",
    fault_kinds=FAULT_KINDS,
    list_page=50,
)
V1_API = Api(
    name="todo",
    create="todo/create",
    complete="todo/update",
    retire="todo/delete",
    token_path="/v1.0/oauth2/accessToken",
    fault_kinds=(*FAULT_KINDS, "lockerror"),
    list_page=20,  # the emulator's todo_page_size, as DingTalk's page
)
APIS = {api.name: api for api in (LEGACY_API, V1_API)}
API_TITLES = {
    "workrecord": "the legacy workrecord API",
    "todo": f"the v1.0 to-do API (api: todo, one creator_userid: {CREATOR})",
}


@dataclass
class Row:
    """One measured scenario."""

    scenario: str
    api: str  # workrecord or todo
    shape: str
    limiter: str
    cap: float
    max_qps: float | None
    parallelism: int | None
    changes: int  # changes of the plan (a replace is one)
    busiest_calls: int  # planned calls to the busiest API: the physical limit's numerator
    wall_s: float
    work_s: float  # first to last add/update call the emulator received
    before_s: float  # spawn to the first add/update call: start-up, load, plan, token
    after_s: float  # last add/update call to exit: its answer, final state write, output
    physical_s: float
    wall_ratio: float
    speedup: float | None
    failed: int
    rate_limited: int
    calls: dict[str, int]
    exit_code: int
    walls_s: list[float] | None = None  # every run's wall time, when repeated


@dataclass
class FaultRun:
    """One apply of the fault scenario."""

    exit_code: int
    wall_s: float
    calls: int
    open_records: int
    missing: int
    duplicates: int
    error: str  # the run's own words for what stopped it, if anything


@dataclass
class FaultReport:
    api: str
    records: int
    fault_rate: float
    kinds: list[str]
    runs: list[FaultRun] = field(default_factory=list)
    converged_after: int | None = None
    injected: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- inputs


Task = tuple[str, str, str, str, str]  # key, userid, title, description, url


def userids_for(records: int) -> list[str]:
    users = max(1, math.ceil(records / RECORDS_PER_USER))
    return [f"bench-user-{n:02d}" for n in range(users)]


def bench_tasks(
    records: int, key: str = "bench", title: str = "基准待办", note: str = "", url: str = URL
) -> list[Task]:
    """``records`` separate tasks, spread round-robin over enough userids."""
    users = userids_for(records)
    return [
        (
            f"{key}-{n:05d}",
            users[n % len(users)],
            f"{title} {n:05d}",
            f"第 {n} 条基准待办{note}",
            url,
        )
        for n in range(records)
    ]


KEEPER: Task = ("keeper", "bench-user-00", "保留待办", "一直保留", URL)


def shape_tasks(shape: str, records: int, api: Api) -> tuple[list[Task] | None, list[Task]]:
    """The setup run's tasks (None: no setup) and the measured run's, for a plan shape."""
    if shape == "creates":
        return None, bench_tasks(records)
    if shape == "replaces":
        # A new form is a replace for workrecord; a v1.0 to-do is replaced for a new url
        # (its description would be edited in place).
        if api is V1_API:
            return bench_tasks(records), bench_tasks(records, url=CHANGED_URL)
        return bench_tasks(records), bench_tasks(records, note="，已改")
    if shape == "mixed":
        # Other keys and other titles: the completions are unrelated to the creates.
        return bench_tasks(records, key="old", title="旧待办"), bench_tasks(records)
    if shape == "completes":
        # A task file holds one task at least: the keeper stays, the rest are completed.
        return [*bench_tasks(records), KEEPER], [KEEPER]
    raise ValueError(f"unknown shape {shape!r}")


def planned_calls(shape: str, records: int, api: Api) -> Counter[str]:
    """The calls a shape's plan makes to the APIs that write (one call name may serve two
    roles: a legacy completion and the retirement of a replaced to-do are both updates)."""
    calls: Counter[str] = Counter()
    if shape in ("creates", "replaces", "mixed"):
        calls[api.create] += records
    if shape == "replaces":
        calls[api.retire] += records
    if shape in ("mixed", "completes"):
        calls[api.complete] += records
    return calls


def write_task_file(folder: Path, tasks: list[Task], api: Api) -> Path:
    if api is V1_API:
        lines = [
            "version: 1",
            "api: todo",
            "defaults:",
            f"  creator_userid: {CREATOR}",
            f"  url: {URL}",
            "tasks:",
        ]
    else:
        lines = [
            "version: 1",
            "defaults:",
            f"  url: {URL}",
            "  source_name: 基准测试",
            f"  originator_userid: {CREATOR}",
            "tasks:",
        ]
    for key, userid, title, description, url in tasks:
        lines += [f"  - key: {key}", f"    userid: {userid}", f"    title: {title}"]
        if url != URL:
            lines.append(f"    url: {url}")
        if api is V1_API:
            lines.append(f"    description: {description}")
        else:
            lines += [
                "    form:",
                f"      - {{title: 任务描述, content: {description}}}",
                "      - {title: 截止日期, content: 2026-12-31}",
            ]
    path = folder / TASK_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def child_env(endpoint: str) -> dict[str, str]:
    env = checkout_env(
        DINGTALK_APP_KEY=APP_KEY,
        DINGTALK_APP_SECRET=APP_SECRET,
        DINGSYNC_ENDPOINT=endpoint,
        NO_COLOR="1",
    )
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def new_emulator(cap: float, limiter: str = "bucket", **settings: Any) -> Any:
    from dingsync.emulator import Emulator
    from dingsync.emulator import EmulatorConfig

    config = EmulatorConfig(
        apps={APP_KEY: APP_SECRET}, qps=cap, limiter=limiter, latency_ms=LATENCY_MS, **settings
    )
    return Emulator(config)


class Arrivals:
    """When the emulator received each call that writes (``time.time``, as the child's)."""

    def __init__(self, emulator: Any, api: Api) -> None:
        from dingsync.emulator.gateway import call_name

        self.stamps: list[float] = []
        self._lock = threading.Lock()
        gateway = emulator._gateway  # observing its own emulator
        handle: Callable[[Any], Any] = gateway.handle

        def observed(request: Any) -> Any:
            if call_name(request.method, request.path) in api.writes:
                with self._lock:
                    self.stamps.append(time.time())
            return handle(request)

        # Read by the HTTP server when the emulator starts: install before ``start``.
        gateway.handle = observed

    def clear(self) -> None:
        with self._lock:
            self.stamps.clear()

    def span(self) -> tuple[float, float] | None:
        with self._lock:
            return (min(self.stamps), max(self.stamps)) if self.stamps else None


def fail_token_calls(emulator: Any, api: Api) -> None:
    """Let the token call draw faults like every other call (the emulator spares it)."""
    from dataclasses import replace

    from dingsync.emulator.exchange import Outcome
    from dingsync.emulator.exchange import encode
    from dingsync.emulator.todo_wire import new_request_id

    gateway = emulator._gateway  # a fault it does not offer
    handle: Callable[[Any], Any] = gateway.handle

    def fault_outcome(fault: str, delay: float) -> Any:
        if api is LEGACY_API:
            return gateway._fault_outcome(fault, "gettoken", delay)
        if fault == "errcode-1":
            # The v1.0 gateway's own failure; DingTalk documents none for the token call.
            body = {"code": "systemError", "message": "系统繁忙", "requestid": new_request_id()}
            return Outcome(500, encode(body), "application/json", delay=delay)
        return gateway.todo._fault_outcome(fault, None, new_request_id(), delay)

    def faulty(request: Any) -> Any:
        if request.path != api.token_path:
            return handle(request)
        with gateway.store.lock:
            fault = gateway.settings.faults.draw(exclude=frozenset({"lockerror"}))
        if fault in ("http500", "errcode-1", "reset"):
            return fault_outcome(fault, gateway.settings.latency)
        outcome = handle(request)
        return replace(outcome, action="drop") if fault == "lost_ack" else outcome

    gateway.handle = faulty


# ---------------------------------------------------------------- measuring


def resolved(parallelism: int | None, max_qps: float) -> int:
    """The --parallelism dingsync runs with: the one given, or its default for the cap."""
    from dingsync.options import parallelism_for

    return parallelism_for(max_qps) if parallelism is None else parallelism


def dingsync_command(max_qps: float, parallelism: int | None, refresh: bool) -> list[str]:
    """The measured command line; ``parallelism`` None leaves dingsync its default."""
    command = [
        sys.executable,
        "-m",
        "dingsync",
        "apply",
        "-y",
        "--json",
        "-v",
        "-f",
        TASK_FILE,
        "--state",
        STATE_FILE,
        "--max-qps",
        f"{max_qps:g}",
        "--force",  # the shapes replace or complete every record: past the safety threshold
    ]
    if parallelism is not None:
        command += ["--parallelism", str(parallelism)]
    return command if refresh else [*command, "--no-refresh"]


def run_child(
    command: list[str], folder: Path, endpoint: str, timeout: float
) -> tuple[subprocess.CompletedProcess[str], float, float, float]:
    """The child's result, its wall time, and when it was spawned and exited (``time.time``)."""
    spawned = time.time()
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=folder,
            env=child_env(endpoint),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        # Killed: a row of its own (every change failed), not the end of the benchmark.
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        proc = subprocess.CompletedProcess(command, TIMED_OUT, "", stderr)
    wall = time.perf_counter() - started
    return proc, wall, spawned, time.time()


def apply_document(proc: subprocess.CompletedProcess[str], scenario: str) -> dict[str, Any]:
    if proc.returncode == TIMED_OUT:
        return {"result": {"failed": {"(all)": "timed out"}}}
    try:
        doc: dict[str, Any] = json.loads(proc.stdout)
        if not isinstance(doc["result"]["failed"], dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(
            f"{scenario}: dingsync apply gave no JSON (exit {proc.returncode})"
        ) from None
    return doc


def stored_records(emu: Any, api: Api) -> list[dict[str, Any]]:
    """What DingTalk holds on ``api``, one entry per to-do and assignee (record_id, userid,
    title, status 0 open / 1 done)."""
    return emu.todo_records() if api is V1_API else emu.records()


def run_shape(
    api: Api,
    shape: str,
    records: int,
    cap: float,
    limiter: str,
    parallelism: int | None,
    refresh: bool,
    timeout: float,
) -> Row:
    """One measured apply of ``shape``, after its setup run (if any) on the same emulator."""
    setup, measured = shape_tasks(shape, records, api)
    scenario = f"{shape}{' +refresh' if refresh else ''}"
    emulator = new_emulator(cap, limiter)
    arrivals = Arrivals(emulator, api)
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp, emulator as emu:
        folder = Path(tmp)
        if setup is not None:
            # The setup runs a day earlier on the emulator's clock (DingTalk takes 100 new
            # legacy to-dos per userid per day), the measured run at the real time: with the
            # clock left a day ahead, a throttling answer would name an end a day ahead, and
            # the client would pause that API for its longest wait (60 s).
            emu.advance_clock(-DAY_SECONDS)
            emu.set_faults(qps=0)
            write_task_file(folder, setup, api)
            command = dingsync_command(0, 16, refresh=False)
            proc, *_ = run_child(command, folder, emu.url, timeout)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(
                    f"{api.name} {scenario}: the setup run failed (exit {proc.returncode})"
                )
            emu.advance_clock(DAY_SECONDS)
            emu.set_faults(qps=cap)
        write_task_file(folder, measured, api)
        arrivals.clear()
        before_calls = emu.call_counts()
        command = dingsync_command(cap, parallelism, refresh)
        proc, wall, spawned, exited = run_child(command, folder, emu.url, timeout)
        calls = {
            k: v - before_calls.get(k, 0)
            for k, v in emu.call_counts().items()
            if v - before_calls.get(k, 0)
        }
        span = arrivals.span()
    doc = apply_document(proc, f"{api.name} {scenario}")
    result = doc["result"]
    done = len(result.get("created", [])) + len(result.get("replaced", []))
    done += len(result.get("completed", []))
    # A replace retires its old to-do inside the same change: one change, two calls.
    expected = records
    failed = len(result["failed"]) + len(result.get("skipped", {}))
    failed += 1 if result.get("fatal") else 0
    failed = max(failed, expected - done)
    busiest = max(planned_calls(shape, records, api).values())
    physical = busiest / cap
    first, last = span if span is not None else (spawned, spawned)
    return Row(
        scenario=scenario,
        api=api.name,
        shape=shape,
        limiter=limiter,
        cap=cap,
        max_qps=cap,
        parallelism=resolved(parallelism, cap),
        changes=expected,
        busiest_calls=busiest,
        wall_s=wall,
        work_s=last - first,
        before_s=first - spawned,
        after_s=exited - last,
        physical_s=physical,
        wall_ratio=wall / physical,
        speedup=None,
        failed=failed,
        rate_limited=len(RATE_LIMIT_LOG.findall(proc.stderr)),
        calls=calls,
        exit_code=proc.returncode,
    )


def run_baseline(api: Api, records: int, cap: float, limiter: str, timeout: float) -> Row:
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", TASK_FILE]
    emulator = new_emulator(cap, limiter)
    arrivals = Arrivals(emulator, api)
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp, emulator as emu:
        folder = Path(tmp)
        write_task_file(folder, bench_tasks(records), api)
        proc, wall, spawned, exited = run_child(command, folder, emu.url, timeout)
        calls = {k: v for k, v in emu.call_counts().items() if v}
        stored = len(stored_records(emu, api))
        span = arrivals.span()
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(
            f"{api.name} baseline: the worker failed (exit {proc.returncode})"
        ) from None
    first, last = span if span is not None else (spawned, spawned)
    physical = records / cap
    return Row(
        scenario="baseline loop",
        api=api.name,
        shape="creates",
        limiter=limiter,
        cap=cap,
        max_qps=None,
        parallelism=None,
        changes=records,
        busiest_calls=records,
        wall_s=wall,
        work_s=last - first,
        before_s=first - spawned,
        after_s=exited - last,
        physical_s=physical,
        wall_ratio=wall / physical,
        speedup=None,
        failed=max(int(summary["failed"]), records - stored),
        rate_limited=int(summary["rate_limited"]),
        calls=calls,
        exit_code=proc.returncode,
    )


def baseline_worker(task_file: str) -> int:
    """The simple script: token, then one blocking POST per (task, userid), no retries."""
    import requests
    import yaml

    endpoint = os.environ["DINGSYNC_ENDPOINT"]
    with open(task_file, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    key, secret = os.environ["DINGTALK_APP_KEY"], os.environ["DINGTALK_APP_SECRET"]
    todo = doc.get("api") == "todo"
    if todo:
        answer = requests.post(
            f"{endpoint}/v1.0/oauth2/accessToken",
            json={"appKey": key, "appSecret": secret},
            timeout=10,
        ).json()
        token = answer["accessToken"]
    else:
        answer = requests.get(
            f"{endpoint}/gettoken", params={"appkey": key, "appsecret": secret}, timeout=10
        ).json()
        token = answer["access_token"]
    union_ids: dict[str, str] = {}

    def union_id(userid: str) -> str:
        """The v1.0 API names people by unionId: one contacts call per userid, kept."""
        if userid not in union_ids:
            reply = requests.post(
                f"{endpoint}/topapi/v2/user/get",
                params={"access_token": token},
                json={"userid": userid},
                timeout=10,
            ).json()
            union_ids[userid] = reply["result"]["unionid"]
        return union_ids[userid]

    defaults = doc.get("defaults") or {}
    failed = rate_limited = 0
    for task in doc["tasks"]:
        merged = {**defaults, **task}
        userids = merged.get("userids") or [merged["userid"]]
        for userid in userids:
            if todo:
                creator = union_id(str(merged["creator_userid"]))
                response = requests.post(
                    f"{endpoint}/v1.0/todo/users/{creator}/tasks",
                    headers={"x-acs-dingtalk-access-token": token},
                    json={
                        "subject": str(merged["title"]),
                        "description": str(merged.get("description") or ""),
                        "creatorId": creator,
                        "executorIds": [union_id(str(userid))],
                        "detailUrl": {"appUrl": merged["url"], "pcUrl": merged["url"]},
                    },
                    timeout=10,
                )
                if response.status_code != 200:
                    failed += 1
                    code = str(response.json().get("code", ""))
                    if code.startswith("Forbidden.AccessDenied.Qp"):
                        rate_limited += 1
                continue
            body = {
                "userid": str(userid),
                "create_time": int(time.time() * 1000),
                "title": str(merged["title"]),
                "url": merged["url"],
                "formItemList": [
                    {"title": str(item["title"]), "content": str(item["content"])}
                    for item in merged["form"]
                ],
                "originator_user_id": merged.get("originator_userid"),
                "source_name": merged.get("source_name"),
                "biz_id": f"bench-{merged['key']}-{userid}",
            }
            reply = requests.post(
                f"{endpoint}/topapi/workrecord/add",
                params={"access_token": token},
                json=body,
                timeout=10,
            ).json()
            if reply.get("errcode") != 0:
                failed += 1
                if str(reply.get("sub_code") or reply.get("errcode")) in {"90018", "90002"}:
                    rate_limited += 1
    print(json.dumps({"failed": failed, "rate_limited": rate_limited}))
    return 0


def first_error(stdout: str) -> str:
    """What stopped a run, or the first failed record's reason, from its JSON document."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return stdout.strip().splitlines()[-1][:200] if stdout.strip() else ""
    if not isinstance(doc, dict):
        return ""
    if doc.get("error"):
        return str(doc["error"])[:200]
    result = doc.get("result") or {}
    if result.get("fatal"):
        return str(result["fatal"])[:200]
    failed = result.get("failed") or {}
    return f"{len(failed)} failed, e.g. {next(iter(failed.values()))[:160]}" if failed else ""


def run_faults(
    api: Api, parallelism: int | None, max_runs: int, seed: int, timeout: float
) -> FaultReport:
    """Apply 100 creates again and again against one heavily failing emulator."""
    report = FaultReport(api.name, FAULT_RECORDS, FAULT_RATE, list(api.fault_kinds))
    tasks = bench_tasks(FAULT_RECORDS)
    titles = {title for _, _, title, _, _ in tasks}
    emulator = new_emulator(20.0, fault_rate=FAULT_RATE, fault_kinds=api.fault_kinds, seed=seed)
    fail_token_calls(emulator, api)
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp, emulator as emu:
        folder = Path(tmp)
        write_task_file(folder, tasks, api)
        command = dingsync_command(20.0, parallelism, refresh=True)
        for n in range(1, max_runs + 1):
            before = sum(emu.call_counts().values())
            proc, wall, _, _ = run_child(command, folder, emu.url, timeout)
            stored = [r for r in stored_records(emu, api) if r["title"] in titles]
            per_title = Counter(r["title"] for r in stored)
            open_titles = {r["title"] for r in stored if r["status"] == 0}
            report.runs.append(
                FaultRun(
                    exit_code=proc.returncode,
                    wall_s=wall,
                    calls=sum(emu.call_counts().values()) - before,
                    open_records=sum(1 for r in stored if r["status"] == 0),
                    missing=len(titles - open_titles),
                    duplicates=sum(c - 1 for c in per_title.values()),
                    error=first_error(proc.stdout),
                )
            )
            if proc.returncode == 0 and not report.runs[-1].missing:
                report.converged_after = n
                break
        report.injected = emu.fault_counts()
    return report


# ---------------------------------------------------------------- output


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; text left-aligned, figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        padded = []
        for i, cell in enumerate(cells):
            padded.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(rows: list[Row], refreshes: list[dict[str, Any]], faults: list[FaultReport]) -> str:
    headers = [
        "scenario",
        "api",
        "limiter",
        "cap/s",
        "par",
        "changes",
        "busiest",
        "wall s",
        "before s",
        "work s",
        "after s",
        "physical s",
        "wall/phys",
        "speed-up",
        "failed",
        "rate-limited",
        "calls",
        "exit",
    ]
    cells = [
        [
            r.scenario,
            r.api,
            r.limiter,
            f"{r.cap:g}",
            "-" if r.parallelism is None else str(r.parallelism),
            str(r.changes),
            str(r.busiest_calls),
            _num(r.wall_s),
            _num(r.before_s),
            _num(r.work_s),
            _num(r.after_s),
            _num(r.physical_s),
            _num(r.wall_ratio, 3),
            "-" if r.speedup is None else f"{r.speedup:.2f}x",
            str(r.failed),
            str(r.rate_limited),
            str(sum(r.calls.values())),
            str(r.exit_code),
        ]
        for r in rows
    ]
    text = table(headers, cells) if cells else ""
    repeated = [r for r in rows if r.walls_s and len(r.walls_s) > 1]
    if repeated:
        text += "\n\nEach dingsync row is the median of its runs; wall s of every run:"
        for r in repeated:
            walls = ", ".join(f"{w:.2f}" for w in r.walls_s or [])
            text += f"\n  {r.api} {r.scenario}, {r.limiter}, cap {r.cap:g}/s: {walls}"
    goals = targets(rows)
    if goals:
        text += (
            f"\n\nTargets: wall time at most {TARGET_RATIO:.2f}x the physical limit at "
            f"{TARGET_CAP:g}/s per API, {LATENCY_MS} ms per call:"
        )
        for goal in goals:
            text += (
                f"\n  {goal['api']} {goal['shape']}, {goal['limiter']}, {goal['records']} "
                f"records: {goal['wall_ratio']:.3f}x, {goal['failed']} failed, "
                f"{'met' if goal['met'] else 'MISSED'}"
            )
    for refresh in refreshes:
        by_api = ", ".join(f"{k} {v:+d}" for k, v in refresh["extra_calls_by_api"].items())
        text += (
            f"\n\nRefresh (drift check) before the apply, {refresh['api']}, cap "
            f"{refresh['cap']:g}/s: {refresh['extra_calls']:+d} calls ({by_api or 'none'}), "
            f"{refresh['extra_wall_s']:+.2f} s wall "
            f"(expected about {refresh['expected_formula']} = {refresh['expected_calls']} "
            "for a state of that many records)."
        )
    for report in faults:
        text += (
            f"\n\nFaults, {report.api}: {report.records} creates, {report.fault_rate:.0%} of "
            f"every call (token included) failing as {', '.join(report.kinds)}; injected "
            f"{dict(sorted(report.injected.items()))}\n"
        )
        fault_rows = [
            [
                str(n),
                str(run.exit_code),
                _num(run.wall_s),
                str(run.calls),
                str(run.open_records),
                str(run.missing),
                str(run.duplicates),
                run.error,
            ]
            for n, run in enumerate(report.runs, 1)
        ]
        headers = ["run", "exit", "wall s", "calls", "open", "missing", "duplicates", "error"]
        text += table(headers, fault_rows)
        after = report.converged_after
        total_calls = sum(run.calls for run in report.runs)
        total_wall = sum(run.wall_s for run in report.runs)
        duplicates = max((run.duplicates for run in report.runs), default=0)
        text += (
            f"\n{'converged after ' + str(after) + ' run(s)' if after else 'did not converge'}"
            f": {len(report.runs)} run(s), {total_calls} calls, {total_wall:.2f} s in all, "
            f"{duplicates} duplicate(s)"
        )
    return text


def targets(rows: list[Row]) -> list[dict[str, Any]]:
    """The dingsync rows at DingTalk's cap, each against the 1.10x target."""
    return [
        {
            "api": r.api,
            "shape": r.shape,
            "limiter": r.limiter,
            "cap": r.cap,
            "records": r.changes,
            "parallelism": r.parallelism,
            "wall_s": r.wall_s,
            "physical_s": r.physical_s,
            "wall_ratio": r.wall_ratio,
            "failed": r.failed,
            "target_ratio": TARGET_RATIO,
            "met": r.wall_ratio <= TARGET_RATIO and r.failed == 0,
        }
        for r in rows
        if r.max_qps is not None and r.cap == TARGET_CAP and "+refresh" not in r.scenario
    ]


# ---------------------------------------------------------------- main


def progress(row: Row) -> None:
    """One line per finished row on stderr: a full run takes minutes."""
    print(
        f"{row.api} {row.scenario} {row.limiter} {row.cap:g}/s p{row.parallelism or '-'}: "
        f"{row.wall_s:.2f} s, {row.wall_ratio:.3f}x, {row.failed} failed, "
        f"{row.rate_limited} rate-limited",
        file=sys.stderr,
        flush=True,
    )


def median_run(runs: list[Row]) -> Row:
    """The run of median wall time, with every run's wall time; a failed run wins."""
    failed = [r for r in runs if r.failed or r.exit_code]
    chosen = failed[0] if failed else sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    chosen.walls_s = [r.wall_s for r in runs]
    return chosen


def scenarios(args: argparse.Namespace, api: Api) -> tuple[list[Row], dict[str, Any] | None]:
    """Every cap, limiter, shape and parallelism on one API; its baseline and refresh rows."""
    n, timeout = args.records, args.timeout
    rows: list[Row] = []
    for cap in args.caps:
        for limiter in args.limiters:
            for shape in args.shapes:
                for parallelism in args.parallelism:
                    runs = [
                        run_shape(api, shape, n, cap, limiter, parallelism, False, timeout)
                        for _ in range(args.repeat)
                    ]
                    rows.append(median_run(runs))
                    progress(rows[-1])
            if "creates" in args.shapes and not args.skip_baseline:
                base = run_baseline(api, n, cap, limiter, timeout)
                for row in rows:
                    if row.cap == cap and row.limiter == limiter and row.shape == "creates":
                        row.speedup = base.wall_s / row.wall_s
                rows.append(base)
                progress(base)
    refresh = None
    if not args.skip_refresh and "creates" in args.shapes:
        cap, limiter, parallelism = args.caps[0], args.limiters[0], args.parallelism[0]
        without = next(
            r
            for r in rows
            if (r.cap, r.limiter, r.shape, r.parallelism)
            == (cap, limiter, "creates", resolved(parallelism, cap))
        )
        with_refresh = run_shape(api, "creates", n, cap, limiter, parallelism, True, timeout)
        rows.append(with_refresh)
        progress(with_refresh)
        names = sorted(set(with_refresh.calls) | set(without.calls))
        extra = {
            name: with_refresh.calls.get(name, 0) - without.calls.get(name, 0)
            for name in names
            if with_refresh.calls.get(name, 0) != without.calls.get(name, 0)
        }
        # The workrecord list is per user; the v1.0 one is per creator (one here).
        if api is V1_API:
            formula, listers = f"creators + records/{api.list_page}", 1
        else:
            formula, listers = f"users + records/{api.list_page}", len(userids_for(n))
        refresh = {
            "api": api.name,
            "cap": cap,
            "parallelism": resolved(parallelism, cap),
            "extra_calls": sum(with_refresh.calls.values()) - sum(without.calls.values()),
            "extra_calls_by_api": extra,
            "extra_wall_s": with_refresh.wall_s - without.wall_s,
            "expected_formula": formula,
            "expected_calls": listers + math.ceil(n / api.list_page),
        }
    return rows, refresh


def _names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [x for x in names if x not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--api",
        choices=(*APIS, "both"),
        default="both",
        help="the DingTalk API dingsync writes to: workrecord (legacy), todo (v1.0) or both",
    )
    parser.add_argument("--records", type=int, default=300, help="changes per plan (300)")
    parser.add_argument(
        "--caps",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[20.0, 100.0],
        help="emulator caps per API, comma-separated; dingsync gets --max-qps = cap (20,100)",
    )
    parser.add_argument(
        "--shapes",
        type=_names(SHAPES),
        default=list(SHAPES),
        help=f"plan shapes, comma-separated ({','.join(SHAPES)})",
    )
    parser.add_argument(
        "--limiters",
        type=_names(LIMITERS),
        default=list(LIMITERS),
        help=f"the emulator's ways of counting calls, comma-separated ({','.join(LIMITERS)})",
    )
    parser.add_argument(
        "--parallelism",
        type=lambda s: [None if x == "default" else int(x) for x in s.split(",")],
        default=[None],
        help="values of dingsync --parallelism to try, comma-separated; 'default' (the "
        "default) leaves dingsync its own, which follows the cap",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each dingsync scenario; the table shows the median run (3)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="no baseline loop")
    parser.add_argument("--skip-refresh", action="store_true", help="no run with the refresh")
    parser.add_argument(
        "--faults", action="store_true", help="also run the fault scenario (100 creates, per API)"
    )
    parser.add_argument("--faults-only", action="store_true", help="run only the fault scenario")
    parser.add_argument("--fault-runs", type=int, default=4, help="applies at most (4)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault draws (1)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed per subprocess (300)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--baseline-worker", metavar="TASK_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.records < 2:
        parser.error("--records must be at least 2")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.baseline_worker:
        return baseline_worker(args.baseline_worker)
    compile_checkout()
    apis = list(APIS.values()) if args.api == "both" else [APIS[args.api]]
    rows: list[Row] = []
    refreshes: list[dict[str, Any]] = []
    faults: list[FaultReport] = []
    for api in apis:
        if not args.faults_only:
            api_rows, refresh = scenarios(args, api)
            rows += api_rows
            if refresh is not None:
                refreshes.append(refresh)
        if args.faults or args.faults_only:
            report = run_faults(api, args.parallelism[0], args.fault_runs, args.seed, args.timeout)
            faults.append(report)
            print(
                f"{api.name} faults: converged after {report.converged_after} run(s)",
                file=sys.stderr,
                flush=True,
            )
    ok = all(r.failed == 0 for r in rows if r.max_qps)
    for report in faults:
        ok = ok and report.converged_after is not None
        ok = ok and not any(run.duplicates for run in report.runs)
    if args.json:
        doc = {
            "benchmark": "apply",
            "backend": args.api,  # workrecord, todo or both; each row names its api
            "apis": [api.name for api in apis],
            "latency_ms": LATENCY_MS,
            "userids": len(userids_for(args.records)),
            "rows": [asdict(r) for r in rows],
            "targets": targets(rows),
            # "refresh" and "faults" keep their one-API shape (the first API measured);
            # the *_by_api maps hold every API's.
            "refresh": refreshes[0] if refreshes else None,
            "refresh_by_api": {r["api"]: r for r in refreshes},
            "faults": asdict(faults[0]) if faults else None,
            "faults_by_api": {f.api: asdict(f) for f in faults},
            "ok": ok,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        users = len(userids_for(args.records))
        names = " and ".join(API_TITLES[api.name] for api in apis)
        if rows:
            print(
                f"apply of {args.records} changes per plan over {users} userids, {names}; "
                f"emulator on 127.0.0.1, {LATENCY_MS} ms per call; physical = busiest API "
                "call's count / cap"
            )
            print()
        print(render(rows, refreshes, faults).lstrip("\n"))
        if not ok:
            print("\nSome dingsync run failed records, did not converge or duplicated one.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
