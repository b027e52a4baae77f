"""`dingsync validate`: schema and semantic checks of the task file, offline."""

from __future__ import annotations

from typing import Any

import click

from dingsync.errors import ConfigError
from dingsync.errors import ExitCode
from dingsync.options import file_options
from dingsync.options import load_tasks
from dingsync.terminal import out
from dingsync.terminal import out_json
from dingsync.wording import counted


@click.command()
@file_options
def validate(task_file: str, state_path: str | None, as_json: bool, verbose: bool) -> int:
    """Check the task file against the schema and DingTalk's rules; no network."""
    try:
        tf = load_tasks(task_file)
    except ConfigError as exc:
        if as_json:
            out_json(problems_document(task_file, exc))
            return ExitCode.ERROR
        raise
    if as_json:
        doc = {
            "format_version": 1,
            "kind": "validate",
            "valid": True,
            "file": task_file,
            "records": len(tf.records),
            "problems": [],
        }
        out_json(doc)
    else:
        tasks = len({r.key for r in tf.records})
        records = len(tf.records)
        out(f"{task_file}: valid ({counted(tasks, 'task')}, {counted(records, 'record')})")
    return ExitCode.OK


def problems_document(task_file: str, exc: ConfigError) -> dict[str, Any]:
    return {
        "format_version": 1,
        "kind": "validate",
        "valid": False,
        "file": task_file,
        "problems": [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": p.path,
                "message": p.message,
            }
            for p in exc.problems
        ],
    }
