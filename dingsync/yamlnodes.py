"""Safe, located YAML: compose a document into nodes that remember where they were written,
then turn the nodes into plain Python values.

PyYAML's own loaders are not used beyond their parser, because the task file needs what
they do not give:

* positions for every value, so that a problem is reported as ``FILE:LINE:COL``;
* text as written: a plain ``2026-12-05``, ``010`` or ``no`` in a text field is that text,
  not a date, an octal number or a boolean (YAML 1.1 resolution is never applied). Only
  null stays null everywhere (``~``, ``null`` or nothing), so a field left empty is
  reported as such instead of becoming the text "null"; quoted, ``"null"`` is text;
* duplicate mapping keys reported instead of silently keeping the last;
* no tags beyond the core ones, so nothing can construct Python objects;
* bounded work: nesting depth and alias expansion are limited while composing, so an
  "alias bomb" is refused after reading it once instead of being expanded. (libyaml's own
  composer is also recursive in C and crashes the interpreter on deeply nested input.)

The events come from libyaml when it is installed (``yaml.CSafeLoader``), else from the
pure-Python parser; both produce the same events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import NamedTuple

import yaml
from yaml import events

try:
    from yaml import CSafeLoader as _EventSource
except ImportError:  # pragma: no cover - libyaml missing: same events, only slower
    from yaml import SafeLoader as _EventSource  # type: ignore[assignment]

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
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {
    **dict.fromkeys(("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"), False),
}
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(
    r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
)
# Characters YAML forbids in a stream (c-printable), to locate a reader error exactly.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
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


def _size(node: Node) -> int:
    return node.size if isinstance(node, (Seq, Map)) else 1


class _Frame:
    """An open collection while composing, and (for a mapping) its pending key."""

    __slots__ = ("node", "key", "anchored")

    def __init__(self, node: Seq | Map, anchored: bool) -> None:
        self.node = node
        self.key: Node | None = None
        self.anchored = anchored


def compose(text: str) -> Node | None:
    """Compose the single YAML document in ``text``; None when it holds no document.

    Raises ``YamlError`` for a syntax error, a second document, an undefined or recursive
    alias, nesting deeper than ``MAX_DEPTH`` or alias expansion over the limits.
    """
    try:
        # The pure-Python parser already reads (and may reject) the text here.
        parser = _EventSource(text)
    except yaml.YAMLError as err:
        raise _translate_yaml_error(err, text) from None
    try:
        return _compose(parser)
    except yaml.YAMLError as err:
        raise _translate_yaml_error(err, text) from None
    finally:
        parser.dispose()


def _compose(parser: Any) -> Node | None:
    # One pass over the events with an explicit stack (no recursion, so no depth crash);
    # the loop is written flat because it runs once per value of the file.
    get_event = parser.get_event
    anchors: dict[str, Node] = {}
    open_ids: set[int] = set()  # anchored collections still being composed
    stack: list[_Frame] = []
    frame: _Frame | None = None  # the innermost open collection
    root: Node | None = None
    expansion = 0
    scalar_event, alias_event = events.ScalarEvent, events.AliasEvent
    mapping_start, sequence_start = events.MappingStartEvent, events.SequenceStartEvent
    end_events = (events.MappingEndEvent, events.SequenceEndEvent)
    while True:
        event = get_event()
        kind = type(event)
        node: Node
        if kind is scalar_event:
            mark = event.start_mark
            tag = event.tag
            node = Scalar(
                None if tag is None else (STR_TAG if tag == "!" else tag),
                mark.line + 1,
                mark.column + 1,
                event.value,
                tag is None and not event.style,
            )
            if event.anchor is not None:
                anchors[event.anchor] = node
            size = 1
        elif kind is mapping_start or kind is sequence_start:
            if len(stack) >= MAX_DEPTH:
                raise _error_at(event, f"nesting deeper than {MAX_DEPTH} levels")
            mark = event.start_mark
            tag = event.tag
            tag = None if tag is None or tag == "!" else tag
            coll: Seq | Map
            if kind is mapping_start:
                coll = Map(tag, mark.line + 1, mark.column + 1)
            else:
                coll = Seq(tag, mark.line + 1, mark.column + 1)
            if event.anchor is not None:
                anchors[event.anchor] = coll
                open_ids.add(id(coll))
            frame = _Frame(coll, event.anchor is not None)
            stack.append(frame)
            continue
        elif kind in end_events:
            done = stack.pop()
            if done.anchored:
                open_ids.discard(id(done.node))
            node = done.node
            size = done.node.size
            frame = stack[-1] if stack else None
        elif kind is alias_event:
            node = _resolve_alias(event, anchors, open_ids)
            size = _size(node)
            expansion += size
            if expansion > MAX_ALIAS_EXPANSION:
                raise _error_at(
                    event,
                    f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes in all; "
                    "write the values out or share fewer",
                )
        elif kind is events.DocumentStartEvent and root is not None:
            raise _error_at(event, "the file holds more than one YAML document; keep one")
        elif kind is events.StreamEndEvent:
            return root
        else:  # stream start, document start and end
            continue
        if frame is None:
            root = node
            continue
        parent = frame.node
        parent.size += size
        if isinstance(parent, Seq):
            parent.items.append(node)
        elif frame.key is None:
            frame.key = node
        else:
            parent.pairs.append((frame.key, node))
            frame.key = None


def _resolve_alias(event: Any, anchors: dict[str, Node], open_ids: set[int]) -> Node:
    name = event.anchor
    node = anchors.get(name)
    if node is None:
        raise _error_at(event, f"alias '*{name}' has no anchor '&{name}' before it")
    if id(node) in open_ids:
        raise _error_at(event, f"alias '*{name}' refers to a collection that contains it")
    if _size(node) > MAX_ALIASED_NODES:
        raise _error_at(
            event,
            f"alias '*{name}' repeats {_size(node):,} nodes; an alias may repeat at most "
            f"{MAX_ALIASED_NODES:,}",
        )
    return node


def _error_at(event: Any, message: str) -> YamlError:
    mark = event.start_mark
    return YamlError(mark.line + 1, mark.column + 1, message)


def _translate_yaml_error(err: yaml.YAMLError, text: str) -> YamlError:
    """One clear line for a parser or reader error, located where YAML says."""
    if isinstance(err, yaml.reader.ReaderError):
        found = _NOT_PRINTABLE.search(text)
        offset = found.start() if found else 0
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        char = f"U+{ord(found.group()):04X}" if found else "a character"
        return YamlError(line, column, f"{char} is not allowed in a YAML file")
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 1
        tab = _leading_tab(text, line)
        if tab:
            return YamlError(line, tab, "tab character used for indentation; indent with spaces")
        message = (err.problem or err.context or "syntax error").strip()
        if err.problem and err.context and err.context_mark:
            message += f" ({err.context} at line {err.context_mark.line + 1})"
        return YamlError(line, column, f"invalid YAML: {message}")
    return YamlError(1, 1, f"invalid YAML: {err}")


def _leading_tab(text: str, line: int) -> int:
    """Column of a tab in the indentation of ``line`` (1-based), or 0 when there is none."""
    lines = text.split("\n", line)
    if len(lines) < line:
        return 0
    content = lines[line - 1]
    indent = content[: len(content) - len(content.lstrip(" \t"))]
    return indent.find("\t") + 1


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


_LEAF = Layout()


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
            message = f"duplicate key {_show(key)} (first at line {first.line})"
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
        item_layout = layout.items or _LEAF
        value = self.value
        return [value(item, item_layout, (*path, i), False) for i, item in enumerate(node.items)]

    def mapping(self, node: Map, layout: Layout, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        fields, typed = layout.fields, layout.typed
        for key, key_node, value_node in mapping_pairs(node, path, self.report):
            if key_node.tag is not None and key_node.tag not in _SCALAR_TAGS:
                self.forbidden_tag(key_node, (*path, key))
            out[key] = self.value(value_node, fields.get(key, _LEAF), (*path, key), key in typed)
        return out

    def forbidden_tag(self, node: Node, path: Path) -> None:
        shown = node.tag.replace(_CORE, "!!", 1) if node.tag else "?"
        self.report(node, path, f"tag {_show(shown)} is not allowed; write plain YAML values")
        self.poisoned.add(path)


def convert(root: Node, layout: Layout, max_nodes: int) -> Converted:
    """Plain values for the document at ``root``, with the problems met on the way."""
    converter = _Converter(max_nodes)
    value = converter.value(root, layout, (), False)
    return Converted(value, converter.problems, converter.poisoned)


def scalar_value(node: Scalar, typed: bool) -> Any:
    """A scalar's value: None for YAML's null; text as written unless ``typed``.

    Where the schema wants a number (``typed``), a plain scalar is read as YAML 1.2's core
    schema would read it, so that ``1`` is 1 and ``"1"`` stays text.
    """
    text = node.text
    tag = node.tag
    if tag == NULL_TAG or (node.plain and text in _NULLS):
        return None
    if not typed or not (node.plain or tag in (INT_TAG, FLOAT_TAG, BOOL_TAG)):
        return text
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


def _show(text: str, limit: int = 40) -> str:
    """Quote a value for a message, shortened so that a message stays one short line."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)
