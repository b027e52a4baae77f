"""Read a task file: YAML safety, the JSON Schema, semantic checks, then desired records.

``load_task_file`` either returns a fully validated ``TaskFile`` or raises ``ConfigError``
carrying every problem found, each located at a line and column of the file.

The order of work keeps the common case fast and every message specific:

1. size, UTF-8 and YAML syntax (one problem, then stop: nothing else can be trusted);
2. nodes to plain values, text as written (``dingsync.yamlnodes``, ``dingsync.yamlvalues``);
3. the schema, ``schemas/tasks.schema.json``: a compiled checker (``dingsync.schemacheck``)
   accepts a valid document quickly; only the parts it rejects go through ``jsonschema``,
   whose errors ``dingsync.schemawords`` turns into short messages;
4. checks the schema cannot express (``dingsync.taskchecks``): unique task keys, real
   dates, and no two records DingTalk would take for duplicates;
5. records: defaults merged under each task, one record per (task key, userid).

Steps 3 to 5 take the tasks one at a time, in ``_TaskCollector``: a task that passes
becomes records and leaves only what the checks across tasks need; a task with a problem
is kept for jsonschema to word. The tasks reach it in one of two ways, which differ only
in how the YAML is read. Usually the file is streamed (``_streamed_records``): each task
is converted as it is parsed and dropped once taken in, so that a file of 100,000 tasks is
never held whole, as nodes or as values. A file whose ``tasks`` is not a plain list
(tagged, anchored, missing...) is composed and converted whole instead
(``_checked_records``), and its tasks are then fed to the same collector.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import functools
import gc
import hashlib
import os
import re
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from dingsync.errors import ConfigError
from dingsync.errors import Problem
from dingsync.model import FIELDS
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import FormPairs
from dingsync.model import Kind
from dingsync.model import Status
from dingsync.model import TaskFile
from dingsync.schemacheck import Check
from dingsync.schemacheck import TaskRules
from dingsync.schemacheck import fast_check
from dingsync.schemacheck import schema
from dingsync.schemacheck import task_rules
from dingsync.schemawords import renumbered
from dingsync.schemawords import validator
from dingsync.schemawords import worded
from dingsync.taskchecks import TIME_FIELDS
from dingsync.taskchecks import TaskChecks
from dingsync.taskchecks import create_time_ms
from dingsync.taskchecks import due_time_ms
from dingsync.taskchecks import form_pairs
from dingsync.taskchecks import is_real_time
from dingsync.taskchecks import userids
from dingsync.yamlnodes import compose
from dingsync.yamlnodes import compose_streaming
from dingsync.yamlvalues import MAX_ALIAS_EXPANSION
from dingsync.yamlvalues import Converted
from dingsync.yamlvalues import Item
from dingsync.yamlvalues import Layout
from dingsync.yamlvalues import Map
from dingsync.yamlvalues import Node
from dingsync.yamlvalues import Path
from dingsync.yamlvalues import Scalar
from dingsync.yamlvalues import Seq
from dingsync.yamlvalues import YamlError
from dingsync.yamlvalues import convert
from dingsync.yamlvalues import format_path
from dingsync.yamlvalues import locate
from dingsync.yamlvalues import scalar_value
from dingsync.yamlvalues import split_items

__all__ = ["MAX_FILE_BYTES", "load_schema", "load_task_file"]

# Files above this are refused before they are read.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Bytes checked as UTF-8 at a time.
_PIECE = 1024 * 1024


# Plain scalars are numbers or booleans only here: version, and the task fields whose
# kind is "integer" or "flag" (pc_open_type, ding), in defaults and in tasks.
_TASK_FIELDS = Layout(
    typed=frozenset(f.name for f in FIELDS if f.kind in ("integer", "flag")),
)
_LAYOUT = Layout(
    typed=frozenset({"version"}),
    fields={"defaults": _TASK_FIELDS, "tasks": Layout(items=_TASK_FIELDS)},
)

# The task file's priority names, and what DingTalk's v1.0 API calls them.
PRIORITIES = {"low": 10, "normal": 20, "high": 30, "urgent": 40}


def _as_written(value: Any) -> Any:
    return value


def _integer(value: Any) -> int | None:
    # The schema accepts 2.0 as the integer 2; the API wants a JSON integer.
    return None if value is None else int(value)


def _china_time(value: Any) -> int | None:
    return due_time_ms(value) if isinstance(value, str) else None


def _priority(value: Any) -> int | None:
    return PRIORITIES[value] if isinstance(value, str) else None


# How a task's value of each kind of field (model.Kind) becomes its Content value. A form
# is made apart, to share the lines that tasks repeat.
_READERS: dict[Kind, Callable[[Any], Any]] = {
    "text": _as_written,
    "flag": _as_written,
    "integer": _integer,
    "time": _china_time,
    "priority": _priority,
}
_CONTENT_READERS = tuple((f.name, _READERS[f.kind]) for f in FIELDS if f.kind != "form")

# The top-level part a problem's path lies in: "tasks[3]", "defaults", "version".
_PATH_HEAD = re.compile(r"[^.\[]*(?:\[[0-9]+\])?")


# --- entry points -----------------------------------------------------------------------


def load_schema() -> dict[str, Any]:
    """The task-file JSON Schema shipped in the package (a copy the caller may change)."""
    return copy.deepcopy(schema())


def load_task_file(path: str | os.PathLike[str]) -> TaskFile:
    """Load and validate a task file; raise ``ConfigError`` listing every problem."""
    with _collector_paused():
        return _load(os.fspath(path))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while loading.

    Loading creates hundreds of thousands of long-lived objects and no reference cycles;
    the collector's repeated scans of them would cost about a third of the time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(name: str) -> TaskFile:
    data = _read(name)
    loaded = _streamed_records(name, _utf8(name, data))
    if loaded is None:
        loaded = _checked_records(name, _decode(name, data))
    records, rest = loaded
    namespace = rest.get("namespace")
    return TaskFile(
        path=name,
        sha256=hashlib.sha256(data).hexdigest(),
        records=records,
        namespace=namespace if isinstance(namespace, str) else default_namespace(name),
        api="todo" if rest.get("api") == "todo" else "workrecord",
        on_removal="delete" if rest.get("on_removal") == "delete" else "complete",
    )


# The namespace of a file that names none: its stem, made to fit the pattern the schema
# gives `namespace` (lower case; anything else becomes "-"; at most 32 characters).
_NAMESPACE_UNFIT = re.compile(r"[^a-z0-9._-]+")


def default_namespace(path: str) -> str:
    """The namespace of a task file without one: ``tasks`` for ``team/tasks.yaml``."""
    stem = os.path.splitext(os.path.basename(path))[0]
    fitted = _NAMESPACE_UNFIT.sub("-", stem.lower()).lstrip("._-")[:32]
    return fitted or "tasks"


# The records, and the document but its tasks.
Loaded = tuple[tuple[DesiredRecord, ...], dict[str, Any]]


# --- the two ways to the tasks ----------------------------------------------------------


def _streamed_records(name: str, text: bytes) -> Loaded | None:
    """The records of the file, its tasks read, checked and dropped one at a time.

    Raises ``ConfigError`` listing every problem. None when the file has no plain list of
    tasks to stream (or the schema could judge tasks together): it is then read whole.

    Each task is checked within the rest of the document as read before ``tasks`` began. If
    the rest turns out different at the end (``version`` written last, say), the pass runs
    once more with the rest known: the outcome never rests on that guess.
    """
    check, rules = fast_check(), task_rules()
    if check is None or rules is None:
        return None
    known: dict[str, Any] | None = None
    try:
        for _ in range(2):
            tasks = _TaskCollector(name, check, rules, known)
            root = compose_streaming(text, "tasks", tasks)
            if not tasks.listed or not isinstance(root, Map):
                return None  # no list of tasks was streamed
            converted = _convert(name, root)
            rest = _without_tasks(converted.value)
            if _same(rest, tasks.rest):
                return tasks.finish(root, converted), rest
            known = rest
    except YamlError as err:
        raise _fail(name, err.message, err.line, err.column) from None
    return None  # pragma: no cover - the second pass always knows the rest


def _checked_records(name: str, text: str) -> Loaded:
    """The records of a file composed and converted whole, its tasks then taken in one at a
    time as a streamed file's are; ``ConfigError`` if any check fails."""
    root = _compose(name, text)
    converted = _convert(name, root)
    check = fast_check()
    split = split_items(root, converted, "tasks", _TaskCollector.fields)
    if split is None:  # no list of tasks: the schema judges the document as it is
        unlisted = _TaskCollector(name, check, None, converted.value)
        return unlisted.finish(root, converted), _without_tasks(converted.value)
    items, rest = split
    # A refused tag above the tasks silences the schema's words about them, so a task's
    # verdict cannot say whether it shows a problem: every task waits for jsonschema then.
    hidden = () in rest.poisoned or ("tasks",) in rest.poisoned
    rules = task_rules() if check is not None and not hidden else None
    tasks = _TaskCollector(name, check, rules, rest.value)
    tasks.begin(root)
    for item in items:
        tasks.item(item)
    return tasks.finish(root, rest), rest.value


def _without_tasks(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "tasks"}


def _same(one: Any, two: Any) -> bool:
    """Equal and of the same types throughout: 1, 1.0 and true are three values here."""
    if type(one) is not type(two):
        return False
    if isinstance(one, dict):
        return one.keys() == two.keys() and all(_same(one[key], two[key]) for key in one)
    if isinstance(one, list):
        return len(one) == len(two) and all(map(_same, one, two))
    return bool(one == two)


# --- taking in the tasks ----------------------------------------------------------------


# Tasks taken in together (see ``_TaskCollector.flush``). Larger batches are slower: what a
# batch touches must stay in the processor's caches. A batch also ends at so many nodes,
# since until it is taken in each streamed task keeps the parser's events to compose nodes
# from.
_BATCH = 64
_BATCH_NODES = 2_500


class _TaskCollector:
    """Takes in a file's tasks, a few at a time, and gives its records or every problem.

    A task that passes the schema's rules for a task (``TaskRules``) leaves behind only
    what the checks across tasks need (``TaskChecks``), and its records while the file has
    no problem. A task that fails them, or had a problem while being converted, is kept
    whole, value and nodes, for jsonschema to word its problems at the end.

    Without rules for a task (``rules`` None), every task is kept, and what needs to know
    which tasks are valid waits until jsonschema has judged them all: only a file read
    whole is taken in so. A collector that never ``begin``s is given a file without a list
    of tasks; ``rest`` is then the whole document.
    """

    layout = _TASK_FIELDS
    fields = frozenset({"key", *TIME_FIELDS})

    def __init__(
        self, name: str, check: Check | None, rules: TaskRules | None, rest: dict[str, Any] | None
    ) -> None:
        self.name = name
        self.check = check  # of a whole document
        self.rules = rules
        self.known = rest is not None  # the document but its tasks, before reading them
        self.rest: dict[str, Any] = rest or {}  # that, as read before the tasks, or as known
        self.listed = False  # the tasks began: the file has a list of them
        self.task_checks: list[Check] = []  # of one task, within the rest
        self.rest_valid: bool | None = None  # unknown until a task passes
        self.make = _RecordMaker({})
        self.batch: list[Item] = []  # read, not yet taken in
        self.batch_nodes = 0
        self.count = 0
        self.problems: list[Problem] = []  # met converting the tasks
        self.poisoned: set[Path] = set()
        self.kept: dict[int, tuple[Any, Node]] = {}  # the tasks for jsonschema, in order
        self.passed: tuple[int, Any] | None = None  # the first task without one
        self.checks = TaskChecks(name)
        self.records: list[DesiredRecord] = []

    def begin(self, head: Map) -> None:
        self.listed = True
        if not self.known:
            converted = convert(head, _LAYOUT, head.size + MAX_ALIAS_EXPANSION)
            self.rest = _without_tasks(converted.value)  # its problems come again at the end
        if self.rules is not None:
            self.task_checks = self.rules.checks(self.rest)
        defaults = self.rest.get("defaults")
        self.make = _RecordMaker(defaults if isinstance(defaults, dict) else {})

    def item(self, item: Item) -> None:
        self.batch.append(item)
        self.batch_nodes += item.size
        if len(self.batch) == _BATCH or self.batch_nodes >= _BATCH_NODES:
            self.flush()

    def flush(self) -> None:
        """Take in the tasks read since the last flush, each step for all of them in turn.

        Checking, then noting, a batch of tasks in a row keeps each step's code and data in
        the processor's caches, where alternating with the parser for every task does not:
        the whole load takes a sixth less time.
        """
        batch = self.batch
        passed = [self.passes(item) for item in batch]
        for item, ok in zip(batch, passed, strict=True):
            self.add(item, ok)
        batch.clear()
        self.batch_nodes = 0

    def passes(self, item: Item) -> bool:
        """Whether the task converted without problems and passes the rules for a task."""
        if self.rules is None:
            return False
        task = item.value
        for check in self.task_checks:
            if not check(task):
                return False
        if self.rest_valid is None and self.check is not None:
            # The first task that passes tells whether the rest is valid: with it, the
            # whole document is exactly when the rest is.
            self.rest_valid = self.check({**self.rest, "tasks": [task]})
        return not item.problems

    def add(self, item: Item, passed: bool) -> None:
        index, task = self.count, item.value
        self.count += 1
        if item.problems:
            self.problems += [
                Problem(self.name, p.line, p.column, format_path(p.path), p.message)
                for p in item.problems
            ]
            self.poisoned |= item.poisoned
        if passed:
            if self.passed is None:
                self.passed = (index, task)
        else:
            self.kept[index] = (task, item.nodes())
        self.checks.task(task, item.line, item.column, item.places)
        if passed:
            self.note_sends(index, task, item.line)

    def note_sends(self, index: int, task: dict[str, Any], line: int) -> None:
        """Note whom a task without problems sends what; make its records if they may count."""
        merged = {**self.make.defaults, **task}
        if not self.rest_valid:
            # The rest may be anything: look at what is there. Only defaults with problems
            # of their own give values that are no text (and then duplicates are not
            # reported at all).
            self.checks.sends_as_written(index, merged)
            return
        form = self.make.form_of(task)
        self.checks.sends(index, userids(task), merged["title"], form)
        if self.problems or self.checks.found or self.kept or not self.make.default_time_is_real:
            # No records will be returned (finish() reports an unreal time of the defaults
            # with the other problems): spare making them, and reading such a time.
            return
        content = self.make.content(merged, form)
        self.records += self.make.records(task, merged, content, line)

    def finish(self, root: Map, converted: Converted) -> tuple[DesiredRecord, ...]:
        """The records, or ``ConfigError`` with every problem of the file; ``converted`` is
        the conversion of the document but its tasks."""
        self.flush()
        name = self.name
        problems = [
            Problem(name, p.line, p.column, format_path(p.path), p.message)
            for p in converted.problems
        ]
        problems += self.problems
        problems += self.schema_problems(root, converted.poisoned | self.poisoned)
        if self.listed:
            bad_parts = {_path_head(p.path) for p in problems}
            defaults = self.rest.get("defaults")
            if isinstance(defaults, dict):
                self.checks.times(("defaults",), defaults, functools.partial(_defaults_place, root))
            duplicates = "defaults" not in bad_parts
            if duplicates and self.rules is None:
                # Only now is it known which tasks are valid: note what those send, in order.
                for index, (task, _) in self.kept.items():
                    if isinstance(task, dict) and f"tasks[{index}]" not in bad_parts:
                        self.checks.sends_as_written(index, {**self.make.defaults, **task})
            problems += self.checks.problems(duplicates)
        if problems:
            raise ConfigError(sorted(set(problems)))
        if self.rules is None:  # every task was kept, none made records yet
            for task, node in self.kept.values():
                self.records += self.make(task, node.line)
        return tuple(self.records)

    def schema_problems(self, root: Map, poisoned: set[Path]) -> list[Problem]:
        """What jsonschema says of the file, asked about the tasks with problems only.

        A task that passed the rules for a task has nothing for jsonschema to report (the
        compiled check is exact); with none left, one such task stands for the tasks, so
        that jsonschema still sees a list of them.
        """
        if self.count and not self.kept and self.rest_valid:
            return []
        kept = self.kept
        indexes = list(kept)
        if not self.listed:
            doc = self.rest
        elif kept or self.passed is None:
            doc = {**self.rest, "tasks": [task for task, _ in kept.values()]}
        else:
            indexes = [self.passed[0]]
            doc = {**self.rest, "tasks": [self.passed[1]]}
        if self.check is not None and self.check(doc):
            return []
        errors = renumbered(validator().iter_errors(doc), indexes)

        def where(path: Path) -> tuple[Node, Node | None]:
            if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
                return locate(kept[path[1]][1], path[2:])
            return locate(root, path)

        return worded(self.name, errors, poisoned, where)


def _defaults_place(root: Node, field: str) -> tuple[int, int]:
    node, _ = locate(root, ("defaults", field))
    return node.line, node.column


def _path_head(path: str) -> str:
    found = _PATH_HEAD.match(path)
    return found.group() if found else path


# --- reading and YAML -------------------------------------------------------------------


def _fail(name: str, message: str, line: int = 1, column: int = 1) -> ConfigError:
    return ConfigError([Problem(name, line, column, "<root>", message)])


def _read(name: str) -> bytes:
    try:
        size = os.stat(name).st_size
        if size > MAX_FILE_BYTES:
            raise _fail(name, _too_big(size))
        with open(name, "rb") as handle:
            # Read one byte past the limit: the file may have grown since stat.
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise _fail(name, f"cannot read the file: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise _fail(name, _too_big(len(data)))
    return data


def _too_big(size: int) -> str:
    mib = 1024 * 1024
    return f"file is {size / mib:.1f} MiB; task files may be at most {MAX_FILE_BYTES // mib} MiB"


def _decode(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        column = len(data[line_start : err.start].decode("utf-8", "replace")) + 1
        byte = data[err.start]
        raise _fail(
            name, f"file is not valid UTF-8 (byte 0x{byte:02x}); save it as UTF-8", line, column
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _utf8(name: str, data: bytes) -> bytes:
    """``data`` once known to be UTF-8, without a byte-order mark; else ``_decode``'s error.

    The parser reads these bytes as they are. Checking them a piece at a time spares the
    decoded copy, which is twice their size for text such as Chinese.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(data), _PIECE):
            decoder.decode(view[start : start + _PIECE])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        _decode(name, data)  # raises the error, located
    return data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


def _compose(name: str, text: str) -> Map:
    try:
        root = compose(text)
    except YamlError as err:
        raise _fail(name, err.message, err.line, err.column) from None
    if root is None or (isinstance(root, Scalar) and scalar_value(root, typed=False) is None):
        raise _fail(name, "file is empty; expected a mapping with 'version' and 'tasks'")
    if not isinstance(root, Map):
        kind = "a list" if isinstance(root, Seq) else "text"
        raise _fail(
            name,
            f"the file must be a mapping with 'version' and 'tasks', not {kind}",
            root.line,
            root.column,
        )
    return root


def _convert(name: str, root: Map) -> Converted:
    try:
        return convert(root, _LAYOUT, root.size + MAX_ALIAS_EXPANSION)
    except YamlError as err:
        raise _fail(name, err.message, err.line, err.column) from None


# --- records ----------------------------------------------------------------------------


class _RecordMaker:
    """Makes the records of valid tasks, with ``defaults`` merged under each.

    What tasks tend to repeat (userids, form lines, a form given in defaults) is made once
    and shared: 100,000 records would otherwise hold 100,000 copies of each.
    """

    def __init__(self, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.texts: dict[str, str] = {}
        self.default_form: FormPairs | None = None  # made when a task first needs it
        # A task's own create_time is checked with the task; the inherited one, once here.
        self.default_time_is_real = all(
            is_real_time(defaults.get(field), parse) for field, parse in TIME_FIELDS.items()
        )

    def __call__(self, task: dict[str, Any], line: int) -> list[DesiredRecord]:
        """The records of ``task``; ValueError for a time that is no real moment."""
        merged = {**self.defaults, **task}
        return self.records(task, merged, self.content(merged, self.form_of(task)), line)

    def content(self, merged: dict[str, Any], form: FormPairs) -> Content:
        """What the records of a task send; ``merged`` is the task over the defaults, and
        ``form`` its ``form_of``. ValueError for a due_time that is no real moment."""
        values = {name: read(merged.get(name)) for name, read in _CONTENT_READERS}
        return Content(form=form, **values)

    def records(
        self, task: dict[str, Any], merged: dict[str, Any], content: Content, line: int
    ) -> list[DesiredRecord]:
        status: Status = "done" if merged.get("status") == "done" else "open"
        when = merged.get("create_time")
        millis = create_time_ms(when) if isinstance(when, str) else None
        key, share = task["key"], self.texts.setdefault
        return [
            DesiredRecord(key, share(userid, userid), content, status, millis, line)
            for userid in userids(task)
        ]

    def form_of(self, task: dict[str, Any]) -> FormPairs:
        return self.form(task["form"]) if "form" in task else self.form_of_defaults()

    def form(self, form: Any) -> FormPairs:
        share = self.texts.setdefault
        pairs = form_pairs(form) or ()
        return tuple((share(title, title), share(text, text)) for title, text in pairs)

    def form_of_defaults(self) -> FormPairs:
        if self.default_form is None:
            self.default_form = self.form(self.defaults.get("form", ()))
        return self.default_form
