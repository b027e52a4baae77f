"""A one-line progress bar for long runs on a terminal: count, rate and ETA.

Drawn only on a TTY (the CLI decides); redrawn at most ten times a second, so thousands
of updates cost nothing; thread-safe because the applier's workers report concurrently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 24


def format_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def render_bar(label: str, done: int, total: int, elapsed: float) -> str:
    share = done / total if total else 1.0
    filled = int(WIDTH * share)
    bar = "█" * filled + "░" * (WIDTH - filled)
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = format_eta((total - done) / rate) if rate > 0 and done < total else "--"
    return f"{label} {bar} {done}/{total}  {rate:5.1f}/s  ETA {eta}"


class ProgressBar:
    def __init__(
        self,
        stream: TextIO,
        total: int,
        label: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._clock = clock
        self._started = clock()
        self._last_draw = float("-inf")
        self._done = 0
        self._lock = threading.Lock()

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self._done += steps
            now = self._clock()
            if now - self._last_draw >= 0.1 or self._done >= self._total:
                self._draw(now)

    def write_line(self, text: str) -> None:
        """Print a line above the bar without tearing it."""
        with self._lock:
            self._stream.write("\r\x1b[2K" + text + "\n")
            self._draw(self._clock())

    def close(self) -> None:
        with self._lock:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        line = render_bar(self._label, self._done, self._total, now - self._started)
        self._stream.write("\r\x1b[2K" + line)
        self._stream.flush()
