"""Point a benchmark at the checkout it sits in, run the way an installed dingsync runs.

``pip install`` compiles every module to bytecode, so an installed dingsync never compiles
its source at start-up. Some environments set ``PYTHONDONTWRITEBYTECODE``; a child run
there from a checkout would compile every changed module on every run, and the benchmark
would measure the compiler. ``child_env`` drops that setting and ``compile_checkout`` does
the install's compile once.
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # measure the checkout this file sits in


def child_env(**changes: str) -> dict[str, str]:
    """This process's environment for a dingsync child: the checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(changes)
    return env


def compile_checkout() -> None:
    """Write the bytecode of the checkout's modules, as installing dingsync does."""
    for folder in ("dingsync", "schemas"):
        compileall.compile_dir(ROOT / folder, quiet=1)
