"""The task schema, compiled: an exact, fast acceptor for the subset of JSON Schema
2020-12 that ``schemas/tasks.schema.json`` uses, and its rules for one task.

It only answers "valid or not"; ``dingsync.schemawords`` asks jsonschema for the words of
a rejection. A keyword the compiler does not know makes it give up (``Unsupported``), and
then jsonschema checks everything.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

from dingsync.model import text_length

SCHEMA_RESOURCE = "tasks.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    # Read beside the package's own file rather than through importlib.resources, whose
    # import costs validate more than reading the schema does; dingsync is never zipped.
    package = importlib.import_module("dingsync.schemas")
    folder = os.path.dirname(package.__file__ or "")
    with open(os.path.join(folder, SCHEMA_RESOURCE), encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


@functools.cache
def regex(pattern: str) -> re.Pattern[str]:
    """A schema pattern with ECMA-262 meaning: ``$`` ends the text.

    Python's ``$`` also matches before a final newline, which would let ``"laptop\\n"``
    pass as a key.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


@functools.cache
def fast_check() -> Callable[[Any], bool] | None:
    """A compiled form of the schema, or None if it uses a keyword the compiler lacks."""
    try:
        return _compile(schema(), schema(), {}, set())
    except Unsupported:
        return None


# --- the compiled schema check ----------------------------------------------------------
#
# An exact acceptor for the subset of JSON Schema 2020-12 the task schema uses. It only
# answers "valid or not"; messages always come from jsonschema. A keyword it does not
# know makes it give up (``Unsupported``), and then jsonschema checks everything.

Check = Callable[[Any], bool]


class Unsupported(Exception):
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
# JSON types that are exactly one Python type each (integer and number are not).
_PYTHON_TYPES: dict[str, type] = {
    "string": str,
    "array": list,
    "object": dict,
    "null": type(None),
    "boolean": bool,
}


# Keywords of a schema for the document that never judge its tasks together...
_DOCUMENT_KEYWORDS = _ANNOTATIONS | {
    "type",
    "required",
    "properties",
    "additionalProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "allOf",
    "if",
    "then",
    "else",
}
# ...those of the schema for the list of tasks...
_TASKS_KEYWORDS = _ANNOTATIONS | {"type", "minItems", "items"}
# ...and those a condition (``if``) may use without looking into the tasks.
_CONDITION_KEYWORDS = _ANNOTATIONS | {"type", "required", "properties", "propertyNames"}


class TaskRules(NamedTuple):
    """What a schema for the document asks of each task, apart from the rest of it.

    ``always`` applies to every task; ``parts`` (allOf) add theirs; ``condition`` looks at
    the rest of the document only, and picks ``then`` or ``otherwise``.
    """

    always: tuple[Check, ...]
    parts: tuple[TaskRules, ...]
    condition: Check | None
    then: TaskRules | None
    otherwise: TaskRules | None

    def checks(self, rest: dict[str, Any]) -> list[Check]:
        """The checks each task must pass in a document whose other parts are ``rest``."""
        found = list(self.always)
        for part in self.parts:
            found += part.checks(rest)
        if self.condition is not None:
            # The condition looks at no task: an empty list stands for them.
            taken = self.then if self.condition({**rest, "tasks": []}) else self.otherwise
            found += taken.checks(rest) if taken else []
        return found


_NO_RULES = TaskRules((), (), None, None, None)


@functools.cache
def task_rules() -> TaskRules | None:
    """The task file schema's rules for each task; None if it could judge tasks together.

    The loader checks tasks one at a time, as it takes them in (``_TaskCollector``), and
    tells each task's own problems apart from those of the rest of the document. That is
    sound when a document is valid exactly when its rest is and each task passes these
    rules. A keyword that could judge the tasks together (``maxItems``, ``uniqueItems``, a
    condition on the tasks...) makes this None.
    """
    root: dict[str, Any] = schema()
    refs: dict[str, Check] = {}
    try:
        return _rules(root, lambda schema: _compile(schema, root, refs, set()))
    except Unsupported:
        return None


def _rules(schema: Any, sub: Sub) -> TaskRules | None:
    """``task_rules`` of one schema for the document; ``sub`` compiles a schema."""
    if not isinstance(schema, dict):
        return _NO_RULES  # true or false: the same for every task
    if not schema.keys() <= _DOCUMENT_KEYWORDS:
        return None
    always: tuple[Check, ...] = ()
    properties = schema.get("properties", {})
    tasks = properties.get("tasks", True)
    if isinstance(tasks, dict):
        if not tasks.keys() <= _TASKS_KEYWORDS or tasks.get("minItems", 0) > 1:
            return None
        always = (sub(tasks["items"]),) if "items" in tasks else ()
    if "tasks" not in properties and not isinstance(
        schema.get("additionalProperties"), bool | None
    ):
        return None  # a schema for every other property would judge the tasks as one
    condition = schema.get("if")
    if isinstance(condition, dict) and (
        not condition.keys() <= _CONDITION_KEYWORDS or "tasks" in condition.get("properties", {})
    ):
        return None
    parts = [_rules(part, sub) for part in schema.get("allOf", [])]
    then, otherwise = _rules(schema.get("then"), sub), _rules(schema.get("else"), sub)
    if then is None or otherwise is None or None in parts:
        return None
    return TaskRules(
        always,
        tuple(part for part in parts if part is not None),
        None if condition is None else sub(condition),
        then,
        otherwise,
    )


def _compile(schema: Any, root: dict[str, Any], refs: dict[str, Check], busy: set[str]) -> Check:
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if not isinstance(schema, dict):
        raise Unsupported(repr(schema))
    text = _text_check(schema)
    if text is not None:
        return text
    fused = _object_check(schema, lambda s: _compile(s, root, refs, busy))
    if fused is not None:
        return fused
    checks: list[Check] = []
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("then", "else"):
            continue
        make = _MAKERS.get(keyword)
        if make is None:
            raise Unsupported(keyword)
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
    search = regex(schema["pattern"]).search if "pattern" in schema else None

    def check(x: Any) -> bool:
        if type(x) is not str or not low <= len(x) or text_length(x) > high:
            return False
        return search is None or search(x) is not None

    return check


_OBJECT_KEYWORDS = frozenset({"type", "properties", "additionalProperties", "required"})


def _object_check(schema: dict[str, Any], sub: Sub) -> Check | None:
    """One closure for an object's type, properties, additionalProperties and required.

    Every task and form line is such an object; one loop over its fields instead of a
    closure per keyword, each with its own loop, halves the time of the check.
    """
    if schema.get("type") != "object":
        return None
    fields = {name: sub(value) for name, value in schema.get("properties", {}).items()}
    required = frozenset(schema.get("required", ()))
    additional = schema.get("additionalProperties", True)
    closed = additional is False
    extra = None if isinstance(additional, bool) else sub(additional)
    others = {key: value for key, value in schema.items() if key not in _OBJECT_KEYWORDS}
    rest = sub(others) if others.keys() - _ANNOTATIONS - {"then", "else"} else None

    def check(x: Any) -> bool:
        if type(x) is not dict or not required <= x.keys():
            return False
        for name, value in x.items():
            one = fields.get(name)
            if one is not None:
                if not one(value):
                    return False
            elif closed or (extra is not None and not extra(value)):
                return False
        return rest is None or rest(x)

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
        raise Unsupported(arg)
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
    if len(kinds) > 1 and all(kind in _PYTHON_TYPES for kind in kinds):
        classes = frozenset(_PYTHON_TYPES[kind] for kind in kinds)
        return lambda x: type(x) in classes
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
    return lambda x: any(equal(x, option) for option in options)


def _make_pattern(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    search = regex(arg).search
    return lambda x: type(x) is not str or search(x) is not None


def _make_min_length(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not str or len(x) >= arg


def _make_max_length(arg: Any, schema: dict[str, Any], sub: Sub, ctx: Ctx) -> Check:
    return lambda x: type(x) is not str or text_length(x) <= arg


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
        raise Unsupported("prefixItems")
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
    names = frozenset(arg)
    return lambda x: type(x) is not dict or names <= x.keys()


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
        raise Unsupported("patternProperties")
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

    def check(x: Any) -> bool:
        found = False
        for option in options:
            if option(x):
                if found:
                    return False  # a second match: no need to try the rest
                found = True
        return found

    return check


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


def equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema defines it: true is not 1, 1.0 is 1."""
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(equal(one[k], two[k]) for k in one)
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
        if any(equal(item, other) for other in seen):
            return False
        seen.append(item)
    return True
