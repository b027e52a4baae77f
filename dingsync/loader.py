"""Read a task file: YAML safety, the JSON Schema, semantic checks, then desired records.

``load_task_file`` either returns a fully validated ``TaskFile`` or raises ``ConfigError``
carrying every problem found, each located at a line and column of the file.

The order of work keeps the common case fast and every message specific:

1. size, UTF-8 and YAML syntax (one problem, then stop: nothing else can be trusted);
2. nodes to plain values, text as written (``dingsync.yamlnodes``);
3. the schema, ``schemas/tasks.schema.json``: a compiled checker (``dingsync.schemacheck``)
   accepts a valid document quickly; only the parts it rejects go through ``jsonschema``,
   whose errors ``dingsync.schemawords`` turns into short messages;
4. checks the schema cannot express: unique task keys, real dates, and no two records
   DingTalk would take for duplicates;
5. records: defaults merged under each task, one record per (task key, userid).

Steps 2 to 5 run on one task at a time as it is read (``_streamed_records``), so that a file
of 100,000 tasks is never held whole, as nodes or as values: a task that passes becomes
records and leaves only what the checks across tasks need; a task with a problem is kept for
jsonschema to word. A file whose ``tasks`` is not a plain list (tagged, anchored, missing)
is read whole instead, as listed. Both ways give the same records and the same problems.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import functools
import gc
import hashlib
import json
import os
import re
from array import array
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import TYPE_CHECKING
from typing import Any

# jsonschema is imported only when a file has problems to word: valid files take the
# compiled fast check, and pre-commit hooks run validate many times a day.
if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

from dingsync.chinatime import CHINA
from dingsync.errors import ConfigError
from dingsync.errors import Problem
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import FormPairs
from dingsync.model import Status
from dingsync.model import TaskFile
from dingsync.model import text_length
from dingsync.schemacheck import Check
from dingsync.schemacheck import TaskRules
from dingsync.schemacheck import fast_check
from dingsync.schemacheck import regex
from dingsync.schemacheck import schema
from dingsync.schemacheck import task_rules
from dingsync.schemawords import translate
from dingsync.yamlnodes import MAX_ALIAS_EXPANSION
from dingsync.yamlnodes import Converted
from dingsync.yamlnodes import Item
from dingsync.yamlnodes import Layout
from dingsync.yamlnodes import Map
from dingsync.yamlnodes import Node
from dingsync.yamlnodes import Path
from dingsync.yamlnodes import Scalar
from dingsync.yamlnodes import Seq
from dingsync.yamlnodes import YamlError
from dingsync.yamlnodes import compose
from dingsync.yamlnodes import compose_streaming
from dingsync.yamlnodes import convert
from dingsync.yamlnodes import locate
from dingsync.yamlnodes import scalar_value
from dingsync.yamlnodes import show

__all__ = ["MAX_FILE_BYTES", "load_schema", "load_task_file"]

# Files above this are refused before they are read.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Bytes checked as UTF-8 at a time.
_PIECE = 1024 * 1024


# Plain scalars are numbers only here (version; pc_open_type in defaults and in tasks).
_TASK_FIELDS = Layout(typed=frozenset({"pc_open_type", "ding"}))
_LAYOUT = Layout(
    typed=frozenset({"version"}),
    fields={"defaults": _TASK_FIELDS, "tasks": Layout(items=_TASK_FIELDS)},
)

# Task fields that may stand in defaults instead (all but key, userid and userids).
# The task file's priority names, and what DingTalk's v1.0 API calls them.
PRIORITIES = {"low": 10, "normal": 20, "high": 30, "urgent": 40}

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The top-level part a problem's path lies in: "tasks[3]", "defaults", "version".
_PATH_HEAD = re.compile(r"[^.\[]*(?:\[[0-9]+\])?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CREATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)


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


Loaded = tuple[tuple[DesiredRecord, ...], dict[str, Any]]


def _checked_records(name: str, text: str) -> Loaded:
    """The records of a file read whole, every check run; ``ConfigError`` if any fails."""
    root = _compose(name, text)
    doc, problems, poisoned = _convert(name, root)
    problems += _schema_problems(name, root, doc, poisoned)
    bad_parts = {_path_head(p.path) for p in problems}
    problems += _semantic_problems(name, root, doc, bad_parts)
    if problems:
        raise ConfigError(sorted(set(problems)))
    return _records(doc, _task_nodes(root)), _without_tasks(doc)


# --- reading the tasks one by one ------------------------------------------------------


# Tasks taken in together (see ``_TaskStream.flush``). Larger batches are slower: what a
# batch touches must stay in the processor's caches. A batch also ends at so many nodes,
# since until it is taken in each task keeps the parser's events to compose nodes from.
_BATCH = 64
_BATCH_NODES = 2_500


def _streamed_records(name: str, text: bytes) -> Loaded | None:
    """The records of the file, its tasks read, checked and dropped one at a time.

    Raises ``ConfigError`` listing every problem, exactly as ``_checked_records`` would.
    None when the file has no plain list of tasks to stream (or the schema could judge
    tasks together): it is then read whole.

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
            tasks = _TaskStream(name, check, rules, known)
            root = compose_streaming(text, "tasks", tasks)
            if not tasks.begun or not isinstance(root, Map):
                return None  # no list of tasks was streamed
            converted = convert(root, _LAYOUT, root.size + MAX_ALIAS_EXPANSION)
            rest = _without_tasks(converted.value)
            if _same(rest, tasks.rest):
                return tasks.finish(root, converted), rest
            known = rest
    except YamlError as err:
        raise _fail(name, err.message, err.line, err.column) from None
    return None  # pragma: no cover - the second pass always knows the rest


def _without_tasks(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "tasks"}


class _TaskStream:
    """Takes the tasks from ``compose_streaming`` and checks them as they come, a few at a time.

    A task that passes the schema's rules for a task (``TaskRules``) leaves behind only
    what the checks across tasks need: its key, line and column, whom it sends what, and
    its records while the file has no problem. A task that fails them, or had a problem
    while being converted, is kept whole, value and nodes, for jsonschema to word its
    problems at the end as it would for the whole file (``_schema_errors``).
    """

    layout = _TASK_FIELDS
    fields = frozenset({"key", "create_time", "due_time"})

    def __init__(
        self, name: str, check: Check, rules: TaskRules, rest: dict[str, Any] | None
    ) -> None:
        self.name = name
        self.check = check  # of a whole document
        self.rules = rules
        self.known = rest  # the document but its tasks, if known before reading it
        self.rest: dict[str, Any] = {}  # that, as read before the tasks, or as known
        self.begun = False
        self.task_checks: list[Check] = []  # of one task, within the rest
        self.rest_valid: bool | None = None  # unknown until a task passes
        self.make = _RecordMaker({})
        self.batch: list[Item] = []  # read, not yet taken in
        self.batch_nodes = 0
        self.count = 0
        self.lines = array("l")  # where each task starts
        self.columns = array("l")
        self.keys: list[Any] = []  # each task's key
        self.problems: list[Problem] = []  # met converting the tasks
        self.poisoned: set[Path] = set()
        self.kept: dict[int, tuple[Any, Node]] = {}  # the tasks with a problem
        self.passed: tuple[int, Any] | None = None  # the first task without one
        self.first_keys: dict[str, int] = {}  # task key: line of its first use
        self.semantic: list[Problem] = []  # repeated task keys, unreal create_times
        self.senders = _Senders()
        self.records: list[DesiredRecord] = []

    def begin(self, head: Map) -> None:
        self.begun = True
        if self.known is not None:
            self.rest = self.known
        else:
            converted = convert(head, _LAYOUT, head.size + MAX_ALIAS_EXPANSION)
            self.rest = _without_tasks(converted.value)  # its problems come again at the end
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

    def add(self, item: Item, passed: bool) -> None:
        index, task = self.count, item.value
        self.count += 1
        self.lines.append(item.line)
        self.columns.append(item.column)
        if item.problems:
            self.note_problems(item)
        if passed:
            if self.passed is None:
                self.passed = (index, task)
        else:
            self.kept[index] = (task, item.nodes())
        key = task.get("key") if isinstance(task, dict) else None
        self.keys.append(key)
        if isinstance(key, str):
            self.note_key(index, key, item.places["key"])
        for field in _TIME_FIELDS:
            if isinstance(task, dict) and field in task:
                place = functools.partial(item.places.__getitem__, field)
                problem = _time_problem(self.name, ("tasks", index), task, field, place)
                self.semantic += [problem] if problem else []
        if index not in self.kept:
            self.note_sends(index, task, item.line)

    def passes(self, item: Item) -> bool:
        """Whether the task converted without problems and passes the rules for a task."""
        task = item.value
        for check in self.task_checks:
            if not check(task):
                return False
        if self.rest_valid is None:
            # The first task that passes tells whether the rest is valid: with it, the
            # whole document is exactly when the rest is.
            self.rest_valid = self.check({**self.rest, "tasks": [task]})
        return not item.problems

    def note_problems(self, item: Item) -> None:
        name = self.name
        self.problems += [
            Problem(name, p.line, p.column, format_path(p.path), p.message) for p in item.problems
        ]
        self.poisoned |= item.poisoned

    def note_key(self, index: int, key: str, place: tuple[int, int]) -> None:
        first = self.first_keys.get(key)
        if first is None:
            self.first_keys[key] = place[0]
        else:
            self.semantic.append(_duplicate_key(self.name, index, key, first, place))

    def note_sends(self, index: int, task: dict[str, Any], line: int) -> None:
        """Note whom a task without problems sends what; make its records if they may count."""
        merged = {**self.make.defaults, **task}
        if not self.rest_valid:
            # The rest may be anything: look at what is there, as ``_duplicate_content``
            # does. Only defaults with problems of their own give values that are no text
            # (and then duplicates are not reported at all), so skip those.
            title, form, userids = (
                merged.get("title"),
                _form_pairs(merged.get("form")),
                _userids(merged),
            )
            if isinstance(title, str) and form is not None and _hashable(form, *userids):
                self.senders.add(index, userids, title, form)
            return
        content = self.make.content(task, merged)
        self.senders.add(index, _userids(task), content.title, content.form)
        if self.problems or self.semantic or self.kept or not self.make.default_time_is_real:
            # No records will be returned (finish() reports an unreal create_time of the
            # defaults with the other problems): spare making them.
            return
        self.records += self.make.records(task, merged, content, line)

    def finish(self, root: Map, converted: Converted) -> tuple[DesiredRecord, ...]:
        """The records, or ``ConfigError`` with every problem of the file."""
        self.flush()
        name = self.name
        problems = [
            Problem(name, p.line, p.column, format_path(p.path), p.message)
            for p in converted.problems
        ]
        problems += self.problems
        problems += self.schema_problems(root, converted.poisoned | self.poisoned)
        bad_parts = {_path_head(p.path) for p in problems}
        problems += self.semantic
        defaults = self.rest.get("defaults")
        problems += _bad_create_times(
            name, root, defaults if isinstance(defaults, dict) else {}, []
        )
        if "defaults" not in bad_parts:
            problems += self.senders.problems(name, self.keys.__getitem__, self.place)
        if problems:
            raise ConfigError(sorted(set(problems)))
        return tuple(self.records)

    def place(self, index: int) -> tuple[int, int]:
        return self.lines[index], self.columns[index]

    def schema_problems(self, root: Map, poisoned: set[Path]) -> list[Problem]:
        """What jsonschema says of the file, asked about the tasks with problems only.

        A task that passed the rules for a task has nothing for jsonschema to report (the
        compiled check is exact); with none left, one such task stands for the tasks, so
        that jsonschema still sees a list of them.
        """
        if self.count and not self.kept and self.rest_valid:
            return []
        kept = self.kept
        if kept or self.passed is None:
            indexes = sorted(kept)
            tasks = [kept[index][0] for index in indexes]
        else:
            indexes, tasks = [self.passed[0]], [self.passed[1]]
        doc = {**self.rest, "tasks": tasks}
        errors = _renumbered(_validator().iter_errors(doc), indexes)

        def where(path: Path) -> tuple[Node, Node | None]:
            if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
                return locate(kept[path[1]][1], path[2:])
            return locate(root, path)

        return _worded(self.name, errors, poisoned, where)


def _hashable(*values: Any) -> bool:
    try:
        hash(values)
    except TypeError:
        return False
    return True


def _same(one: Any, two: Any) -> bool:
    """Equal and of the same types throughout: 1, 1.0 and true are three values here."""
    if type(one) is not type(two):
        return False
    if isinstance(one, dict):
        return one.keys() == two.keys() and all(_same(one[key], two[key]) for key in one)
    if isinstance(one, list):
        return len(one) == len(two) and all(map(_same, one, two))
    return bool(one == two)


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


def _convert(name: str, root: Map) -> tuple[dict[str, Any], list[Problem], set[Path]]:
    try:
        converted = convert(root, _LAYOUT, root.size + MAX_ALIAS_EXPANSION)
    except YamlError as err:
        raise _fail(name, err.message, err.line, err.column) from None
    problems = [
        Problem(name, p.line, p.column, format_path(p.path), p.message) for p in converted.problems
    ]
    doc: dict[str, Any] = converted.value
    return doc, problems, converted.poisoned


def _task_nodes(root: Map) -> list[Node]:
    tasks, _ = locate(root, ("tasks",))
    return tasks.items if isinstance(tasks, Seq) else []


def format_path(path: Path) -> str:
    """``tasks[3].form[0].content``; ``<root>`` for the document itself."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and not re.search(r"[\s.\[\]\"']", part):
            out += f".{part}" if out else part
        else:
            out += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return out or "<root>"


# --- the schema -------------------------------------------------------------------------


def _pattern_keyword(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _max_length_keyword(
    validator: Validator, limit: int, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """maxLength in UTF-16 units, as DingTalk counts (see ``text_length``)."""
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and text_length(instance) > limit:
        yield ValidationError(f"{instance!r} is too long")


@functools.cache
def _validator() -> Validator:
    import jsonschema

    # jsonschema's ``extend`` has no type annotations.
    tasks_validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator,
        {"pattern": _pattern_keyword, "maxLength": _max_length_keyword},
    )
    validator: Validator = tasks_validator(schema())
    return validator


def _schema_problems(
    name: str, root: Map, doc: dict[str, Any], poisoned: set[Path]
) -> list[Problem]:
    return _worded(name, _schema_errors(doc), poisoned, lambda path: locate(root, path))


def _worded(
    name: str,
    errors: Iterable[ValidationError],
    poisoned: set[Path],
    where: Callable[[Path], tuple[Node, Node | None]],
) -> list[Problem]:
    """Problems for jsonschema's ``errors``, located with ``where`` (see ``locate``)."""
    problems: list[Problem] = []
    for error in errors:
        for path, message, at_key in translate(error):
            if any(path[:i] in poisoned for i in range(len(path) + 1)):
                continue
            node, key_node = where(path)
            at = key_node if (at_key and key_node is not None) else node
            problems.append(Problem(name, at.line, at.column, format_path(path), message))
    return problems


def _schema_errors(doc: dict[str, Any]) -> Iterator[ValidationError]:
    """Schema errors of ``doc``; jsonschema only sees the tasks the fast check rejects.

    jsonschema takes about a third of a millisecond per task, too slow for files of
    thousands of tasks; the compiled check is exact, so when it accepts a document or a
    task, jsonschema would find nothing there. This relies on the schema putting no
    constraint across tasks (such as uniqueness): see ``task_rules``.
    """
    check = fast_check()
    validator = _validator()
    tasks = doc.get("tasks")
    if check is None or not isinstance(tasks, list) or len(tasks) < 2:
        if check is None or not check(doc):
            yield from validator.iter_errors(doc)
        return
    if check(doc):
        return
    bad = [i for i, task in enumerate(tasks) if not check({**doc, "tasks": [task]})]
    if not bad or len(bad) == len(tasks):  # the fault lies outside the tasks, or everywhere
        yield from validator.iter_errors(doc)
        return
    # Some task passed alone, so everything outside the tasks is valid: only the rejected
    # tasks can hold errors.
    yield from _renumbered(validator.iter_errors({**doc, "tasks": [tasks[i] for i in bad]}), bad)


def _renumbered(errors: Iterable[ValidationError], indexes: list[int]) -> Iterator[ValidationError]:
    """Errors of a document holding only the tasks at ``indexes`` of the file, with each
    path given its task's index in the file."""
    for error in errors:
        path = error.absolute_path
        if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
            error.path[1] = indexes[path[1]]
        yield error


# --- semantic checks --------------------------------------------------------------------


def _semantic_problems(name: str, root: Map, doc: dict[str, Any], bad: set[str]) -> list[Problem]:
    """Checks beyond the schema, run on whatever parts of the file are well formed.

    ``bad`` holds the formatted top-level path heads (``tasks[3]``, ``defaults``) that
    already have problems; duplicate detection skips them to avoid follow-on noise.
    """
    tasks = doc.get("tasks")
    if not isinstance(tasks, list):
        return []
    defaults = doc.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    nodes = _task_nodes(root)
    problems = _duplicate_keys(name, root, tasks)
    problems += _bad_create_times(name, root, defaults, tasks)
    if "defaults" not in bad:
        problems += _duplicate_content(name, nodes, defaults, tasks, bad)
    return problems


def _duplicate_keys(name: str, root: Map, tasks: list[Any]) -> list[Problem]:
    first: dict[str, int] = {}
    problems: list[Problem] = []
    for index, task in enumerate(tasks):
        key = task.get("key") if isinstance(task, dict) else None
        if not isinstance(key, str):
            continue
        if key not in first:
            first[key] = index
            continue
        earlier, _ = locate(root, ("tasks", first[key], "key"))
        here, _ = locate(root, ("tasks", index, "key"))
        problems.append(_duplicate_key(name, index, key, earlier.line, (here.line, here.column)))
    return problems


def _duplicate_key(
    name: str, index: int, key: str, first_line: int, place: tuple[int, int]
) -> Problem:
    message = f"duplicate task key {show(key)} (first at line {first_line})"
    return Problem(name, *place, f"tasks[{index}].key", message)


def _bad_create_times(
    name: str, root: Map, defaults: dict[str, Any], tasks: list[Any]
) -> list[Problem]:
    owners: list[tuple[Path, Any]] = [(("defaults",), defaults)]
    owners += [(("tasks", i), task) for i, task in enumerate(tasks)]
    problems: list[Problem] = []
    for path, owner in owners:
        if not isinstance(owner, dict):
            continue
        for field in _TIME_FIELDS:
            place = functools.partial(_place, root, (*path, field))
            problem = _time_problem(name, path, owner, field, place)
            problems += [problem] if problem else []
    return problems


def _place(root: Node, path: Path) -> tuple[int, int]:
    node, _ = locate(root, path)
    return node.line, node.column


def _time_problem(
    name: str,
    path: Path,
    owner: dict[str, Any],
    field: str,
    place: Callable[[], tuple[int, int]],
) -> Problem | None:
    """The problem of ``owner``'s create_time or due_time naming no real moment, if so;
    ``place`` tells where the field is, asked only then. The schema checks the shape."""
    value = owner.get(field)
    if not isinstance(value, str):
        return None
    try:
        _TIME_FIELDS[field](value)
    except _NotTheShape:
        return None  # the schema reports it
    except ValueError as err:
        message = f"{field} {show(value)} is not a real date-time: {err}"
        return Problem(name, *place(), format_path((*path, field)), message)
    return None


def _duplicate_content(
    name: str,
    nodes: list[Node],
    defaults: dict[str, Any],
    tasks: list[Any],
    bad: set[str],
) -> list[Problem]:
    """Two records with the same userid, title and form: DingTalk refuses the second."""
    senders = _Senders()
    for index, task in enumerate(tasks):
        if f"tasks[{index}]" in bad or not isinstance(task, dict):
            continue
        merged = {**defaults, **task}
        title, form = merged.get("title"), _form_pairs(merged.get("form"))
        if not isinstance(title, str) or form is None:
            continue
        senders.add(index, _userids(merged), title, form)
    return senders.problems(
        name,
        lambda index: tasks[index]["key"],
        lambda index: (nodes[index].line, nodes[index].column),
    )


class _Senders:
    """Who receives which title and form, to find records DingTalk would take for one."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str, FormPairs], int] = {}  # the task that sends it first
        self.clashes: dict[tuple[int, int], list[str]] = {}  # (task, first task): userids

    def add(self, index: int, userids: list[str], title: str, form: FormPairs) -> None:
        for userid in userids:
            first = self.first.setdefault((userid, title, form), index)
            if first != index:
                self.clashes.setdefault((index, first), []).append(userid)

    def problems(
        self, name: str, key: Callable[[int], Any], place: Callable[[int], tuple[int, int]]
    ) -> list[Problem]:
        """One problem per task and earlier task it repeats; ``key`` and ``place`` of a task."""
        problems: list[Problem] = []
        for (index, first), userids in self.clashes.items():
            more = f" and {len(userids) - 1} more" if len(userids) > 1 else ""
            message = (
                f"sends the same title and form as task {show(key(first))} "
                f"(line {place(first)[0]}) to {userids[0]}{more}; DingTalk would reject it as "
                "a duplicate (errcode 854001)"
            )
            problems.append(Problem(name, *place(index), f"tasks[{index}]", message))
        return problems


def _userids(task: dict[str, Any]) -> list[str]:
    if "userids" in task:
        userids = task["userids"]
        return userids if isinstance(userids, list) else []
    return [task["userid"]] if "userid" in task else []


def _form_pairs(form: Any) -> FormPairs | None:
    """The form as (title, content) pairs, or None if it is not well formed."""
    if isinstance(form, dict):
        return tuple(form.items())
    if isinstance(form, list) and all(isinstance(item, dict) for item in form):
        try:
            return tuple((item["title"], item["content"]) for item in form)
        except KeyError:
            return None
    return None


class _NotTheShape(ValueError):
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
        raise _NotTheShape("not an ISO-8601 date-time")
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


# --- records ----------------------------------------------------------------------------


def _records(doc: dict[str, Any], nodes: list[Node]) -> tuple[DesiredRecord, ...]:
    make = _RecordMaker(doc.get("defaults") or {})
    records: list[DesiredRecord] = []
    for task, node in zip(doc["tasks"], nodes, strict=True):
        records += make(task, node.line)
    return tuple(records)


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
            _is_real_time(defaults.get(field), parse) for field, parse in _TIME_FIELDS.items()
        )

    def __call__(self, task: dict[str, Any], line: int) -> list[DesiredRecord]:
        """The records of ``task``; ValueError for a create_time that is no real moment."""
        merged = {**self.defaults, **task}
        return self.records(task, merged, self.content(task, merged), line)

    def content(self, task: dict[str, Any], merged: dict[str, Any]) -> Content:
        """What the records of ``task`` send; ``merged`` is the task over the defaults."""
        due = merged.get("due_time")
        priority = merged.get("priority")
        return Content(
            title=merged["title"],
            url=merged["url"],
            form=self.form(task["form"]) if "form" in task else self.form_of_defaults(),
            pc_url=merged.get("pc_url"),
            source_name=merged.get("source_name"),
            originator_userid=merged.get("originator_userid"),
            pc_open_type=_optional_int(merged.get("pc_open_type")),
            description=merged.get("description"),
            due_time=due_time_ms(due) if isinstance(due, str) else None,
            priority=PRIORITIES[priority] if isinstance(priority, str) else None,
            ding=merged.get("ding"),
            creator_userid=merged.get("creator_userid"),
        )

    def records(
        self, task: dict[str, Any], merged: dict[str, Any], content: Content, line: int
    ) -> list[DesiredRecord]:
        status: Status = "done" if merged.get("status") == "done" else "open"
        when = merged.get("create_time")
        millis = create_time_ms(when) if isinstance(when, str) else None
        key, share = task["key"], self.texts.setdefault
        return [
            DesiredRecord(key, share(userid, userid), content, status, millis, line)
            for userid in _userids(task)
        ]

    def form(self, form: Any) -> FormPairs:
        share = self.texts.setdefault
        pairs = _form_pairs(form) or ()
        return tuple((share(title, title), share(text, text)) for title, text in pairs)

    def form_of_defaults(self) -> FormPairs:
        if self.default_form is None:
            self.default_form = self.form(self.defaults.get("form", ()))
        return self.default_form


def _is_real_time(value: Any, parse: Callable[[str], int]) -> bool:
    """False only for time text that names no real moment (wrong types and shapes are the
    schema's to report)."""
    if not isinstance(value, str):
        return True
    try:
        parse(value)
    except _NotTheShape:
        return True
    except ValueError:
        return False
    return True


def _optional_int(value: Any) -> int | None:
    # The schema accepts 2.0 as the integer 2; the API wants a JSON integer.
    return None if value is None else int(value)


# Task fields of date-time text whose day and time must exist (the schema checks the shape).
_TIME_FIELDS: dict[str, Callable[[str], int]] = {
    "create_time": create_time_ms,
    "due_time": due_time_ms,
}
