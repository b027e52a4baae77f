"""How close ``dingsync apply`` comes to DingTalk's rate limit, in every plan shape.

Run from the repository root::

    python benchmarks/bench_apply.py            # the table
    python benchmarks/bench_apply.py --json     # one JSON document

Every scenario starts a fresh built-in emulator in this process on 127.0.0.1 (50 ms per
call, the per-API cap under test, a ``bucket`` or ``sliding`` limiter), writes a task file
into a temp folder, and runs ``dingsync apply -y`` there as a real subprocess, pointed at
the emulator with ``DINGSYNC_ENDPOINT`` and the emulator's app in ``DINGTALK_APP_KEY``/
``_SECRET``. Only the legacy ``workrecord`` API is measured: it is the backend apply uses.

Plan shapes, each of ``--records`` (N) changes per API at most:

* ``creates``: N creates (N ``workrecord/add``);
* ``replaces``: N replaces (N adds and N ``workrecord/update``);
* ``mixed``: N creates and N completions of unrelated to-dos (N adds, N updates);
* ``completes``: N completions (N updates).

The shapes that change existing to-dos first create them in a setup run with no limit on
either side, then move the emulator's clock on by a day (DingTalk takes 100 new to-dos per
userid per day) and restore the cap. The physical limit of a plan is its busiest API's calls
divided by the cap: N / cap for every shape.

The baseline is what a simple script does: one ``requests.get`` for the token, then one
blocking ``requests.post`` to ``workrecord/add`` per task, in sequence, no retries. It runs
as a subprocess too (this file with ``--baseline-worker``), so that both sides pay for an
interpreter start and neither shares a GIL with the emulator.

The fault scenario (``--faults``) runs ``apply`` on 100 creates again and again, against
one emulator that fails 60% of all calls, token included: 15% each of HTTP 500, errcode -1,
a reset before the call is processed and a reset after the record was stored. It reports
runs until convergence, calls, seconds, records still missing after each run and
duplicates (addresses with more than one to-do).
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
RATE_LIMIT_LOG = re.compile(r"errcode=(?:88/)?(?:90018|90002|90005|90006)\b")
TASK_FILE = "tasks.yaml"
STATE_FILE = "state/tasks.state.json"
SHAPES = ("creates", "replaces", "mixed", "completes")
LIMITERS = ("bucket", "sliding")
ADD = "workrecord/add"
UPDATE = "workrecord/update"
DAY_SECONDS = 86400.0
FAULT_RECORDS = 100
FAULT_RATE = 0.6  # four kinds drawn evenly: 15% each
TIMED_OUT = -9  # the exit code shown for a child killed at --timeout
FAULT_KINDS = ("http500", "errcode-1", "reset", "lost_ack")


@dataclass
class Row:
    """One measured scenario."""

    scenario: str
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
    records: int
    fault_rate: float
    kinds: list[str]
    runs: list[FaultRun] = field(default_factory=list)
    converged_after: int | None = None
    injected: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- inputs


Task = tuple[str, str, str, str]  # key, userid, title, description


def userids_for(records: int) -> list[str]:
    users = max(1, math.ceil(records / RECORDS_PER_USER))
    return [f"bench-user-{n:02d}" for n in range(users)]


def bench_tasks(
    records: int, key: str = "bench", title: str = "基准待办", note: str = ""
) -> list[Task]:
    """``records`` separate tasks, spread round-robin over enough userids."""
    users = userids_for(records)
    return [
        (f"{key}-{n:05d}", users[n % len(users)], f"{title} {n:05d}", f"第 {n} 条基准待办{note}")
        for n in range(records)
    ]


KEEPER: Task = ("keeper", "bench-user-00", "保留待办", "一直保留")


def shape_tasks(shape: str, records: int) -> tuple[list[Task] | None, list[Task]]:
    """The setup run's tasks (None: no setup) and the measured run's, for a plan shape."""
    if shape == "creates":
        return None, bench_tasks(records)
    if shape == "replaces":
        return bench_tasks(records), bench_tasks(records, note="，已改")
    if shape == "mixed":
        # Other keys and other titles: the completions are unrelated to the creates.
        return bench_tasks(records, key="old", title="旧待办"), bench_tasks(records)
    if shape == "completes":
        # A task file holds one task at least: the keeper stays, the rest are completed.
        return [*bench_tasks(records), KEEPER], [KEEPER]
    raise ValueError(f"unknown shape {shape!r}")


def planned_calls(shape: str, records: int) -> dict[str, int]:
    adds = records if shape in ("creates", "replaces", "mixed") else 0
    updates = records if shape in ("replaces", "mixed", "completes") else 0
    return {ADD: adds, UPDATE: updates}


def write_task_file(folder: Path, tasks: list[Task]) -> Path:
    lines = [
        "version: 1",
        "defaults:",
        "  url: https://intranet.example.com/bench",
        "  source_name: 基准测试",
        "  originator_userid: bench-owner",
        "tasks:",
    ]
    for key, userid, title, description in tasks:
        lines += [
            f"  - key: {key}",
            f"    userid: {userid}",
            f"    title: {title}",
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
    """When the emulator received each add and update call (``time.time``, as the child's)."""

    def __init__(self, emulator: Any) -> None:
        self.stamps: list[float] = []
        self._lock = threading.Lock()
        gateway = emulator._gateway  # observing its own emulator
        handle: Callable[[Any], Any] = gateway.handle

        def observed(request: Any) -> Any:
            if request.path.endswith((ADD, UPDATE)):
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


def fail_token_calls(emulator: Any) -> None:
    """Let the token call draw faults like every other call (the emulator spares it)."""
    from dataclasses import replace

    gateway = emulator._gateway  # a fault it does not offer
    handle: Callable[[Any], Any] = gateway.handle

    def faulty(request: Any) -> Any:
        if request.path != "/gettoken":
            return handle(request)
        with gateway.store.lock:
            fault = gateway.settings.faults.draw(exclude=frozenset({"lockerror"}))
        if fault in ("http500", "errcode-1", "reset"):
            return gateway._fault_outcome(fault, "gettoken", gateway.settings.latency)
        outcome = handle(request)
        return replace(outcome, action="drop") if fault == "lost_ack" else outcome

    gateway.handle = faulty


# ---------------------------------------------------------------- measuring


def dingsync_command(max_qps: float, parallelism: int, refresh: bool) -> list[str]:
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
        "--parallelism",
        str(parallelism),
        "--force",  # the shapes replace or complete every record: past the safety threshold
    ]
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


def run_shape(
    shape: str,
    records: int,
    cap: float,
    limiter: str,
    parallelism: int,
    refresh: bool,
    timeout: float,
) -> Row:
    """One measured apply of ``shape``, after its setup run (if any) on the same emulator."""
    setup, measured = shape_tasks(shape, records)
    scenario = f"{shape}{' +refresh' if refresh else ''}"
    emulator = new_emulator(cap, limiter)
    arrivals = Arrivals(emulator)
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp, emulator as emu:
        folder = Path(tmp)
        if setup is not None:
            emu.set_faults(qps=0)
            write_task_file(folder, setup)
            command = dingsync_command(0, 16, refresh=False)
            proc, *_ = run_child(command, folder, emu.url, timeout)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"{scenario}: the setup run failed (exit {proc.returncode})")
            emu.advance_clock(DAY_SECONDS)
            emu.set_faults(qps=cap)
        write_task_file(folder, measured)
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
    doc = apply_document(proc, scenario)
    result = doc["result"]
    done = len(result.get("created", [])) + len(result.get("replaced", []))
    done += len(result.get("completed", []))
    # A replace completes its old to-do inside the same change: one change, two calls.
    expected = records
    failed = len(result["failed"]) + len(result.get("skipped", {}))
    failed += 1 if result.get("fatal") else 0
    failed = max(failed, expected - done)
    busiest = max(planned_calls(shape, records).values())
    physical = busiest / cap
    first, last = span if span is not None else (spawned, spawned)
    return Row(
        scenario=scenario,
        shape=shape,
        limiter=limiter,
        cap=cap,
        max_qps=cap,
        parallelism=parallelism,
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


def run_baseline(records: int, cap: float, limiter: str, timeout: float) -> Row:
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", TASK_FILE]
    emulator = new_emulator(cap, limiter)
    arrivals = Arrivals(emulator)
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp, emulator as emu:
        folder = Path(tmp)
        write_task_file(folder, bench_tasks(records))
        proc, wall, spawned, exited = run_child(command, folder, emu.url, timeout)
        calls = {k: v for k, v in emu.call_counts().items() if v}
        stored = len(emu.records())
        span = arrivals.span()
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"baseline: the worker failed (exit {proc.returncode})") from None
    first, last = span if span is not None else (spawned, spawned)
    physical = records / cap
    return Row(
        scenario="baseline loop",
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
    answer = requests.get(
        f"{endpoint}/gettoken",
        params={
            "appkey": os.environ["DINGTALK_APP_KEY"],
            "appsecret": os.environ["DINGTALK_APP_SECRET"],
        },
        timeout=10,
    ).json()
    token = answer["access_token"]
    defaults = doc.get("defaults") or {}
    failed = rate_limited = 0
    for task in doc["tasks"]:
        merged = {**defaults, **task}
        userids = merged.get("userids") or [merged["userid"]]
        for userid in userids:
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


def run_faults(parallelism: int, max_runs: int, seed: int, timeout: float) -> FaultReport:
    """Apply 100 creates again and again against one heavily failing emulator."""
    report = FaultReport(FAULT_RECORDS, FAULT_RATE, list(FAULT_KINDS))
    tasks = bench_tasks(FAULT_RECORDS)
    titles = {title for _, _, title, _ in tasks}
    emulator = new_emulator(20.0, fault_rate=FAULT_RATE, fault_kinds=FAULT_KINDS, seed=seed)
    fail_token_calls(emulator)
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp, emulator as emu:
        folder = Path(tmp)
        write_task_file(folder, tasks)
        command = dingsync_command(20.0, parallelism, refresh=True)
        for n in range(1, max_runs + 1):
            before = sum(emu.call_counts().values())
            proc, wall, _, _ = run_child(command, folder, emu.url, timeout)
            stored = [r for r in emu.records() if r["title"] in titles]
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


def render(rows: list[Row], refresh: dict[str, Any] | None, faults: FaultReport | None) -> str:
    headers = [
        "scenario",
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
            text += f"\n  {r.scenario}, {r.limiter}, cap {r.cap:g}/s: {walls}"
    if refresh is not None:
        by_api = ", ".join(f"{k} {v:+d}" for k, v in refresh["extra_calls_by_api"].items())
        text += (
            f"\n\nRefresh (drift check) before the apply, cap {refresh['cap']:g}/s: "
            f"+{refresh['extra_calls']} calls ({by_api or 'none'}), "
            f"+{refresh['extra_wall_s']:.2f} s wall "
            f"(expected about users + records/50 = {refresh['expected_calls']})."
        )
    if faults is not None:
        text += (
            f"\n\nFaults: {faults.records} creates, {faults.fault_rate:.0%} of every call "
            f"(token included) failing as {', '.join(faults.kinds)}; injected "
            f"{dict(sorted(faults.injected.items()))}\n"
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
            for n, run in enumerate(faults.runs, 1)
        ]
        headers = ["run", "exit", "wall s", "calls", "open", "missing", "duplicates", "error"]
        text += table(headers, fault_rows)
        after = faults.converged_after
        total_calls = sum(run.calls for run in faults.runs)
        total_wall = sum(run.wall_s for run in faults.runs)
        text += (
            f"\n{'converged after ' + str(after) + ' run(s)' if after else 'did not converge'}"
            f": {total_calls} calls, {total_wall:.2f} s in all"
        )
    return text


# ---------------------------------------------------------------- main


def progress(row: Row) -> None:
    """One line per finished row on stderr: a full run takes minutes."""
    print(
        f"{row.scenario} {row.limiter} {row.cap:g}/s p{row.parallelism}: {row.wall_s:.2f} s, "
        f"{row.wall_ratio:.3f}x, {row.failed} failed, {row.rate_limited} rate-limited",
        file=sys.stderr,
        flush=True,
    )


def median_run(runs: list[Row]) -> Row:
    """The run of median wall time, with every run's wall time; a failed run wins."""
    failed = [r for r in runs if r.failed or r.exit_code]
    chosen = failed[0] if failed else sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]
    chosen.walls_s = [r.wall_s for r in runs]
    return chosen


def scenarios(args: argparse.Namespace) -> tuple[list[Row], dict[str, Any] | None]:
    n, timeout = args.records, args.timeout
    rows: list[Row] = []
    for cap in args.caps:
        for limiter in args.limiters:
            for shape in args.shapes:
                for parallelism in args.parallelism:
                    runs = [
                        run_shape(shape, n, cap, limiter, parallelism, False, timeout)
                        for _ in range(args.repeat)
                    ]
                    rows.append(median_run(runs))
                    progress(rows[-1])
            if "creates" in args.shapes and not args.skip_baseline:
                base = run_baseline(n, cap, limiter, timeout)
                for row in rows:
                    if row.cap == cap and row.limiter == limiter and row.shape == "creates":
                        row.speedup = base.wall_s / row.wall_s
                rows.append(base)
    refresh = None
    if not args.skip_refresh and "creates" in args.shapes:
        cap, limiter, parallelism = args.caps[0], args.limiters[0], args.parallelism[0]
        without = next(
            r
            for r in rows
            if (r.cap, r.limiter, r.shape, r.parallelism) == (cap, limiter, "creates", parallelism)
        )
        with_refresh = run_shape("creates", n, cap, limiter, parallelism, True, timeout)
        rows.append(with_refresh)
        apis = sorted(set(with_refresh.calls) | set(without.calls))
        extra = {
            api: with_refresh.calls.get(api, 0) - without.calls.get(api, 0)
            for api in apis
            if with_refresh.calls.get(api, 0) != without.calls.get(api, 0)
        }
        refresh = {
            "cap": cap,
            "parallelism": parallelism,
            "extra_calls": sum(with_refresh.calls.values()) - sum(without.calls.values()),
            "extra_calls_by_api": extra,
            "extra_wall_s": with_refresh.wall_s - without.wall_s,
            "expected_calls": len(userids_for(n)) + math.ceil(n / 50),
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
        type=lambda s: [int(x) for x in s.split(",")],
        default=[8],
        help="values of dingsync --parallelism to try, comma-separated (8, its default)",
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
        "--faults", action="store_true", help="also run the fault scenario (100 creates)"
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
    rows: list[Row] = []
    refresh = None
    if not args.faults_only:
        rows, refresh = scenarios(args)
    faults = None
    if args.faults or args.faults_only:
        faults = run_faults(args.parallelism[0], args.fault_runs, args.seed, args.timeout)
    ok = all(r.failed == 0 for r in rows if r.max_qps)
    if faults is not None:
        ok = ok and faults.converged_after is not None
        ok = ok and not any(run.duplicates for run in faults.runs)
    if args.json:
        doc = {
            "benchmark": "apply",
            "backend": "workrecord",
            "latency_ms": LATENCY_MS,
            "userids": len(userids_for(args.records)),
            "rows": [asdict(r) for r in rows],
            "refresh": refresh,
            "faults": None if faults is None else asdict(faults),
            "ok": ok,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        users = len(userids_for(args.records))
        print(
            f"apply of {args.records} changes per plan over {users} userids, legacy workrecord "
            f"API; emulator on 127.0.0.1, {LATENCY_MS} ms per call; physical = busiest API's "
            "calls / cap"
        )
        print()
        print(render(rows, refresh, faults))
        if not ok:
            print("\nSome dingsync run failed records, did not converge or duplicated one.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
