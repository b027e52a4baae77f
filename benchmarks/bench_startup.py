"""Start-up cost of `dingsync validate` on a 10-task file, against a bare interpreter.

Pre-commit hooks and CI steps run validate many times a day, so its wall time is mostly
interpreter start-up plus imports. Prints the median of N runs of each and the ratio.

    python benchmarks/bench_startup.py [--runs 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def median_seconds(command: list[str], runs: int) -> float:
    # As users run it: with compiled bytecode cached (some environments disable writing it,
    # which would add the compile of every module to every run). One warm-up run fills it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "tasks.yaml"
        tasks.write_text(TASKS + "\n", encoding="utf-8")
        bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
        validate = median_seconds(
            [sys.executable, "-m", "dingsync", "validate", "-f", str(tasks)], args.runs
        )
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
    print(f"median of {args.runs} runs")
    print(f"  python -c pass              {bare * 1000:7.1f} ms")
    print(f"  dingsync validate (10 tasks) {validate * 1000:6.1f} ms")
    print(f"  ratio                       {validate / bare:7.2f}x   (target: at most 2.5x)")


if __name__ == "__main__":
    main()
