"""jsonschema's errors about a task file, in words a DingTalk admin can act on.

Each error of ``schemas/tasks.schema.json`` becomes (path, message, at_key): one short
sentence that names the field, says what is wrong with the value and, where it helps,
what would be right (the other API's fields, the allowed values, the limits as DingTalk
counts them); ``worded`` makes them problems located in the file.

jsonschema is only asked about a document the compiled check (``dingsync.schemacheck``)
rejected, so it is imported only then: valid files never pay for it.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from dingsync.errors import Problem
from dingsync.model import FIELDS
from dingsync.model import FIELDS_BY_NAME
from dingsync.model import ON_V1
from dingsync.model import text_length
from dingsync.schemacheck import equal
from dingsync.schemacheck import regex
from dingsync.schemacheck import schema
from dingsync.yamlvalues import Node
from dingsync.yamlvalues import Path
from dingsync.yamlvalues import format_path
from dingsync.yamlvalues import show

# Fields a task may leave to ``defaults``.
DEFAULTABLE = frozenset({f.name for f in FIELDS} | {"status", "create_time"})

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator


# --- translating jsonschema errors ------------------------------------------------------

# Content fields the task file gives as a date or a date-time (due_time).
_TIMES = frozenset(f.name for f in FIELDS if f.kind == "time")

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


def translate(error: ValidationError) -> list[Translated]:
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
        hint = " (give it in the task or in defaults)" if in_task and field in DEFAULTABLE else ""
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
        import difflib  # only a misspelt field needs it; validate starts faster without

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
    value = _value(error)
    units = text_length(value)
    rare = " (an emoji or another rare character counts 2)" if units != len(value) else ""
    message = f"{label} is {units} characters{rare}; {limit_text}"
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
    elif label == "namespace":
        message = (
            f"namespace {show(value)} is not valid: use 1 to 32 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    elif label in ("userid", "originator_userid") and isinstance(value, str):
        odd = _invisible(value)
        spaced = odd is None or any(ch.isspace() for ch in value)
        what = "whitespace" if spaced else f"a control or invisible character ({odd})"
        message = f"{label} {show(value)} must not contain {what}"
    elif label in ("url", "pc_url"):
        message = f"{label} must be an http:// or https:// link with a host, not {show(value)}"
    elif label == "create_time":
        message = (
            f"create_time {show(value)} is not an ISO-8601 date-time "
            "such as 2026-12-01T09:00:00+08:00"
        )
    elif label in _TIMES:
        message = (
            f"{label} {show(value)} is neither a date (2026-12-05: the end of that day) nor "
            "a date-time (2026-12-05T18:00:00+08:00)"
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
        if any(equal(item, other) for other in seen):
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


def _other_api(name: str) -> str:
    """Why ``name`` may not stand in this file: it belongs to the other API."""
    field = FIELDS_BY_NAME.get(name)
    if name == "on_removal" or (field is not None and field.apis == ON_V1):
        return f"'{name}' is a field of the v1.0 to-do API: it needs 'api: todo' at the top"
    return (
        f"'{name}' is a field of the legacy workrecord API; a file with 'api: todo' cannot give it"
    )


def _invisible(text: str) -> str | None:
    """The first control or invisible character of ``text``, as ``U+200B``; None if none."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"U+{ord(ch):04X}"
    return None


def _on_not(error: ValidationError, path: Path) -> list[Translated]:
    value, label = _value(error), _label_of(error, path)
    if _arg(error) == {}:  # a field the schema forbids here: one of the other API's
        return [(path, _other_api(label), True)]
    odd = _invisible(value) if isinstance(value, str) else None
    if label == "title" and odd is not None:
        message = (
            f"title {show(value)} holds a control or invisible character ({odd}), which would "
            "show garbled or hide text in DingTalk and in plans"
        )
        return [(_key_path(error, path), message, _is_key(error))]
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
    "not": _on_not,
}


# --- asking jsonschema ------------------------------------------------------------------


@functools.cache
def validator() -> Validator:
    """jsonschema's validator of the task schema, with the compiled check's meaning of
    ``pattern`` and ``maxLength``."""
    import jsonschema

    # jsonschema's ``extend`` has no type annotations.
    tasks_validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator,
        {"pattern": _pattern_keyword, "maxLength": _max_length_keyword},
    )
    made: Validator = tasks_validator(schema())
    return made


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


def worded(
    name: str,
    errors: Iterable[ValidationError],
    poisoned: set[Path],
    where: Callable[[Path], tuple[Node, Node | None]],
) -> list[Problem]:
    """Problems of file ``name`` for jsonschema's ``errors``, located with ``where`` (see
    ``locate``); none under a path in ``poisoned``, whose tag was already refused."""
    problems: list[Problem] = []
    for error in errors:
        for path, message, at_key in translate(error):
            if any(path[:i] in poisoned for i in range(len(path) + 1)):
                continue
            node, key_node = where(path)
            at = key_node if (at_key and key_node is not None) else node
            problems.append(Problem(name, at.line, at.column, format_path(path), message))
    return problems


def renumbered(errors: Iterable[ValidationError], indexes: list[int]) -> Iterator[ValidationError]:
    """Errors of a document holding only the tasks at ``indexes`` of the file, with each
    path given its task's index in the file."""
    for error in errors:
        path = error.absolute_path
        if len(path) >= 2 and path[0] == "tasks" and isinstance(path[1], int):
            error.path[1] = indexes[path[1]]
        yield error
