"""How close ``dingsync apply`` comes to DingTalk's rate limit, and what a plain loop does.

Run from the repository root::

    python benchmarks/bench_apply.py            # the table
    python benchmarks/bench_apply.py --json     # one JSON document

Every scenario starts a fresh built-in emulator in this process on 127.0.0.1 (50 ms per
call, the per-API cap under test), writes a task file of ``--records`` to-dos into a temp
folder, and runs ``dingsync apply -y`` there as a real subprocess, pointed at the emulator
with ``DINGSYNC_ENDPOINT`` and the emulator's app in ``DINGTALK_APP_KEY``/``_SECRET``.

The baseline is what a simple script does: one ``requests.get`` for the token, then one
blocking ``requests.post`` to ``workrecord/add`` per task, in sequence, no retries. It runs
as a subprocess too (this file with ``--baseline-worker``), so that both sides pay for an
interpreter start and neither shares a GIL with the emulator.

Each dingsync scenario runs ``--repeat`` times (3); the table shows the median run.
Figures, per scenario:

* wall: from spawning the subprocess to its exit;
* add phase: first to last record stored, from the emulator's ``created_at`` stamps;
  before: spawn to the first record (interpreter start, imports, load, plan, token);
  after: last record to exit (final state write, summary);
* adds/s: records stored per second of the add phase, ``(records - 1) / add phase``;
* physical: ``records / cap``, the least time the cap allows; wall/phys is the target ratio;
* rate-limited: rate-limit answers (88/90018) seen, counted by the emulator as add calls it
  received minus records it stored (nothing else is refused here: no faults, unique
  titles, at most 75 to-dos per userid under the daily cap of 100) and cross-checked
  against the client's own ``-v`` log, which names every answer's errcode.
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
import time
from dataclasses import asdict
from dataclasses import dataclass
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


@dataclass
class Row:
    """One measured scenario."""

    scenario: str
    cap: float
    max_qps: float | None
    parallelism: int | None
    records: int
    wall_s: float
    add_phase_s: float
    before_s: float  # spawn to first record stored: start-up, load, plan, token
    after_s: float  # last record stored to exit: final state write, output
    adds_per_s: float
    physical_s: float
    wall_ratio: float
    speedup: float | None
    failed: int
    rate_limited: int
    rate_limited_log: int | None
    calls: dict[str, int]
    exit_code: int
    walls_s: list[float] | None = None  # every run's wall time, when repeated


# ---------------------------------------------------------------- inputs


def userids_for(records: int) -> list[str]:
    users = max(1, math.ceil(records / RECORDS_PER_USER))
    return [f"bench-user-{n:02d}" for n in range(users)]


def write_task_file(folder: Path, records: int) -> Path:
    """``records`` separate tasks, spread round-robin over enough userids."""
    users = userids_for(records)
    lines = [
        "version: 1",
        "defaults:",
        "  url: https://intranet.example.com/bench",
        "  source_name: 基准测试",
        "  originator_userid: bench-owner",
        "tasks:",
    ]
    for n in range(records):
        lines += [
            f"  - key: bench-{n:05d}",
            f"    userid: {users[n % len(users)]}",
            f"    title: 基准待办 {n:05d}",
            "    form:",
            f"      - {{title: 任务描述, content: 第 {n} 条基准待办}}",
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


def new_emulator(cap: float) -> Any:
    from dingsync.emulator import Emulator
    from dingsync.emulator import EmulatorConfig

    config = EmulatorConfig(apps={APP_KEY: APP_SECRET}, qps=cap, latency_ms=LATENCY_MS)
    return Emulator(config)


# ---------------------------------------------------------------- measuring


@dataclass
class Phases:
    """Where the wall time went, from the emulator's stamps (both clocks are ``time.time``)."""

    add_phase_s: float
    adds_per_s: float
    before_s: float
    after_s: float


def phases(records: list[dict[str, Any]], spawned: float, exited: float) -> Phases:
    """The add phase (first to last stored record), its rate, and the time around it."""
    stamps = sorted(float(r["created_at"]) for r in records)
    if len(stamps) < 2:
        return Phases(0.0, 0.0, exited - spawned, 0.0)
    span = stamps[-1] - stamps[0]
    rate = (len(stamps) - 1) / span if span > 0 else math.inf
    return Phases(span, rate, stamps[0] - spawned, exited - stamps[-1])


@dataclass
class TimedRun:
    proc: subprocess.CompletedProcess[str]
    wall: float
    spawned: float
    exited: float
    calls: dict[str, int]
    stored: list[dict[str, Any]]


def timed_run(command: list[str], folder: Path, cap: float, timeout: float) -> TimedRun:
    """Run one subprocess against a fresh emulator with this cap; time it, read the emulator."""
    with new_emulator(cap) as emu:
        spawned = time.time()
        started = time.perf_counter()
        proc = subprocess.run(
            command,
            cwd=folder,
            env=child_env(emu.url),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        wall = time.perf_counter() - started
        exited = time.time()
        calls = {k: v for k, v in emu.call_counts().items() if v}
        return TimedRun(proc, wall, spawned, exited, calls, emu.records())


def run_dingsync(
    scenario: str,
    records: int,
    cap: float,
    max_qps: float,
    parallelism: int,
    refresh: bool,
    timeout: float,
) -> Row:
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
    ]
    if not refresh:
        command.append("--no-refresh")
    run = run_on_task_file(command, records, cap, timeout)
    proc = run.proc
    try:
        doc = json.loads(proc.stdout)
        failed = len(doc["result"]["failed"]) + (1 if doc["result"]["fatal"] else 0)
    except (ValueError, KeyError, TypeError):
        sys.stderr.write(proc.stderr[-3000:])
        message = f"{scenario}: dingsync apply gave no JSON (exit {proc.returncode})"
        raise SystemExit(message) from None
    # A record neither stored nor reported as failed would be a silent loss: count it too.
    failed = max(failed, records - len(run.stored))
    rate_limited_log = len(RATE_LIMIT_LOG.findall(proc.stderr))
    return measured_row(scenario, run, records, cap, failed, rate_limited_log, max_qps, parallelism)


def run_baseline(records: int, cap: float, timeout: float) -> Row:
    command = [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", TASK_FILE]
    run = run_on_task_file(command, records, cap, timeout)
    try:
        summary = json.loads(run.proc.stdout)
    except ValueError:
        sys.stderr.write(run.proc.stderr[-3000:])
        raise SystemExit(f"baseline: the worker failed (exit {run.proc.returncode})") from None
    failed, rate_limited_log = int(summary["failed"]), int(summary["rate_limited"])
    return measured_row("baseline loop", run, records, cap, failed, rate_limited_log)


def run_on_task_file(command: list[str], records: int, cap: float, timeout: float) -> TimedRun:
    """``command`` run in a temp folder holding a task file of ``records`` to-dos."""
    with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp:
        folder = Path(tmp)
        write_task_file(folder, records)
        return timed_run(command, folder, cap, timeout)


def measured_row(
    scenario: str,
    run: TimedRun,
    records: int,
    cap: float,
    failed: int,
    rate_limited_log: int,
    max_qps: float | None = None,
    parallelism: int | None = None,
) -> Row:
    """The figures of one run; rate-limited answers are add calls that stored nothing."""
    times = phases(run.stored, run.spawned, run.exited)
    physical = records / cap
    return Row(
        scenario=scenario,
        cap=cap,
        max_qps=max_qps,
        parallelism=parallelism,
        records=len(run.stored),
        wall_s=run.wall,
        add_phase_s=times.add_phase_s,
        before_s=times.before_s,
        after_s=times.after_s,
        adds_per_s=times.adds_per_s,
        physical_s=physical,
        wall_ratio=run.wall / physical,
        speedup=None,
        failed=failed,
        rate_limited=run.calls.get("workrecord/add", 0) - len(run.stored),
        rate_limited_log=rate_limited_log,
        calls=run.calls,
        exit_code=run.proc.returncode,
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


def render(rows: list[Row], refresh: dict[str, Any] | None) -> str:
    headers = [
        "scenario",
        "cap/s",
        "max-qps",
        "par",
        "records",
        "wall s",
        "before s",
        "add phase s",
        "after s",
        "adds/s",
        "physical s",
        "wall/phys",
        "speed-up",
        "failed",
        "rate-limited",
        "calls",
        "exit",
    ]
    cells = []
    for r in rows:
        limited = str(r.rate_limited)
        if r.rate_limited_log is not None and r.rate_limited_log != r.rate_limited:
            limited += f" (log {r.rate_limited_log})"
        cells.append(
            [
                r.scenario,
                f"{r.cap:g}",
                "-" if r.max_qps is None else f"{r.max_qps:g}",
                "-" if r.parallelism is None else str(r.parallelism),
                str(r.records),
                _num(r.wall_s),
                _num(r.before_s),
                _num(r.add_phase_s),
                _num(r.after_s),
                _num(r.adds_per_s, 1),
                _num(r.physical_s),
                _num(r.wall_ratio, 3),
                "-" if r.speedup is None else f"{r.speedup:.2f}x",
                str(r.failed),
                limited,
                str(sum(r.calls.values())),
                str(r.exit_code),
            ]
        )
    text = table(headers, cells)
    repeated = [r for r in rows if r.walls_s and len(r.walls_s) > 1]
    if repeated:
        text += "\n\nEach dingsync row is the median of its runs; wall s of every run:"
        for r in repeated:
            walls = ", ".join(f"{w:.2f}" for w in r.walls_s or [])
            text += f"\n  {r.scenario}, cap {r.cap:g}/s: {walls}"
    if refresh is not None:
        by_api = ", ".join(f"{k} {v:+d}" for k, v in refresh["extra_calls_by_api"].items())
        text += (
            f"\n\nRefresh (drift check) after the apply, cap {refresh['cap']:g}/s: "
            f"+{refresh['extra_calls']} calls ({by_api or 'none'}), "
            f"+{refresh['extra_wall_s']:.2f} s wall "
            f"(expected about users + records/50 = {refresh['expected_calls']})."
        )
    return text


# ---------------------------------------------------------------- main


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
        group: list[Row] = []
        for parallelism in args.parallelism:
            name = f"dingsync p{parallelism}"
            runs = [
                run_dingsync(name, n, cap, cap, parallelism, False, timeout)
                for _ in range(args.repeat)
            ]
            group.append(median_run(runs))
        if not args.skip_baseline:
            base = run_baseline(n, cap, timeout)
            for row in group:
                row.speedup = base.wall_s / row.wall_s
            group.append(base)
        rows += group
    refresh = None
    if not args.skip_refresh:
        cap = args.caps[0]
        parallelism = args.parallelism[0]
        without = next(r for r in rows if r.cap == cap and r.parallelism == parallelism)
        with_refresh = run_dingsync(
            f"dingsync p{parallelism} +refresh", n, cap, cap, parallelism, True, timeout
        )
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=300, help="to-dos to create (300)")
    parser.add_argument(
        "--caps",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[20.0, 100.0],
        help="emulator caps per API, comma-separated; dingsync gets --max-qps = cap (20,100)",
    )
    parser.add_argument(
        "--parallelism",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[8, 16],
        help="values of dingsync --parallelism to try, comma-separated (8,16)",
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
    rows, refresh = scenarios(args)
    ok = all(r.failed == 0 and r.records == args.records for r in rows if r.max_qps)
    if args.json:
        doc = {
            "benchmark": "apply",
            "latency_ms": LATENCY_MS,
            "userids": len(userids_for(args.records)),
            "rows": [asdict(r) for r in rows],
            "refresh": refresh,
            "ok": ok,
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        users = len(userids_for(args.records))
        print(
            f"apply of {args.records} to-dos over {users} userids; emulator on 127.0.0.1, "
            f"{LATENCY_MS} ms per call; physical = records / cap"
        )
        print()
        print(render(rows, refresh))
        if not ok:
            print("\nSome dingsync run lost or failed records: see the failed column.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
