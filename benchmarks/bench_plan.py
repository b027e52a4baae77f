"""Time and peak memory of ``dingsync validate`` and ``dingsync plan`` on large task files.

Run from the repository root::

    python benchmarks/bench_plan.py                       # 1,000, 10,000 and 100,000 records
    python benchmarks/bench_plan.py --sizes 1000,10000    # a subset
    python benchmarks/bench_plan.py --json                # one JSON document
    python benchmarks/bench_plan.py --profile             # cProfile, top 15 cumulative

For each size N it generates two task files in a temp folder:

* ``separate``: N tasks with one ``userid`` each;
* ``fan-out``: N / 1,000 tasks, each with the same 1,000 ``userids`` (block list);

and for each file runs, as separate subprocesses (``python -m dingsync``):

* ``validate``;
* ``plan`` against an empty state (no state file: every record is a create);
* ``plan`` against a full state, in which every record is already managed with the content
  the file asks for (built with ``StateStore`` and ``StateRecord``), so the plan is
  "No changes.".

``plan`` runs with ``--detailed-exitcode`` (exit 2 for the empty state, 0 for the full one,
which the benchmark checks) and its text output goes to /dev/null, so that a terminal
printing 100,000 lines does not dominate; ``--plan-format json`` measures the JSON document
instead (also to /dev/null). stderr is kept and shown on failure.

Wall time is from spawn to exit. Peak memory is the child's own ``ru_maxrss``, read from
``os.wait4`` for that very process, so each figure belongs to one child alone (unlike
``RUSAGE_CHILDREN``, which keeps the maximum of every child waited for so far).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkout import ROOT  # first: puts this checkout on sys.path
from checkout import child_env as checkout_env
from checkout import compile_checkout

FAN_OUT = 1000  # userids per task in the fan-out files
DEFAULT_SIZES = (1000, 10_000, 100_000)
SHAPES = ("separate", "fan-out")
EXPECTED_EXIT = {"validate": 0, "plan-empty": 2, "plan-full": 0}
CREATED_MS = 1_767_225_600_000  # a fixed moment for the state's records (2026-01-01)
CREATED_AT = "2026-01-01T00:00:00Z"


@dataclass
class Row:
    size: int
    shape: str
    tasks: int
    command: str
    wall_s: float  # median of the repeats
    wall_min_s: float
    peak_rss_mib: float  # largest of the repeats
    exit_code: int
    file_bytes: int
    state_bytes: int | None


# ---------------------------------------------------------------- inputs


def userid(n: int) -> str:
    return f"user{n:04d}"


def write_task_file(path: Path, size: int, shape: str) -> int:
    """Write a valid task file of ``size`` records; return its number of tasks."""
    lines = [
        "# yaml-language-server: $schema=../schemas/tasks.schema.json",
        "version: 1",
        "defaults:",
        "  url: https://intranet.example.com/onboarding",
        "  source_name: 入职流程",
        "  originator_userid: hr-owner",
        "tasks:",
    ]
    if shape == "separate":
        tasks = size
        for n in range(tasks):
            lines += [
                f"  - key: task-{n:06d}",
                f"    userid: {userid(n % FAN_OUT)}",
                f"    title: 入职任务 {n:06d}",
                f"    url: https://intranet.example.com/onboarding/{n}",
                "    form:",
                f"      - {{title: 任务描述, content: 完成第 {n} 项入职准备}}",
                "      - {title: 截止日期, content: 2026-12-31}",
            ]
    else:
        tasks = max(1, size // FAN_OUT)
        members = [f"      - {userid(u)}" for u in range(FAN_OUT)]
        for n in range(tasks):
            lines += [
                f"  - key: task-{n:06d}",
                "    userids:",
                *members,
                f"    title: 入职任务 {n:06d}",
                f"    url: https://intranet.example.com/onboarding/{n}",
                "    form:",
                f"      - {{title: 任务描述, content: 完成第 {n} 项入职准备}}",
                "      - {title: 截止日期, content: 2026-12-31}",
            ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tasks


def write_full_state(task_file: Path, state_file: Path) -> int:
    """A state managing every record of ``task_file`` with exactly the file's content."""
    from dingsync.loader import load_task_file
    from dingsync.model import State
    from dingsync.model import StateRecord
    from dingsync.model import biz_id_for
    from dingsync.state import StateStore

    loaded = load_task_file(task_file)
    state = State(lineage=str(uuid.uuid4()))
    for n, desired in enumerate(loaded.records):
        address = desired.address
        state.records[address] = StateRecord(
            key=desired.key,
            userid=desired.userid,
            record_id=f"record{n:032x}",
            biz_id=biz_id_for(state.lineage, address, 0),
            generation=0,
            content=desired.content,
            fingerprint=desired.content.fingerprint(),
            status=desired.status,
            create_time_ms=desired.create_time_ms or CREATED_MS,
            created_at=CREATED_AT,
            updated_at=CREATED_AT,
        )
        state.generations[address] = 0
    StateStore(state_file).save(state)
    return len(loaded.records)


# ---------------------------------------------------------------- measuring


def child_env() -> dict[str, str]:
    env = checkout_env(NO_COLOR="1")
    env.pop("GITHUB_STEP_SUMMARY", None)  # plan would append its markdown there
    for name in ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGSYNC_ENDPOINT"):
        env.pop(name, None)  # validate and plan are offline: prove it
    return env


# A minimal Python that forks the measured child, waits for it with wait4 and prints the
# child's own figures as JSON. It exists because Linux carries the parent's peak RSS into a
# forked (or vforked) child until exec: a child spawned straight from this benchmark, which
# grows while it builds big states, would inherit that peak. The launcher stays small (a
# bare interpreter, well under any dingsync child's peak), so the figure is the child's.
LAUNCHER = """
import json, os, sys, time
devnull = os.open(os.devnull, os.O_WRONLY)
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.dup2(devnull, 1)
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"wall": wall, "maxrss": usage.ru_maxrss, "code": code}))
"""


def measure_child(command: list[str], cwd: Path, timeout: float) -> tuple[float, float, int, str]:
    """Run one child through the launcher; wall seconds, its peak RSS in MiB, exit, stderr."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, *command],
            cwd=cwd,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,  # so that a timeout kills the child with the launcher
        )
        try:
            report, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"timed out after {timeout:g} s: {' '.join(command[1:])}") from None
        errors.seek(0)
        tail = errors.read()[-2000:].decode("utf-8", "replace")
    try:
        figures = json.loads(report)
    except ValueError:
        raise SystemExit(f"the launcher failed: {tail}") from None
    # ru_maxrss is in KiB on Linux (in bytes on macOS).
    maxrss = figures["maxrss"] / 1024 if sys.platform == "darwin" else figures["maxrss"]
    return figures["wall"], maxrss / 1024, int(figures["code"]), tail


def dingsync_command(command: str, plan_format: str) -> list[str]:
    base = [sys.executable, "-m", "dingsync"]
    if command == "validate":
        return [*base, "validate", "-f", "tasks.yaml"]
    state = "empty.state.json" if command == "plan-empty" else "full.state.json"
    return [
        *base,
        "plan",
        "-f",
        "tasks.yaml",
        "--state",
        state,
        "--detailed-exitcode",
        "--format",
        plan_format,
    ]


def measure_case(
    folder: Path, size: int, shape: str, args: argparse.Namespace, log: Any
) -> list[Row]:
    tasks = write_task_file(folder / "tasks.yaml", size, shape)
    file_bytes = (folder / "tasks.yaml").stat().st_size
    log(f"  {shape} {size}: building the full state…")
    records = write_full_state(folder / "tasks.yaml", folder / "full.state.json")
    if records != size:
        raise SystemExit(f"{shape} {size}: the file holds {records} records, not {size}")
    state_bytes = (folder / "full.state.json").stat().st_size
    rows = []
    for command, expected in EXPECTED_EXIT.items():
        walls, peaks = [], []
        code = expected
        for _ in range(args.repeat):
            wall, peak, code, tail = measure_child(
                dingsync_command(command, args.plan_format), folder, args.timeout
            )
            if code != expected:
                sys.stderr.write(tail)
                raise SystemExit(f"{shape} {size} {command}: exit {code}, expected {expected}")
            walls.append(wall)
            peaks.append(peak)
        log(f"  {shape} {size} {command}: {statistics.median(walls):.2f} s, {max(peaks):.0f} MiB")
        rows.append(
            Row(
                size=size,
                shape=shape,
                tasks=tasks,
                command=command,
                wall_s=statistics.median(walls),
                wall_min_s=min(walls),
                peak_rss_mib=max(peaks),
                exit_code=code,
                file_bytes=file_bytes,
                state_bytes=state_bytes if command == "plan-full" else None,
            )
        )
    return rows


def measure_startup(args: argparse.Namespace) -> Row:
    """``dingsync --version``: the floor under every other figure (interpreter, click)."""
    walls, peaks = [], []
    for _ in range(max(3, args.repeat)):
        wall, peak, _, _ = measure_child(
            [sys.executable, "-m", "dingsync", "--version"], ROOT, args.timeout
        )
        walls.append(wall)
        peaks.append(peak)
    return Row(0, "-", 0, "--version", statistics.median(walls), min(walls), max(peaks), 0, 0, None)


# ---------------------------------------------------------------- profiles


# Frames that only wrap the command (interpreter, runpy, click's dispatch): every one of
# them has the whole run as its cumulative time and says nothing about where it goes.
WRAPPERS = (
    "method builtins.exec",
    "<string>:",
    "<frozen runpy>",
    "dingsync/__main__.py",
    "click/core.py",
    "dingsync/cli.py:main",
)


def profile(folder: Path, command: list[str], top: int) -> dict[str, Any]:
    """Run dingsync ``command`` under cProfile; the top entries by cumulative and own time."""
    out = folder / "profile.out"
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "dingsync", *command]
    subprocess.run(
        argv, cwd=folder, env=child_env(), stdout=subprocess.DEVNULL, check=False, timeout=600
    )
    stats = pstats.Stats(str(out), stream=io.StringIO())
    entries = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():
        where = _short_path(filename)
        label = f"{where}:{line}({name})" if line else name
        if any(w in label or w in f"{where}:{name}" for w in WRAPPERS):
            continue
        if "importlib" in where:
            # One row for all imports (the outermost frame counts nested ones once).
            if name != "_find_and_load":
                continue
            label = "(imports)"
        entries.append({"function": label, "calls": calls, "own_s": own, "cum_s": cumulative})
    total = getattr(stats, "total_tt", 0.0)
    by_cum = sorted(entries, key=lambda e: -e["cum_s"])[:top]
    by_own = sorted(entries, key=lambda e: -e["own_s"])[:top]
    return {"total_s": total, "by_cumulative": by_cum, "by_own_time": by_own}


def _short_path(filename: str) -> str:
    for marker in (f"{ROOT}/", "site-packages/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    if "/lib/python" in filename:
        return "stdlib/" + filename.rsplit("/", 1)[-1]
    return filename


def render_profile(title: str, found: dict[str, Any]) -> str:
    parts = [f"== {title}: {found['total_s']:.2f} s under the profiler"]
    for key, what in (("by_cumulative", "cumulative"), ("by_own_time", "own time")):
        rows = [
            [f"{e['cum_s']:.3f}", f"{e['own_s']:.3f}", f"{e['calls']:,}", e["function"]]
            for e in found[key]
        ]
        parts.append(f"-- top {len(rows)} by {what}")
        parts.append(table(["cum s", "own s", "calls", "function"], rows))
    return "\n".join(parts)


def profiles(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="dingsync-profile-") as tmp:
        folder = Path(tmp)
        write_task_file(folder / "tasks.yaml", 10_000, "separate")
        write_full_state(folder / "tasks.yaml", folder / "full.state.json")
        plan = ["plan", "-f", "tasks.yaml", "--format", args.plan_format]
        results["plan, 10,000 separate tasks, empty state"] = profile(
            folder, [*plan, "--state", "empty.state.json"], args.top
        )
        results["plan, 10,000 separate tasks, full state"] = profile(
            folder, [*plan, "--state", "full.state.json"], args.top
        )
        write_task_file(folder / "tasks.yaml", 100_000, "fan-out")
        results["validate, 100 tasks x 1,000 userids"] = profile(
            folder, ["validate", "-f", "tasks.yaml"], args.top
        )
    return results


# ---------------------------------------------------------------- output


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell; text left-aligned, figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [all(_is_figure(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _is_figure(cell: str) -> bool:
    return cell == "-" or cell.replace(",", "").replace(".", "").isdigit()


def _mib(size: int | None) -> str:
    return "-" if size is None else f"{size / 2**20:.1f}"


def render(rows: list[Row]) -> str:
    headers = [
        "records",
        "shape",
        "tasks",
        "command",
        "wall s",
        "min s",
        "peak RSS MiB",
        "exit",
        "file MiB",
        "state MiB",
    ]
    cells = [
        [
            f"{r.size:,}" if r.size else "-",
            r.shape,
            f"{r.tasks:,}" if r.tasks else "-",
            r.command,
            f"{r.wall_s:.2f}",
            f"{r.wall_min_s:.2f}",
            f"{r.peak_rss_mib:.0f}",
            str(r.exit_code),
            _mib(r.file_bytes) if r.file_bytes else "-",
            _mib(r.state_bytes),
        ]
        for r in rows
    ]
    return table(headers, cells)


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x.replace("_", "")) for x in s.split(",")],
        default=list(DEFAULT_SIZES),
        help="numbers of records, comma-separated (1000,10000,100000)",
    )
    parser.add_argument(
        "--shapes",
        type=lambda s: s.split(","),
        default=list(SHAPES),
        help="separate, fan-out or both (separate,fan-out)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; median (1)")
    parser.add_argument(
        "--plan-format", choices=("text", "json"), default="text", help="plan output (text)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed per child (300)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument(
        "--profile", action="store_true", help="print cProfile tables instead of timing"
    )
    parser.add_argument("--top", type=int, default=15, help="profile entries shown (15)")
    args = parser.parse_args(argv)
    for shape in args.shapes:
        if shape not in SHAPES:
            parser.error(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    for size in args.sizes:
        if size < FAN_OUT or size % FAN_OUT:
            parser.error(f"sizes must be multiples of {FAN_OUT}, not {size}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_checkout()

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.profile:
        found = profiles(args)
        if args.json:
            print(json.dumps(found, indent=2, ensure_ascii=False))
        else:
            for title, result in found.items():
                print(render_profile(title, result))
                print()
        return 0
    rows = [measure_startup(args)]
    for size in args.sizes:
        for shape in args.shapes:
            with tempfile.TemporaryDirectory(prefix="dingsync-bench-") as tmp:
                rows += measure_case(Path(tmp), size, shape, args, log)
    if args.json:
        doc: dict[str, Any] = {
            "benchmark": "plan",
            "plan_format": args.plan_format,
            "plan_stdout": "/dev/null",
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "rows": [asdict(r) for r in rows],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(
            f"validate and plan, each a fresh `python -m dingsync` (plan --format "
            f"{args.plan_format} to /dev/null); median of {args.repeat} run(s)"
        )
        print()
        print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
