"""`dingsync schema`: print the task file's JSON Schema."""

from __future__ import annotations

import json

import click

from dingsync.errors import ExitCode
from dingsync.terminal import out


@click.command()
def schema() -> int:
    """Print the JSON Schema of the task file."""
    from dingsync.loader import load_schema

    out(json.dumps(load_schema(), ensure_ascii=False, indent=2))
    return ExitCode.OK
