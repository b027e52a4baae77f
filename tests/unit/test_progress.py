"""The progress bar's text: counts, rate and ETA, and its throttled redraws."""

from __future__ import annotations

import io

from dingsync.progress import ProgressBar
from dingsync.progress import format_eta
from dingsync.progress import render_bar


def test_render_bar_shows_counts_rate_and_eta():
    line = render_bar("apply", 50, 200, elapsed=5.0)
    assert "50/200" in line
    assert "10.0/s" in line
    assert "ETA 15s" in line
    assert line.count("█") == 6


def test_eta_formats():
    assert format_eta(59) == "59s"
    assert format_eta(61) == "1m01s"
    assert format_eta(3720) == "1h02m"


def test_finished_bar_has_no_eta():
    assert "ETA --" in render_bar("apply", 10, 10, elapsed=1.0)


def test_redraws_are_throttled():
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(stream, total=1000, label="apply", clock=lambda: now[0])
    for _ in range(500):
        bar.advance()  # the clock does not move: only the first update may draw
    assert stream.getvalue().count("\r") == 1
    now[0] = 1.0
    bar.advance()
    assert stream.getvalue().count("\r") == 2
    bar.write_line("  + a@b: created")
    assert "  + a@b: created\n" in stream.getvalue()
    bar.close()
    last = stream.getvalue().rsplit("\r\x1b[2K", 1)[1]
    assert last.startswith("apply ") and "501/1000" in last and last.endswith("\n")
