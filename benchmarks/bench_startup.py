"""Start-up cost of `dingsync validate` on a 10-task file, against a bare interpreter.

Pre-commit hooks and CI steps run validate many times a day, so its wall time is mostly
interpreter start-up plus imports. Prints the median of N runs of each (taken in turns)
and the ratio.

    python benchmarks/bench_startup.py [--runs 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from checkout import child_env  # first: puts this checkout on sys.path
from checkout import compile_checkout

TASKS = "\n".join(
    ["version: 1", "defaults:", "  url: https://intranet.example.com/t", "tasks:"]
    + [
        line
        for i in range(10)
        for line in (
            f"  - key: task-{i}",
            f"    userids: [alice{i:02d}, bob{i:02d}]",
            f"    title: 第{i}项",
            f"    form: {{说明: 编号 {i}}}",
        )
    ]
)


def median_seconds(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """The median wall time of each command, run in turns so that noise hits them alike."""
    # As users run it: the checkout's modules compiled once, as installing them does.
    compile_checkout()
    env = child_env()
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    for _ in range(runs):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.yaml"
        tasks.write_text(TASKS + "\n", encoding="utf-8")
        medians = median_seconds(
            {
                "bare": [sys.executable, "-c", "pass"],
                "validate": [sys.executable, "-m", "dingsync", "validate", "-f", str(tasks)],
            },
            args.runs,
        )
    bare, validate = medians["bare"], medians["validate"]
    result = {
        "runs": args.runs,
        "python_c_pass_s": round(bare, 4),
        "validate_s": round(validate, 4),
        "ratio": round(validate / bare, 2),
        "target_ratio": 2.5,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"median of {args.runs} runs of each, taken in turns")
    print(f"  python -c pass              {bare * 1000:7.1f} ms")
    print(f"  dingsync validate (10 tasks) {validate * 1000:6.1f} ms")
    print(f"  ratio                       {validate / bare:7.2f}x   (target: at most 2.5x)")


if __name__ == "__main__":
    main()
