"""Everything that reaches the terminal: colors, stdout and stderr, JSON, progress.

Core modules never print; commands print through these helpers, so that colors follow
the TTY and NO_COLOR, secrets are redacted, and --json keeps stdout to one document.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from dingsync.progress import ProgressBar
from dingsync.render import PAST_TENSE
from dingsync.render import SYMBOLS
from dingsync.reporter import Reporter
from dingsync.wording import counted


def use_color(stream: Any = None) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def style(text: str, **kwargs: Any) -> str:
    return click.style(text, **kwargs) if use_color() else text


def out(text: str) -> None:
    # Every line is redacted on its way out, whatever produced it: the last line of defence.
    click.echo(redact(text), color=use_color())


def err(text: str) -> None:
    click.echo(redact(text), err=True, color=use_color(sys.stderr))


def out_json(document: dict[str, Any]) -> None:
    """One JSON document on stdout: indented for a person at a terminal, compact otherwise.

    Compact output goes through the C encoder, which matters for plans of 100,000 records.
    """
    pretty = sys.stdout.isatty()
    out(
        json.dumps(
            document,
            ensure_ascii=False,
            sort_keys=True,
            indent=2 if pretty else None,
            separators=None if pretty else (",", ":"),
        )
    )


def redact(text: str) -> str:
    secret = os.environ.get("DINGTALK_APP_SECRET")
    if secret:
        text = text.replace(secret, "***")
    return text


def append_step_summary(markdown: Callable[[], str]) -> None:
    """On GitHub Actions, the markdown also lands on the run's summary page.

    Takes a function, so that the markdown of a large plan is only built when wanted.
    """
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if not summary:
        return
    try:
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(markdown() + "\n")
    except OSError as exc:
        # The work is done and recorded; a summary page that cannot be written must not
        # turn it into a failure.
        err(f"Warning: cannot write the job summary to GITHUB_STEP_SUMMARY ({exc.strerror})")


class TerminalReporter(Reporter):
    """Reports to stderr (so --json stays clean): a progress bar on a terminal, else lines.

    On a terminal each change is not printed (thousands would scroll away): the bar
    counts them and only failures and notes are printed above it. In CI logs, where there
    is no bar, every change gets its line.
    """

    LABELS = {"apply": "Applying  ", "refresh": "Refreshing"}

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = not quiet and sys.stderr.isatty()
        self._bar: ProgressBar | None = None

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write_line(text)
        else:
            err(text)

    def resolved(self, address: str, outcome: str) -> None:
        self._line(f"  ~ {address}: interrupted create {outcome}")

    def started(self, total: int, what: str) -> None:
        if self.tty and total:
            self._bar = ProgressBar(sys.stderr, total, self.LABELS.get(what, what))
        elif what == "refresh" and total:
            self._line(f"Refreshing {counted(total, 'record')}…")

    def advanced(self, what: str) -> None:
        if self._bar is not None:
            self._bar.advance()

    def succeeded(self, action: str, address: str, detail: str) -> None:
        if not self.tty:
            self._line(f"  {SYMBOLS[action]} {address}: {PAST_TENSE[action]} ({detail})")

    def failed(self, action: str, address: str, message: str) -> None:
        self._line(style(f"  ! {address}: {action} failed: {redact(message)}", fg="red"))

    def note(self, message: str) -> None:
        self._line(f"Note: {message}")

    def finished(self, what: str) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
