"""What a refresh costs in metered calls: 1,000 records across 100 users, on both APIs.

For the legacy workrecord API: applies the records against the built-in emulator, then
runs `dingsync drift` twice: with the documented list call (getbyuserid) and with
`--lookup get` against an emulator that serves workrecord/get; then a no-op `apply` (which
refreshes first) and an `apply` after the state file was deleted (which must adopt every
record and create none).

For the v1.0 to-do API (`api: todo`, every to-do created as one `creator_userid`): the
same `drift`, no-op `apply` and lost-state `apply`. Its refresh lists the creator's to-dos
(`todo/orgTasksQuery`, 20 a page), whatever the number of assignees; `--lookup` has no
meaning there.

Prints the calls each made, counted by the emulator, and its seconds (a fresh
`python -m dingsync`, no rate limit, no latency).

    python benchmarks/bench_drift.py [--api workrecord|todo|both] [--records 1000]
                                     [--users 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkout import child_env  # first: puts this checkout on sys.path
from checkout import compile_checkout

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig

KEY, SECRET = "bench-key", "bench-secret"
APIS = ("workrecord", "todo")
CREATOR = "bench-owner"  # the one creator_userid of the v1.0 file
# Calls DingTalk does not meter: the tokens and the contacts call (userid -> unionId).
NOT_METERED = frozenset({"gettoken", "oauth2/accessToken", "v2/user/get"})
LIST_PAGE = {"workrecord": 50, "todo": 20}  # records per list call (the emulator's as DingTalk's)


def write_tasks(path: Path, records: int, users: int, api: str = "workrecord") -> None:
    lines = ["version: 1"]
    if api == "todo":
        lines += ["api: todo", "defaults:", f"  creator_userid: {CREATOR}"]
    else:
        lines += ["defaults:"]
    lines += ["  url: https://intranet.example.com/t", "tasks:"]
    for i in range(records):
        lines += [
            f"  - key: task-{i:05d}",
            f"    userid: user{i % users:03d}",
            f"    title: 第{i}项",
            f"    description: 编号 {i}" if api == "todo" else f"    form: {{说明: 编号 {i}}}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def dingsync(workdir: Path, url: str, *args: str) -> float:
    return run(workdir, url, *args)[0]


def run(workdir: Path, url: str, *args: str) -> tuple[float, str]:
    """The seconds of one ``python -m dingsync`` and its standard output."""
    env = child_env(DINGTALK_APP_KEY=KEY, DINGTALK_APP_SECRET=SECRET, DINGSYNC_ENDPOINT=url)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dingsync", *args],
        cwd=workdir,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return time.perf_counter() - started, proc.stdout


def row(
    api: str, name: str, records: int, users: int, calls: dict[str, int], seconds: float
) -> dict[str, object]:
    return {
        "api": api,
        "lookup": name,
        "records": records,
        "users": users,
        "metered_calls": sum(n for call, n in calls.items() if call not in NOT_METERED),
        "calls": {k: v for k, v in calls.items() if v},
        "seconds": round(seconds, 2),
    }


def measure(records: int, users: int, lookup: str, api: str = "workrecord") -> dict[str, object]:
    """A drift check after a first apply; ``lookup`` is list or get (workrecord only)."""
    config = EmulatorConfig(apps={KEY: SECRET}, qps=0, serve_workrecord_get=(lookup == "get"))
    with tempfile.TemporaryDirectory() as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        write_tasks(workdir / "tasks.yaml", records, users, api)
        dingsync(workdir, emulator.url, "apply", "-y", "--no-refresh", "--max-qps", "0")
        before = dict(emulator.call_counts())
        drift = ["drift", "--max-qps", "0"]
        if api == "workrecord":
            drift += ["--lookup", lookup]
        seconds = dingsync(workdir, emulator.url, *drift)
        after = emulator.call_counts()
        calls = {name: after[name] - before.get(name, 0) for name in after}
        name = lookup if api == "workrecord" else "drift"
        return row(api, name, records, users, calls, seconds)


def measure_apply(records: int, users: int, api: str = "workrecord") -> list[dict[str, object]]:
    """A no-op apply, then an apply whose state was lost: calls, creates and seconds."""
    config = EmulatorConfig(apps={KEY: SECRET}, qps=0)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        write_tasks(workdir / "tasks.yaml", records, users, api)
        dingsync(workdir, emulator.url, "apply", "-y", "--max-qps", "0")
        stored = emulator.todo_records if api == "todo" else emulator.records
        for name in ("no-op apply", "apply, state lost"):
            if name == "apply, state lost":
                for leftover in (workdir / "state").glob("tasks.state.json*"):
                    leftover.unlink()
            before = dict(emulator.call_counts())
            seconds, out = run(workdir, emulator.url, "apply", "-y", "--json", "--max-qps", "0")
            after = emulator.call_counts()
            calls = {call: after[call] - before.get(call, 0) for call in after}
            rows.append(row(api, name, records, users, calls, seconds))
            result = json.loads(out).get("result") or {}
            for outcome in ("created", "adopted"):
                rows[-1][outcome] = len(result.get(outcome) or [])
        rows[-1]["records_on_dingtalk"] = len(stored())
    return rows


def expected(api: str, records: int, users: int) -> str:
    listers = 1 if api == "todo" else users  # the v1.0 list is the creator's, one here
    who = "creators" if api == "todo" else "users"
    page = LIST_PAGE[api]
    return f"{who} + records/{page} = {listers + math.ceil(records / page)} list calls"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", choices=(*APIS, "both"), default="both")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    compile_checkout()
    apis = APIS if args.api == "both" else (args.api,)
    rows: list[dict[str, object]] = []
    for api in apis:
        if api == "workrecord":
            rows += [measure(args.records, args.users, lookup) for lookup in ("list", "get")]
        else:
            rows.append(measure(args.records, args.users, "list", api))
        rows += measure_apply(args.records, args.users, api)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    print(f"drift refresh of {args.records} records across {args.users} users")
    print(f"{'api':<12}{'run':<20}{'metered calls':>15}{'seconds':>10}  by API")
    for r in rows:
        print(
            f"{r['api']!s:<12}{r['lookup']!s:<20}{r['metered_calls']!s:>15}"
            f"{r['seconds']!s:>10}  {r['calls']}"
        )
    for api in apis:
        lost = [r for r in rows if r["api"] == api and r["lookup"] == "apply, state lost"]
        print(
            f"{api}: after the lost-state apply, {lost[0]['adopted']} adopted, "
            f"{lost[0]['created']} created, {lost[0]['records_on_dingtalk']} records on "
            f"DingTalk; expected with the list call: about "
            f"{expected(api, args.records, args.users)}"
        )


if __name__ == "__main__":
    main()
