"""Read a task file: YAML safety, the JSON Schema, semantic checks, then desired records.

``load_task_file`` either returns a fully validated ``TaskFile`` or raises ``ConfigError``
carrying every problem found, each located at a line and column of the file.

The order of work keeps the common case fast and every message specific:

1. size, UTF-8 and YAML syntax (one problem, then stop: nothing else can be trusted);
2. nodes to plain values, text as written (``dingsync.yamlnodes``);
3. the schema, ``schemas/tasks.schema.json``: a compiled checker accepts a valid document
   quickly; only the parts it rejects go through ``jsonschema``, whose errors are
   translated into short messages;
4. checks the schema cannot express: unique task keys, real dates, and no two records
   DingTalk would take for duplicates;
5. records: defaults merged under each task, one record per (task key, userid).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import gc
import hashlib
import importlib.resources
import json
import os
import re
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import cast

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from dingsync.errors import ConfigError
from dingsync.errors import Problem
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import FormPairs
from dingsync.model import Status
from dingsync.model import TaskFile
from dingsync.yamlnodes import MAX_ALIAS_EXPANSION
from dingsync.yamlnodes import Layout
from dingsync.yamlnodes import Map
from dingsync.yamlnodes import Node
from dingsync.yamlnodes import Path
from dingsync.yamlnodes import Scalar
from dingsync.yamlnodes import Seq
from dingsync.yamlnodes import YamlError
from dingsync.yamlnodes import compose
from dingsync.yamlnodes import convert
from dingsync.yamlnodes import locate
from dingsync.yamlnodes import scalar_value

__all__ = ["MAX_FILE_BYTES", "load_schema", "load_task_file"]

# Files above this are refused before they are read.
MAX_FILE_BYTES = 64 * 1024 * 1024

SCHEMA_RESOURCE = "tasks.schema.json"

# Plain scalars are numbers only here (version; pc_open_type in defaults and in tasks).
_TASK_FIELDS = Layout(typed=frozenset({"pc_open_type"}))
_LAYOUT = Layout(
    typed=frozenset({"version"}),
    fields={"defaults": _TASK_FIELDS, "tasks": Layout(items=_TASK_FIELDS)},
)

# Task fields that may stand in defaults instead (all but key, userid and userids).
_DEFAULTABLE = frozenset(
    {
        "title",
        "url",
        "pc_url",
        "pc_open_type",
        "form",
        "source_name",
        "originator_userid",
        "status",
        "create_time",
    }
)

# China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exactly
# Asia/Shanghai for any date a to-do can have, and needs no time-zone database.
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The top-level part a problem's path lies in: "tasks[3]", "defaults", "version".
_PATH_HEAD = re.compile(r"[^.\[]*(?:\[[0-9]+\])?")
_CREATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)


# --- entry points -----------------------------------------------------------------------


def load_schema() -> dict[str, Any]:
    """The task-file JSON Schema shipped in the package (a copy the caller may change)."""
    return copy.deepcopy(_schema())


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
    text = _decode(name, data)
    root = _compose(name, text)
    doc, problems, poisoned = _convert(name, root)
    problems += _schema_problems(name, root, doc, poisoned)
    bad_parts = {_path_head(p.path) for p in problems}
    problems += _semantic_problems(name, root, doc, bad_parts)
    if problems:
        raise ConfigError(sorted(set(problems)))
    records = _records(doc, _task_nodes(root))
    return TaskFile(path=name, sha256=hashlib.sha256(data).hexdigest(), records=records)


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


def show(value: Any, limit: int = 40) -> str:
    """A value quoted for a message, shortened so that messages stay one short line."""
    if isinstance(value, str):
        if len(value) > limit:
            value = value[: limit - 1] + "…"
        return repr(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the schema -------------------------------------------------------------------------


@functools.cache
def _schema() -> dict[str, Any]:
    resource = importlib.resources.files("dingsync.schemas").joinpath(SCHEMA_RESOURCE)
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    """A schema pattern with ECMA-262 meaning: ``$`` ends the text.

    Python's ``$`` also matches before a final newline, which would let ``"laptop\\n"``
    pass as a key.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern_keyword(
    validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and not _regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# jsonschema's ``extend`` has no type annotations.
_TasksValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern_keyword}
)


@functools.cache
def _validator() -> Validator:
    validator: Validator = _TasksValidator(_schema())
    return validator


@functools.cache
def _fast_check() -> Callable[[Any], bool] | None:
    """A compiled form of the schema, or None if it uses a keyword the compiler lacks."""
    try:
        return _compile(_schema(), _schema(), {}, set())
    except _Unsupported:
        return None


def _schema_problems(
    name: str, root: Map, doc: dict[str, Any], poisoned: set[Path]
) -> list[Problem]:
    errors = _schema_errors(doc)
    problems: list[Problem] = []
    for error in errors:
        for path, message, at_key in _translate(error):
            if any(path[:i] in poisoned for i in range(len(path) + 1)):
                continue
            node, key_node = locate(root, path)
            where = key_node if (at_key and key_node is not None) else node
            problems.append(Problem(name, where.line, where.column, format_path(path), message))
    return problems


def _schema_errors(doc: dict[str, Any]) -> Iterator[ValidationError]:
    """Schema errors of ``doc``; jsonschema only sees the tasks the fast check rejects.

    jsonschema takes about a third of a millisecond per task, too slow for files of
    thousands of tasks; the compiled check is exact, so when it accepts a document or a
    task, jsonschema would find nothing there. This relies on the schema putting no
    constraint across tasks (such as uniqueness), which ``test_schema`` guards.
    """
    check = _fast_check()
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
    # tasks can hold errors. Their indexes are mapped back to the whole document.
    for error in validator.iter_errors({**doc, "tasks": [tasks[i] for i in bad]}):
        path = error.absolute_path
        if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
            error.path[1] = bad[path[1]]
        yield error


# --- translating jsonschema errors ------------------------------------------------------

# Wire names of the DingTalk API and other likely slips, for "did you mean".
_ALIASES = {
    "pcUrl": "pc_url",
    "formItemList": "form",
    "form_item_list": "form",
    "originator_user_id": "originator_userid",
    "user_id": "userid",
    "user_ids": "userids",
    "pcOpenType": "pc_open_type",
    "sourceName": "source_name",
    "createTime": "create_time",
}
_KIND_NAMES = {
    "string": "text",
    "array": "a list",
    "object": "a mapping",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_ENUM_WORDS = {
    "pc_open_type": "2 (open in the DingTalk client) or 4 (open in a browser)",
    "status": "'open' or 'done'",
}

Translated = tuple[Path, str, bool]  # path, message, located at the key rather than the value


def _arg(error: ValidationError) -> Any:
    """The failing keyword's value (the stubs allow "unset"; a yielded error always has it)."""
    return cast(Any, error.validator_value)


def _value(error: ValidationError) -> Any:
    return cast(Any, error.instance)


def _subschema(error: ValidationError) -> dict[str, Any]:
    schema = error.schema
    return schema if isinstance(schema, dict) else {}


def _kind_of(value: Any) -> str:
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _label(path: Path) -> str:
    """What the value at ``path`` is, in a message's words."""
    if not path:
        return "the file"
    last = path[-1]
    parent = path[-2] if len(path) >= 2 else None
    if isinstance(last, int):
        return {"tasks": "task", "userids": "userid", "form": "form item"}.get(str(parent), "item")
    if parent == "form":  # a mapping-style form: title: content
        return "form content"
    if len(path) >= 3 and path[-3] == "form":
        return f"form {last}"
    return last


def _translate(error: ValidationError) -> list[Translated]:
    path: Path = tuple(error.absolute_path)
    keyword = str(error.validator)
    handler = _HANDLERS.get(keyword, _generic)
    return handler(error, path)


def _generic(error: ValidationError, path: Path) -> list[Translated]:
    message = error.message if len(error.message) <= 100 else error.message[:99] + "…"
    return [(path, f"{_label(path)}: {message}", False)]


def _on_type(error: ValidationError, path: Path) -> list[Translated]:
    wanted = _arg(error)
    kinds = [wanted] if isinstance(wanted, str) else list(wanted)
    expected = " or ".join(_KIND_NAMES.get(kind, kind) for kind in kinds)
    return [(path, f"{_label(path)} must be {expected}, not {_kind_of(_value(error))}", False)]


def _on_required(error: ValidationError, path: Path) -> list[Translated]:
    instance = _value(error)
    in_task = len(path) == 2 and path[0] == "tasks"
    out: list[Translated] = []
    for field in _arg(error):
        if field in instance:
            continue
        hint = " (give it in the task or in defaults)" if in_task and field in _DEFAULTABLE else ""
        out.append((path, f"missing required field '{field}'{hint}", False))
    return out


def _on_additional(error: ValidationError, path: Path) -> list[Translated]:
    known = list(_subschema(error).get("properties", {}))
    out: list[Translated] = []
    for field in _value(error):
        if field in known:
            continue
        if path == ("defaults",) and field in ("key", "userid", "userids"):
            message = f"'{field}' cannot stand in defaults; give it in each task"
        else:
            message = f"unknown field {show(field)}{_suggestion(field, known)}"
        out.append(((*path, field), message, True))
    return out


def _suggestion(field: str, known: list[str]) -> str:
    guess = _ALIASES.get(field)
    if guess not in known:
        close = difflib.get_close_matches(field.lower(), known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    return f" (did you mean '{guess}'?)" if guess else ""


def _on_const(error: ValidationError, path: Path) -> list[Translated]:
    wanted, got = _arg(error), _value(error)
    if path == ("version",):
        if isinstance(got, str):
            message = f"version must be the number {wanted}, not the text {show(got)}"
        else:
            message = f"unsupported version {show(got)}; this dingsync reads version {wanted}"
    else:
        message = f"{_label(path)} must be {show(wanted)}, not {show(got)}"
    return [(path, message, False)]


def _on_enum(error: ValidationError, path: Path) -> list[Translated]:
    label = _label(path)
    words = _ENUM_WORDS.get(label) or " or ".join(show(v) for v in _arg(error))
    return [(path, f"{label} must be {words}, not {show(_value(error))}", False)]


def _on_min_length(error: ValidationError, path: Path) -> list[Translated]:
    label, limit = _label_of(error, path), _arg(error)
    if limit == 1:
        return [(_key_path(error, path), f"{label} is empty", _is_key(error))]
    message = f"{label} is {len(_value(error))} characters; at least {limit} needed"
    return [(_key_path(error, path), message, _is_key(error))]


def _on_max_length(error: ValidationError, path: Path) -> list[Translated]:
    label, limit = _label_of(error, path), _arg(error)
    if label == "title":
        limit_text = f"DingTalk allows at most {limit}"
    else:
        limit_text = f"at most {limit} allowed"
    message = f"{label} is {len(_value(error))} characters; {limit_text}"
    return [(_key_path(error, path), message, _is_key(error))]


def _on_pattern(error: ValidationError, path: Path) -> list[Translated]:
    value = _value(error)
    if value == "" and _subschema(error).get("minLength", 0) >= 1:
        return []  # minLength already says it is empty
    label = _label_of(error, path)
    if label == "key":
        message = (
            f"key {show(value)} is not valid: use 1 to 64 lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    elif label in ("userid", "originator_userid"):
        message = f"{label} {show(value)} must not contain whitespace"
    elif label in ("url", "pc_url"):
        message = f"{label} must be an http:// or https:// link with a host, not {show(value)}"
    elif label == "create_time":
        message = (
            f"create_time {show(value)} is not an ISO-8601 date-time "
            "such as 2026-12-01T09:00:00+08:00"
        )
    elif _arg(error) == "\\S":
        message = f"{label} is blank"
    else:
        message = f"{label} {show(value)} does not match {show(_arg(error))}"
    return [(_key_path(error, path), message, _is_key(error))]


def _is_key(error: ValidationError) -> bool:
    """True for an error about a mapping key (``propertyNames``), not about a value."""
    return "propertyNames" in error.relative_schema_path


def _key_path(error: ValidationError, path: Path) -> Path:
    return (*path, _value(error)) if _is_key(error) else path


def _label_of(error: ValidationError, path: Path) -> str:
    return "form title" if _is_key(error) else _label(path)


def _on_items_count(error: ValidationError, path: Path) -> list[Translated]:
    label, limit, count = _label(path), _arg(error), len(_value(error))
    noun = "entries" if isinstance(_value(error), dict) else "items"
    if count == 0:
        what = {"userids": "userid", "tasks": "task"}.get(label, "item")
        return [(path, f"{label} is empty; give at least one {what}", False)]
    if str(error.validator).startswith("min"):
        return [(path, f"{label} has {count} {noun}; at least {limit} needed", False)]
    if label == "form":
        return [(path, f"form has {count} {noun}; DingTalk allows at most {limit}", False)]
    return [(path, f"{label} has {count} {noun}; at most {limit} allowed", False)]


def _on_unique(error: ValidationError, path: Path) -> list[Translated]:
    seen: list[Any] = []
    for index, item in enumerate(_value(error)):
        if any(_equal(item, other) for other in seen):
            return [((*path, index), f"{_label(path)} lists {show(item)} more than once", False)]
        seen.append(item)
    return _generic(error, path)


def _on_one_of(error: ValidationError, path: Path) -> list[Translated]:
    task = _value(error)
    if not isinstance(task, dict):
        return []  # the type error says it all
    if len(path) == 2 and path[0] == "tasks":
        if "userid" in task and "userids" in task:
            return [((*path, "userids"), "give either userid or userids, not both", True)]
        return [(path, "missing required field 'userid' (or 'userids')", False)]
    return _generic(error, path)


_HANDLERS: dict[str, Callable[[ValidationError, Path], list[Translated]]] = {
    "type": _on_type,
    "required": _on_required,
    "additionalProperties": _on_additional,
    "const": _on_const,
    "enum": _on_enum,
    "minLength": _on_min_length,
    "maxLength": _on_max_length,
    "pattern": _on_pattern,
    "minItems": _on_items_count,
    "maxItems": _on_items_count,
    "minProperties": _on_items_count,
    "maxProperties": _on_items_count,
    "uniqueItems": _on_unique,
    "oneOf": _on_one_of,
}


# --- the compiled schema check ----------------------------------------------------------
#
# An exact acceptor for the subset of JSON Schema 2020-12 the task schema uses. It only
# answers "valid or not"; messages always come from jsonschema. A keyword it does not
# know makes it give up (``_Unsupported``), and then jsonschema checks everything.

Check = Callable[[Any], bool]


class _Unsupported(Exception):
    pass


_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
)
_JSON_TYPES: dict[str, Check] = {
    "string": lambda x: type(x) is str,
    "array": lambda x: type(x) is list,
    "object": lambda x: type(x) is dict,
    "null": lambda x: x is None,
    "boolean": lambda x: type(x) is bool,
    "integer": lambda x: type(x) is int or (type(x) is float and x.is_integer()),
    "number": lambda x: type(x) in (int, float),
}


def _compile(schema: Any, root: dict[str, Any], refs: dict[str, Check], busy: set[str]) -> Check:
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if not isinstance(schema, dict):
        raise _Unsupported(repr(schema))
    text = _text_check(schema)
    if text is not None:
        return text
    checks: list[Check] = []
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("then", "else"):
            continue
        make = _MAKERS.get(keyword)
        if make is None:
            raise _Unsupported(keyword)
        checks.append(
            make(arg, schema, lambda s: _compile(s, root, refs, busy), (root, refs, busy))
        )
    return _all(checks)


_TEXT_KEYWORDS = frozenset({"type", "minLength", "maxLength", "pattern"})


def _text_check(schema: dict[str, Any]) -> Check | None:
    """One closure for the most common schema, a string with length and pattern limits."""
    keywords = schema.keys() - _ANNOTATIONS
    if schema.get("type") != "string" or not keywords <= _TEXT_KEYWORDS:
        return None
    low, high = schema.get("minLength", 0), schema.get("maxLength", float("inf"))
    search = _regex(schema["pattern"]).search if "pattern" in schema else None

    def check(x: Any) -> bool:
        if type(x) is not str or not low <= len(x) <= high:
            return False
        return search is None or search(x) is not None

    return check


def _all(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def check(x: Any) -> bool:
        for one in frozen:
            if not one(x):
                return False
        return True

    return check


Sub = Callable[[Any], Check]
Ctx = tuple[dict[str, Any], dict[str, Check], set[str]]


def _make_ref(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    root, refs, busy = ctx
    prefix = "#/$defs/"
    if not isinstance(arg, str) or not arg.startswith(prefix):
        raise _Unsupported(arg)
    name = arg[len(prefix) :]
    if name in refs:
        return refs[name]
    if name in busy:  # a recursive reference: look the compiled check up when called
        return lambda x: refs[name](x)
    busy.add(name)
    refs[name] = sub(root["$defs"][name])
    busy.discard(name)
    return refs[name]


def _make_type(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    kinds = [arg] if isinstance(arg, str) else list(arg)
    tests = tuple(_JSON_TYPES[kind] for kind in kinds)
    if len(tests) == 1:
        return tests[0]
    return lambda x: any(test(x) for test in tests)


def _make_const(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return _make_enum([arg], schema, sub, ctx)


def _make_enum(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    options = tuple(arg)
    if all(type(option) is str for option in options):
        texts = frozenset(options)
        return lambda x: type(x) is str and x in texts
    return lambda x: any(_equal(x, option) for option in options)


def _make_pattern(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    search = _regex(arg).search
    return lambda x: type(x) is not str or search(x) is not None


def _make_min_length(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not str or len(x) >= arg


def _make_max_length(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not str or len(x) <= arg


def _make_min_items(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not list or len(x) >= arg


def _make_max_items(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not list or len(x) <= arg


def _make_min_properties(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not dict or len(x) >= arg


def _make_max_properties(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not dict or len(x) <= arg


def _make_unique(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    if not arg:
        return lambda x: True
    return lambda x: type(x) is not list or _unique(x)


def _make_items(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    if "prefixItems" in schema:
        raise _Unsupported("prefixItems")
    item = sub(arg)

    def check(x: Any) -> bool:
        if type(x) is not list:
            return True
        for value in x:
            if not item(value):
                return False
        return True

    return check


def _make_required(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    names = tuple(arg)
    return lambda x: type(x) is not dict or all(name in x for name in names)


def _make_properties(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    checks = {name: sub(value) for name, value in arg.items()}

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return True
        for name, value in x.items():
            one = checks.get(name)
            if one is not None and not one(value):
                return False
        return True

    return check


def _make_additional(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    if "patternProperties" in schema:
        raise _Unsupported("patternProperties")
    known = frozenset(schema.get("properties", {}))
    if arg is False:
        return lambda x: type(x) is not dict or x.keys() <= known
    extra = sub(arg)

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return True
        for name, value in x.items():
            if name not in known and not extra(value):
                return False
        return True

    return check


def _make_property_names(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    names = sub(arg)
    return lambda x: type(x) is not dict or all(names(name) for name in x)


def _make_all_of(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return _all([sub(one) for one in arg])


def _make_any_of(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    options = tuple(sub(one) for one in arg)
    return lambda x: any(option(x) for option in options)


def _make_one_of(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    options = tuple(sub(one) for one in arg)
    return lambda x: sum(1 for option in options if option(x)) == 1


def _make_not(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    inner = sub(arg)
    return lambda x: not inner(x)


def _make_if(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    condition = sub(arg)
    then = sub(schema.get("then", True))
    otherwise = sub(schema.get("else", True))
    return lambda x: then(x) if condition(x) else otherwise(x)


_MAKERS: dict[str, Callable[[Any, dict[str, Any], Sub, Ctx], Check]] = {
    "$ref": _make_ref,
    "type": _make_type,
    "const": _make_const,
    "enum": _make_enum,
    "pattern": _make_pattern,
    "minLength": _make_min_length,
    "maxLength": _make_max_length,
    "minItems": _make_min_items,
    "maxItems": _make_max_items,
    "minProperties": _make_min_properties,
    "maxProperties": _make_max_properties,
    "uniqueItems": _make_unique,
    "items": _make_items,
    "required": _make_required,
    "properties": _make_properties,
    "additionalProperties": _make_additional,
    "propertyNames": _make_property_names,
    "allOf": _make_all_of,
    "anyOf": _make_any_of,
    "oneOf": _make_one_of,
    "not": _make_not,
    "if": _make_if,
}


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema defines it: true is not 1, 1.0 is 1."""
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        return False
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return bool(one == two)


def _unique(items: list[Any]) -> bool:
    if all(type(item) is str for item in items):
        return len(set(items)) == len(items)
    seen: list[Any] = []
    for item in items:
        if any(_equal(item, other) for other in seen):
            return False
        seen.append(item)
    return True


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
        message = f"duplicate task key {show(key)} (first at line {earlier.line})"
        problems.append(Problem(name, here.line, here.column, f"tasks[{index}].key", message))
    return problems


def _bad_create_times(
    name: str, root: Map, defaults: dict[str, Any], tasks: list[Any]
) -> list[Problem]:
    owners: list[tuple[Path, Any]] = [(("defaults",), defaults)]
    owners += [(("tasks", i), task) for i, task in enumerate(tasks)]
    problems: list[Problem] = []
    for path, owner in owners:
        value = owner.get("create_time") if isinstance(owner, dict) else None
        if not isinstance(value, str) or not _CREATE_TIME.fullmatch(value):
            continue  # absent, or the schema reports it
        try:
            create_time_ms(value)
        except ValueError as err:
            node, _ = locate(root, (*path, "create_time"))
            message = f"create_time {show(value)} is not a real date-time: {err}"
            full = format_path((*path, "create_time"))
            problems.append(Problem(name, node.line, node.column, full, message))
    return problems


def _duplicate_content(
    name: str,
    nodes: list[Node],
    defaults: dict[str, Any],
    tasks: list[Any],
    bad: set[str],
) -> list[Problem]:
    """Two records with the same userid, title and form: DingTalk refuses the second."""
    owner: dict[tuple[str, str, FormPairs], int] = {}
    clashes: dict[tuple[int, int], list[str]] = {}
    for index, task in enumerate(tasks):
        if f"tasks[{index}]" in bad or not isinstance(task, dict):
            continue
        merged = {**defaults, **task}
        title, form = merged.get("title"), _form_pairs(merged.get("form"))
        if not isinstance(title, str) or form is None:
            continue
        for userid in _userids(merged):
            first = owner.setdefault((userid, title, form), index)
            if first != index:
                clashes.setdefault((index, first), []).append(userid)
    problems: list[Problem] = []
    for (index, first), userids in clashes.items():
        more = f" and {len(userids) - 1} more" if len(userids) > 1 else ""
        message = (
            f"sends the same title and form as task {show(tasks[first]['key'])} "
            f"(line {nodes[first].line}) to {userids[0]}{more}; DingTalk would reject it as a "
            "duplicate (errcode 854001)"
        )
        node = nodes[index]
        problems.append(Problem(name, node.line, node.column, f"tasks[{index}]", message))
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


def create_time_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 date-time; naive means Asia/Shanghai.

    Raises ValueError for text that is not one, or names a day or time that does not exist.
    """
    found = _CREATE_TIME.fullmatch(text)
    if not found:
        raise ValueError("not an ISO-8601 date-time")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    if zulu:
        zone = timezone.utc
    elif sign:
        offset = timedelta(hours=int(off_h), minutes=int(off_m or 0))
        if offset >= timedelta(hours=24):
            raise ValueError("time-zone offset out of range")
        zone = timezone(-offset if sign == "-" else offset)
    else:
        zone = SHANGHAI
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, zone
    )
    return (moment - _EPOCH) // timedelta(milliseconds=1)


# --- records ----------------------------------------------------------------------------


def _records(doc: dict[str, Any], nodes: list[Node]) -> tuple[DesiredRecord, ...]:
    defaults: dict[str, Any] = doc.get("defaults") or {}
    records: list[DesiredRecord] = []
    for task, node in zip(doc["tasks"], nodes, strict=True):
        merged = {**defaults, **task}
        content = Content(
            title=merged["title"],
            url=merged["url"],
            form=_form_pairs(merged["form"]) or (),
            pc_url=merged.get("pc_url"),
            source_name=merged.get("source_name"),
            originator_userid=merged.get("originator_userid"),
            pc_open_type=_optional_int(merged.get("pc_open_type")),
        )
        status: Status = "done" if merged.get("status") == "done" else "open"
        when = merged.get("create_time")
        millis = create_time_ms(when) if isinstance(when, str) else None
        key = task["key"]
        records.extend(
            DesiredRecord(key, userid, content, status, millis, node.line)
            for userid in _userids(task)
        )
    return tuple(records)


def _optional_int(value: Any) -> int | None:
    # The schema accepts 2.0 as the integer 2; the API wants a JSON integer.
    return None if value is None else int(value)
