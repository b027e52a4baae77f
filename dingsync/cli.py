"""The ``dingsync`` command line: the group, its commands, and the one place errors end.

Each command lives in ``dingsync/commands/`` and is imported only when it is invoked (or
listed by ``--help``), and imports what it needs when it runs, so ``dingsync validate``
starts fast in pre-commit hooks and CI steps.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any
from typing import NoReturn

import click

from dingsync import __version__
from dingsync.errors import ConfigError
from dingsync.errors import DingsyncError
from dingsync.errors import ExitCode
from dingsync.terminal import err
from dingsync.terminal import out_json
from dingsync.terminal import redact
from dingsync.terminal import style

# Command name -> "module:attribute", in the order --help lists them.
COMMANDS = {
    "validate": "dingsync.commands.validate:validate",
    "plan": "dingsync.commands.plan:plan",
    "apply": "dingsync.commands.apply:apply",
    "drift": "dingsync.commands.drift:drift",
    "state": "dingsync.commands.state:state",
    "import": "dingsync.commands.adopt:import_",
    "force-unlock": "dingsync.commands.unlock:force_unlock",
    "schema": "dingsync.commands.schema:schema",
    "emulator": "dingsync.commands.emulator:emulator",
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dingsync")
def cli() -> None:
    """dingsync keeps DingTalk to-dos (待办) in line with a YAML file kept in git.

    validate and plan work offline; apply and drift call DingTalk with the app
    credentials from DINGTALK_APP_KEY and DINGTALK_APP_SECRET.
    """


def _error_document(message: str, problems: list[dict[str, Any]]) -> None:
    """With --json, a failed command still prints one JSON document (schemas/error.schema.json)."""
    doc = {"format_version": 1, "kind": "error", "error": message, "problems": problems}
    out_json(doc)


class Terminated(KeyboardInterrupt):
    """SIGTERM, which CI systems send on cancel and timeout: stopped like Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Once is enough: a second SIGTERM must not cut short the saving of the state.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the CLI runs, SIGTERM stops it as Ctrl-C does: no new change starts, calls
    in flight are recorded, the state is saved and the lock released."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every user-facing error becomes one line on stderr and exit 1."""
    with _sigterm_as_interrupt():
        return _main(sys.argv[1:] if argv is None else argv)


def _main(args: list[str]) -> int:
    wants_json = "--json" in args
    try:
        result = cli.main(args=args, prog_name="dingsync", standalone_mode=False)
    except ConfigError as exc:
        for problem in exc.problems:
            err(redact(str(problem)))
        if wants_json:
            from dingsync.render import problems_document

            doc = problems_document("", exc.problems)
            from dingsync.wording import counted

            summary = f"{counted(len(exc.problems), 'problem')} in the task file"
            _error_document(summary, doc["problems"])
        return ExitCode.ERROR
    except DingsyncError as exc:
        err(style("Error: ", fg="red") + redact(str(exc)))
        if wants_json:
            _error_document(redact(str(exc)), [])
        return int(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns a KeyboardInterrupt, and so a SIGTERM, into Abort.
        if isinstance(exc.__context__, Terminated):
            err("Terminated (SIGTERM); what was done is recorded in the state.")
            return ExitCode.TERMINATED
        err("Aborted.")
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        # click's own usage and file errors exit 2, which --detailed-exitcode reserves for
        # "changes found": a broken pipeline must never read as pending changes.
        exc.show()
        if wants_json:
            _error_document(redact(exc.format_message()), [])
        return ExitCode.ERROR
    except Terminated:
        err("Terminated (SIGTERM); what was done is recorded in the state.")
        return ExitCode.TERMINATED
    except KeyboardInterrupt:
        err("Interrupted.")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: say so, without a traceback unless asked
        if os.environ.get("DINGSYNC_TRACEBACK"):
            raise
        err(f"Internal error: {redact(type(exc).__name__ + ': ' + str(exc))}")
        err("This is a bug in dingsync; rerun with DINGSYNC_TRACEBACK=1 to see the traceback.")
        return ExitCode.INTERNAL
    return int(result) if isinstance(result, int) else ExitCode.OK


def run() -> NoReturn:
    """The ``dingsync`` program: ``main``, then exit with its code."""
    code = main()
    # The interpreter's last garbage collection at exit walks every object of the run only
    # to free memory the process hands back anyway; frozen objects are skipped, which saves
    # about 20 ms of a 200 ms run. (Not in main(): callers in a long-lived process need
    # their garbage collected.)
    gc.freeze()
    sys.exit(code)
