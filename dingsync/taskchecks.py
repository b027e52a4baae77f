"""The checks of a task file that its schema cannot express, fed one task at a time.

Task keys must be unique; ``create_time`` and the fields whose kind is "time" in the field
table (``due_time``) must name a day and time that exist (the schema checks only their
shape); and no two records may be ones DingTalk would
take for the same to-do: the same userid, title and form twice (errcode 854001).

``TaskChecks`` keeps of each task only what these checks need (its key, its place and whom
it sends what), so that a file of 100,000 tasks need not be held to check it.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

from dingsync.chinatime import CHINA
from dingsync.errors import Problem
from dingsync.model import FIELDS
from dingsync.model import FormPairs
from dingsync.yamlvalues import Path
from dingsync.yamlvalues import format_path
from dingsync.yamlvalues import show

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CREATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)

Place = tuple[int, int]  # line and column


class TaskChecks:
    """The checks across the tasks of one file, told of each task as it is read."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines = array("l")  # where each task starts
        self.columns = array("l")
        self.keys: list[Any] = []  # each task's key
        self.first_keys: dict[str, int] = {}  # task key: line of its first use
        self.found: list[Problem] = []  # repeated task keys, times that do not exist
        self.first_sender: dict[tuple[str, str, FormPairs], int] = {}
        self.clashes: dict[tuple[int, int], list[str]] = {}  # (task, first task): userids

    def task(self, task: Any, line: int, column: int, places: dict[str, Place]) -> None:
        """Check the next task's key and times; ``places`` tells where its fields start."""
        index = len(self.keys)
        self.lines.append(line)
        self.columns.append(column)
        key = task.get("key") if isinstance(task, dict) else None
        self.keys.append(key)
        if isinstance(key, str):
            first = self.first_keys.get(key)
            if first is None:
                self.first_keys[key] = places["key"][0]
            else:
                message = f"duplicate task key {show(key)} (first at line {first})"
                self.found.append(
                    Problem(self.name, *places["key"], f"tasks[{index}].key", message)
                )
        if isinstance(task, dict) and not _TIME_FIELD_NAMES.isdisjoint(task):
            self.times(("tasks", index), task, places.__getitem__)

    def times(self, path: Path, owner: dict[str, Any], place: Callable[[str], Place]) -> None:
        """Check that ``owner`` (a task, or the defaults at ``path``) names real moments;
        ``place`` tells where a field starts, asked only for one that does not."""
        for field, parse in TIME_FIELDS.items():
            value = owner.get(field)
            if not isinstance(value, str):
                continue
            try:
                parse(value)
            except NotTheShape:
                continue  # the schema reports it
            except ValueError as err:
                message = f"{field} {show(value)} is not a real date-time: {err}"
                problem = Problem(self.name, *place(field), format_path((*path, field)), message)
                self.found.append(problem)

    def sends(self, index: int, userids: list[str], title: str, form: FormPairs) -> None:
        """Note that task ``index`` sends ``title`` and ``form`` to ``userids``."""
        for userid in userids:
            first = self.first_sender.setdefault((userid, title, form), index)
            if first != index:
                self.clashes.setdefault((index, first), []).append(userid)

    def sends_as_written(self, index: int, merged: dict[str, Any]) -> None:
        """Note whom task ``index`` sends what, from its fields over the defaults
        (``merged``) as they are, where the rest of the file may not be valid: values that
        are no text or no form (the schema's to report) send nothing."""
        title, form, to = merged.get("title"), form_pairs(merged.get("form")), userids(merged)
        if isinstance(title, str) and form is not None and _hashable(form, *to):
            self.sends(index, to, title, form)

    def problems(self, duplicates: bool) -> list[Problem]:
        """What the checks found; records sent twice only if ``duplicates``."""
        if not duplicates:
            return self.found
        return self.found + [
            self.duplicate(index, first, to) for (index, first), to in self.clashes.items()
        ]

    def duplicate(self, index: int, first: int, userids: list[str]) -> Problem:
        """Task ``index`` sends what task ``first`` sends to ``userids``."""
        more = f" and {len(userids) - 1} more" if len(userids) > 1 else ""
        message = (
            f"sends the same title and form as task {show(self.keys[first])} "
            f"(line {self.lines[first]}) to {userids[0]}{more}; DingTalk would reject it as "
            "a duplicate (errcode 854001)"
        )
        place = (self.lines[index], self.columns[index])
        return Problem(self.name, *place, f"tasks[{index}]", message)


def userids(task: dict[str, Any]) -> list[str]:
    """The userids a task (or a task over its defaults) sends to, as written."""
    if "userids" in task:
        found = task["userids"]
        return found if isinstance(found, list) else []
    return [task["userid"]] if "userid" in task else []


def form_pairs(form: Any) -> FormPairs | None:
    """The form as (title, content) pairs, or None if it is not well formed."""
    if isinstance(form, dict):
        return tuple(form.items())
    if isinstance(form, list) and all(isinstance(item, dict) for item in form):
        try:
            return tuple((item["title"], item["content"]) for item in form)
        except KeyError:
            return None
    return None


def _hashable(*values: Any) -> bool:
    try:
        hash(values)
    except TypeError:
        return False
    return True


# --- dates and times ------------------------------------------------------------------------


class NotTheShape(ValueError):
    """Text that is no ISO-8601 date-time at all (the schema's to report)."""


def due_time_ms(text: str) -> int:
    """A due time: a date means the end of that day (23:59:59), China time; else as
    ``create_time_ms``."""
    if _DATE.fullmatch(text):
        return create_time_ms(text + "T23:59:59")
    return create_time_ms(text)


def create_time_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 date-time; naive means Asia/Shanghai.

    Raises ValueError for text that is not one, or names a day or time that does not exist.
    """
    found = _CREATE_TIME.fullmatch(text)
    if not found:
        raise NotTheShape("not an ISO-8601 date-time")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    if zulu:
        zone = timezone.utc
    elif sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        if offset >= timedelta(hours=24):
            raise ValueError("time-zone offset out of range")
        zone = timezone(-offset if sign == "-" else offset)
    else:
        zone = CHINA
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, zone
    )
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def is_real_time(value: Any, parse: Callable[[str], int]) -> bool:
    """False only for time text that names no real moment (wrong types and shapes are the
    schema's to report)."""
    if not isinstance(value, str):
        return True
    try:
        parse(value)
    except NotTheShape:
        return True
    except ValueError:
        return False
    return True


# Task fields of date-time text whose day and time must exist (the schema checks the shape):
# create_time, and every content field of the kind "time".
TIME_FIELDS: dict[str, Callable[[str], int]] = {
    "create_time": create_time_ms,
    **{f.name: due_time_ms for f in FIELDS if f.kind == "time"},
}
_TIME_FIELD_NAMES = frozenset(TIME_FIELDS)
