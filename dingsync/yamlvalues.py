"""Located YAML nodes, and the plain Python values they stand for.

``dingsync.yamlnodes`` composes a document into these nodes; this module turns them into
values by the task file's rules, finds the node at a path so that a problem can be
reported as ``FILE:LINE:COL``, and quotes values for messages. The rules:

* text as written: a plain ``2026-12-05``, ``010`` or ``no`` in a text field is that text,
  not a date, an octal number or a boolean (YAML 1.1 resolution is never applied). Only
  null stays null everywhere (``~``, ``null`` or nothing), so a field left empty is
  reported as such instead of becoming the text "null"; quoted, ``"null"`` is text. Where
  a ``Layout`` says a number is wanted, a plain scalar is read as one;
* duplicate mapping keys reported instead of silently keeping the last; merge keys
  (``<<``) applied;
* no tags beyond the core ones, so nothing can construct Python objects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import NamedTuple

# Nothing valid comes close to this depth (a task file nests six levels); the limit keeps
# hostile input from exhausting the stack while converting.
MAX_DEPTH = 64
# An alias may repeat a collection of at most this many nodes...
MAX_ALIASED_NODES = 10_000
# ...and all aliases of a document together may add at most this many nodes. Sharing a
# list of 1,000 userids among 100 tasks adds 100,000.
MAX_ALIAS_EXPANSION = 1_000_000

_CORE = "tag:yaml.org,2002:"
STR_TAG = _CORE + "str"
NULL_TAG = _CORE + "null"
INT_TAG = _CORE + "int"
FLOAT_TAG = _CORE + "float"
BOOL_TAG = _CORE + "bool"
MERGE_TAG = _CORE + "merge"
_SCALAR_TAGS = frozenset({STR_TAG, NULL_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, _CORE + "timestamp"})
_SEQ_TAGS = frozenset({_CORE + "seq"})
_MAP_TAGS = frozenset({_CORE + "map"})

# YAML's null spellings; a plain scalar written so has no value at all.
NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(
    r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
)

PathItem = str | int
Path = tuple[PathItem, ...]


class Node:
    """A composed YAML value and the 1-based position where it starts."""

    __slots__ = ("tag", "line", "column")

    def __init__(self, tag: str | None, line: int, column: int) -> None:
        self.tag = tag  # an explicit tag, resolved to its full name; None when untagged
        self.line = line
        self.column = column


class Scalar(Node):
    __slots__ = ("text", "plain")

    def __init__(self, tag: str | None, line: int, column: int, text: str, plain: bool) -> None:
        self.tag = tag
        self.line = line
        self.column = column
        self.text = text
        self.plain = plain  # unquoted, not a block scalar, untagged


class Seq(Node):
    __slots__ = ("items", "size")

    def __init__(self, tag: str | None, line: int, column: int) -> None:
        super().__init__(tag, line, column)
        self.items: list[Node] = []
        self.size = 1  # nodes in this collection once aliases are expanded, itself included


class Map(Node):
    __slots__ = ("pairs", "size")

    def __init__(self, tag: str | None, line: int, column: int) -> None:
        super().__init__(tag, line, column)
        self.pairs: list[tuple[Node, Node]] = []
        self.size = 1


class YamlError(Exception):
    """The stream cannot be read as one safe YAML document; nothing was converted."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def node_size(node: Node) -> int:
    return node.size if isinstance(node, (Seq, Map)) else 1


# --- conversion -------------------------------------------------------------------------


@dataclass
class Layout:
    """Where in a document a plain scalar may be read as a number or a boolean.

    ``typed`` names the keys of this mapping whose plain values are typed; ``fields``
    gives the layout below a key, ``items`` the layout of a sequence's items. Everywhere
    else a scalar is text as written.
    """

    typed: frozenset[str] = frozenset()
    fields: dict[str, Layout] = field(default_factory=dict)
    items: Layout | None = None


LEAF = Layout()


class NodeProblem(NamedTuple):
    line: int
    column: int
    path: Path
    message: str


def is_merge_key(node: Node) -> bool:
    if not isinstance(node, Scalar):
        return False
    return node.tag == MERGE_TAG or (node.plain and node.text == "<<")


Report = Callable[[Node, Path, str], None]


def mapping_pairs(
    node: Map, path: Path = (), report: Report | None = None, depth: int = 0
) -> list[tuple[str, Node, Node]]:
    """The (key, key node, value node) entries of a mapping, merge keys applied.

    The first of duplicate keys is kept (and the others reported); keys written in the
    mapping win over merged ones, earlier merge sources over later ones, and merged keys
    take the place of the ``<<`` that brought them.
    """
    explicit: dict[str, Node] = {}
    merges = False
    for key_node, _ in node.pairs:
        if not isinstance(key_node, Scalar):
            if report:
                report(key_node, path, "a mapping key must be text, not a collection")
            continue
        if is_merge_key(key_node):
            merges = True
            continue
        key = key_node.text
        first = explicit.get(key)
        if first is None:
            explicit[key] = key_node
        elif report:
            message = f"duplicate key {show(key)} (first at line {first.line})"
            report(key_node, (*path, key), message)
    if not merges:
        return [
            (key_node.text, key_node, value)
            for key_node, value in node.pairs
            if isinstance(key_node, Scalar) and explicit.get(key_node.text) is key_node
        ]
    return _merged_pairs(node, explicit, path, report, depth)


def _merged_pairs(
    node: Map, explicit: dict[str, Node], path: Path, report: Report | None, depth: int
) -> list[tuple[str, Node, Node]]:
    out: list[tuple[str, Node, Node]] = []
    taken = set(explicit)
    for key_node, value in node.pairs:
        if not isinstance(key_node, Scalar):
            continue
        if not is_merge_key(key_node):
            if explicit.get(key_node.text) is key_node:
                out.append((key_node.text, key_node, value))
            continue
        for source in _merge_sources(value, path, report):
            if depth >= MAX_DEPTH:
                if report:
                    report(value, path, f"merge keys nested deeper than {MAX_DEPTH} levels")
                break
            for entry in mapping_pairs(source, path, report, depth + 1):
                if entry[0] not in taken:
                    taken.add(entry[0])
                    out.append(entry)
    return out


def _merge_sources(value: Node, path: Path, report: Report | None) -> list[Map]:
    if isinstance(value, Map):
        return [value]
    if isinstance(value, Seq) and all(isinstance(item, Map) for item in value.items):
        return [item for item in value.items if isinstance(item, Map)]
    if report:
        report(value, path, "a merge key '<<' takes a mapping or a list of mappings")
    return []


@dataclass
class Converted:
    value: Any
    problems: list[NodeProblem]
    # Paths whose value carried a forbidden tag: already reported, so schema complaints
    # about them would only repeat the problem.
    poisoned: set[Path]


class _Converter:
    def __init__(self, max_nodes: int) -> None:
        self.problems: list[NodeProblem] = []
        self.poisoned: set[Path] = set()
        self.visits = 0
        self.max_nodes = max_nodes

    def report(self, node: Node, path: Path, message: str) -> None:
        self.problems.append(NodeProblem(node.line, node.column, path, message))

    def value(self, node: Node, layout: Layout, path: Path, typed: bool) -> Any:
        # A backstop: composing already bounded the expansion, this bounds the work.
        self.visits += 1
        if self.visits > self.max_nodes:
            raise YamlError(node.line, node.column, "document too large after alias expansion")
        if isinstance(node, Scalar):
            if node.tag is not None and node.tag not in _SCALAR_TAGS:
                self.forbidden_tag(node, path)
            return scalar_value(node, typed)
        if isinstance(node, Map):
            if node.tag is not None and node.tag not in _MAP_TAGS:
                self.forbidden_tag(node, path)
            return self.mapping(node, layout, path)
        assert isinstance(node, Seq)
        if node.tag is not None and node.tag not in _SEQ_TAGS:
            self.forbidden_tag(node, path)
        item_layout = layout.items or LEAF
        value = self.value
        return [value(item, item_layout, (*path, i), False) for i, item in enumerate(node.items)]

    def mapping(self, node: Map, layout: Layout, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fields, typed = layout.fields, layout.typed
        for key, key_node, value_node in mapping_pairs(node, path, self.report):
            if key_node.tag is not None and key_node.tag not in _SCALAR_TAGS:
                self.forbidden_tag(key_node, (*path, key))
            out[key] = self.value(value_node, fields.get(key, LEAF), (*path, key), key in typed)
        return out

    def forbidden_tag(self, node: Node, path: Path) -> None:
        shown = node.tag.replace(_CORE, "!!", 1) if node.tag else "?"
        self.report(node, path, f"tag {show(shown)} is not allowed; write plain YAML values")
        self.poisoned.add(path)


def convert(root: Node, layout: Layout, max_nodes: int) -> Converted:
    """Plain values for the document at ``root``, with the problems met on the way."""
    converter = _Converter(max_nodes)
    value = converter.value(root, layout, (), False)
    return Converted(value, converter.problems, converter.poisoned)


class Item(NamedTuple):
    """One item of a list, converted, and what is needed to locate its parts."""

    value: Any
    line: int
    column: int
    # Problems met while converting it, and the paths whose tag was refused (as in
    # ``Converted``); their paths start at the list's key and the item's index.
    problems: list[NodeProblem]
    poisoned: set[Path]
    # Where the value of each of the asked-for fields that the item has starts.
    places: dict[str, tuple[int, int]]
    # The item's nodes, composed when asked for: most items never need them.
    nodes: Callable[[], Node]
    size: int  # nodes in it, aliases expanded


def converted_item(node: Node, layout: Layout, path: Path, fields: frozenset[str]) -> Item:
    """The item ``node`` at ``path``, converted on its own as ``convert`` would within the
    document; ``fields`` names the fields whose places it carries."""
    converter = _Converter(node_size(node) + MAX_ALIAS_EXPANSION)
    value = converter.value(node, layout, path, False)
    return _item(node, value, converter.problems, converter.poisoned, fields)


def split_items(
    root: Node, converted: Converted, key: str, fields: frozenset[str]
) -> tuple[Iterator[Item], Converted] | None:
    """The conversion of the document at ``root`` in two: the items of the list under its
    ``key``, each as ``converted_item`` gives it, made as they are asked for, and the rest.
    None if ``key`` holds no list.
    """
    seq, _ = locate(root, (key,))
    values = converted.value.get(key) if isinstance(converted.value, dict) else None
    if not isinstance(seq, Seq) or not isinstance(values, list):
        return None
    problems: dict[int, list[NodeProblem]] = {}
    poisoned: dict[int, set[Path]] = {}
    rest = Converted({k: v for k, v in converted.value.items() if k != key}, [], set())
    for problem in converted.problems:
        index = _item_index(problem.path, key)
        if index is None:
            rest.problems.append(problem)
        else:
            problems.setdefault(index, []).append(problem)
    for path in converted.poisoned:
        index = _item_index(path, key)
        if index is None:
            rest.poisoned.add(path)
        else:
            poisoned.setdefault(index, set()).add(path)
    items = (
        _item(node, value, problems.get(index, []), poisoned.get(index, set()), fields)
        for index, (node, value) in enumerate(zip(seq.items, values, strict=True))
    )
    return items, rest


def _item_index(path: Path, key: str) -> int | None:
    """The index of the item of the list under ``key`` that ``path`` lies in, if any."""
    if len(path) >= 2 and path[0] == key and isinstance(path[1], int):
        return path[1]
    return None


def _item(
    node: Node, value: Any, problems: list[NodeProblem], poisoned: set[Path], fields: frozenset[str]
) -> Item:
    places: dict[str, tuple[int, int]] = {}
    if isinstance(value, dict):
        for name in fields & value.keys():
            found, _ = locate(node, (name,))
            places[name] = (found.line, found.column)
    return Item(
        value, node.line, node.column, problems, poisoned, places, lambda: node, node_size(node)
    )


def scalar_value(node: Scalar, typed: bool) -> Any:
    """A scalar's value: None for YAML's null; text as written unless ``typed``.

    Where the schema wants a number (``typed``), a plain scalar is read as a number, so that
    ``1`` is 1 and ``"1"`` stays text (see ``typed_value``).
    """
    text = node.text
    tag = node.tag
    if tag == NULL_TAG or (node.plain and text in NULLS):
        return None
    if not typed or not (node.plain or tag in (INT_TAG, FLOAT_TAG, BOOL_TAG)):
        return text
    return typed_value(text)


def typed_value(text: str) -> Any:
    """A number as YAML 1.2's core schema reads it, or a boolean as PyYAML's safe_load
    (YAML 1.1) reads it, ``yes``/``no``/``on``/``off`` included; else the text itself."""
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return _BOOLS.get(text, text)


def locate(root: Node, path: Path) -> tuple[Node, Node | None]:
    """The node at ``path`` and the key node naming it (None for items and the root).

    Stops at the deepest node that exists, so a missing field is located at the mapping
    that lacks it.
    """
    node: Node = root
    key_node: Node | None = None
    for part in path:
        if isinstance(node, Map) and isinstance(part, str):
            found = next((entry for entry in mapping_pairs(node) if entry[0] == part), None)
            if found is None:
                break
            _, key_node, node = found
        elif isinstance(node, Seq) and isinstance(part, int) and 0 <= part < len(node.items):
            node, key_node = node.items[part], None
        else:
            break
    return node, key_node


def show(value: Any, limit: int = 40) -> str:
    """A value quoted for a message, shortened so that messages stay one short line."""
    if isinstance(value, str):
        if len(value) > limit:
            value = value[: limit - 1] + "…"
        return repr(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
