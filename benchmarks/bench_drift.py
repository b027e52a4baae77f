"""What a refresh costs in metered calls: 1,000 records across 100 users.

Applies the records against the built-in emulator, then runs `dingsync drift` twice:
with the documented list call (getbyuserid) and with `--lookup get` against an emulator
that serves workrecord/get; then a no-op `apply` (which refreshes first) and an `apply`
after the state file was deleted (which must adopt every record and create none).
Prints the calls each made, counted by the emulator.

    python benchmarks/bench_drift.py [--records 1000] [--users 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkout import child_env  # first: puts this checkout on sys.path

from dingsync.emulator import Emulator
from dingsync.emulator import EmulatorConfig

KEY, SECRET = "bench-key", "bench-secret"


def write_tasks(path: Path, records: int, users: int) -> None:
    lines = ["version: 1", "defaults:", "  url: https://intranet.example.com/t", "tasks:"]
    for i in range(records):
        lines += [
            f"  - key: task-{i:05d}",
            f"    userid: user{i % users:03d}",
            f"    title: 第{i}项",
            f"    form: {{说明: 编号 {i}}}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def dingsync(workdir: Path, url: str, *args: str) -> float:
    env = child_env(DINGTALK_APP_KEY=KEY, DINGTALK_APP_SECRET=SECRET, DINGSYNC_ENDPOINT=url)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dingsync", *args],
        cwd=workdir,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def measure(records: int, users: int, lookup: str) -> dict[str, object]:
    config = EmulatorConfig(apps={KEY: SECRET}, qps=0, serve_workrecord_get=(lookup == "get"))
    with tempfile.TemporaryDirectory() as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        write_tasks(workdir / "tasks.yaml", records, users)
        dingsync(workdir, emulator.url, "apply", "-y", "--no-refresh", "--max-qps", "0")
        before = dict(emulator.call_counts())
        seconds = dingsync(workdir, emulator.url, "drift", "--lookup", lookup, "--max-qps", "0")
        after = emulator.call_counts()
        calls = {api: after[api] - before.get(api, 0) for api in after}
        metered = sum(n for api, n in calls.items() if api != "gettoken")
        return {
            "lookup": lookup,
            "records": records,
            "users": users,
            "metered_calls": metered,
            "calls": {k: v for k, v in calls.items() if v},
            "seconds": round(seconds, 2),
        }


def measure_apply(records: int, users: int) -> list[dict[str, object]]:
    """A no-op apply, then an apply whose state was lost: calls, creates and seconds."""
    config = EmulatorConfig(apps={KEY: SECRET}, qps=0)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        write_tasks(workdir / "tasks.yaml", records, users)
        dingsync(workdir, emulator.url, "apply", "-y", "--max-qps", "0")
        for name in ("no-op apply", "apply, state lost"):
            if name == "apply, state lost":
                for leftover in (workdir / "state").glob("tasks.state.json*"):
                    leftover.unlink()
            before = dict(emulator.call_counts())
            seconds = dingsync(workdir, emulator.url, "apply", "-y", "--max-qps", "0")
            after = emulator.call_counts()
            calls = {api: after[api] - before.get(api, 0) for api in after}
            rows.append(
                {
                    "lookup": name,
                    "records": records,
                    "users": users,
                    "metered_calls": sum(n for api, n in calls.items() if api != "gettoken"),
                    "calls": {k: v for k, v in calls.items() if v},
                    "seconds": round(seconds, 2),
                }
            )
        rows[-1]["records_on_dingtalk"] = len(emulator.records())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(args.records, args.users, lookup) for lookup in ("list", "get")]
    rows += measure_apply(args.records, args.users)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"drift refresh of {args.records} records across {args.users} users")
    print(f"{'run':<20}{'metered calls':>15}{'seconds':>10}  by API")
    for row in rows:
        print(f"{row['lookup']:<20}{row['metered_calls']:>15}{row['seconds']:>10}  {row['calls']}")
    print(f"records on DingTalk after the lost-state apply: {rows[-1]['records_on_dingtalk']}")
    print(
        f"expected with the list call: about users + records/50 = {args.users + args.records // 50}"
    )


if __name__ == "__main__":
    main()
