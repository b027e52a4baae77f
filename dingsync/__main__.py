from __future__ import annotations

from dingsync.cli import run

run()
