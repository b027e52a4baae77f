"""Safe, located YAML: compose a document into nodes that remember where they were written,
or stream the items of its list of tasks one at a time, converted as they are read.

PyYAML's own loaders are not used beyond their parser, because the task file needs what
they do not give: a position for every value, text as written, duplicate keys reported
and no tags beyond the core ones (``dingsync.yamlvalues`` turns the nodes into values by
those rules), and bounded work: nesting depth and alias expansion are limited while
composing, so an "alias bomb" is refused after reading it once instead of being expanded.
(libyaml's own composer is also recursive in C and crashes the interpreter on deeply
nested input.)

The events come from libyaml when it is installed (``yaml.CSafeLoader``), else from the
pure-Python parser; both produce the same events.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any
from typing import Protocol

import yaml
from yaml import events

from dingsync.yamlvalues import LEAF
from dingsync.yamlvalues import MAX_ALIAS_EXPANSION
from dingsync.yamlvalues import MAX_ALIASED_NODES
from dingsync.yamlvalues import MAX_DEPTH
from dingsync.yamlvalues import NULLS
from dingsync.yamlvalues import STR_TAG
from dingsync.yamlvalues import Item
from dingsync.yamlvalues import Layout
from dingsync.yamlvalues import Map
from dingsync.yamlvalues import Node
from dingsync.yamlvalues import Path
from dingsync.yamlvalues import Scalar
from dingsync.yamlvalues import Seq
from dingsync.yamlvalues import YamlError
from dingsync.yamlvalues import converted_item
from dingsync.yamlvalues import is_merge_key
from dingsync.yamlvalues import node_size
from dingsync.yamlvalues import typed_value

try:
    from yaml import CSafeLoader as _EventSource
    from yaml._yaml import CParser as _LibYaml
except ImportError:  # pragma: no cover - libyaml missing: same events, only slower
    from yaml import SafeLoader as _EventSource  # type: ignore[assignment]

    _LibYaml = None  # type: ignore[assignment,misc]

# Characters YAML forbids in a stream (c-printable), to locate a reader error exactly.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


class _Frame:
    """An open collection while composing, and (for a mapping) its pending key."""

    __slots__ = ("node", "key", "anchored")

    def __init__(self, node: Seq | Map, anchored: bool) -> None:
        self.node = node
        self.key: Node | None = None
        self.anchored = anchored


class Streamed(Seq):
    """The sequence ``compose_streaming`` handed item by item to its sink.

    It stands in the tree where the sequence was written, with its position and size, but
    its ``items`` stay empty: each item was converted and dropped once the sink had it.
    """

    __slots__ = ()


class ItemSink(Protocol):
    """What ``compose_streaming`` feeds the items of the streamed sequence to."""

    @property
    def layout(self) -> Layout:
        """The layout of one item."""

    @property
    def fields(self) -> frozenset[str]:
        """Fields of an item (a mapping) whose value positions each ``Item`` carries."""

    def begin(self, head: Map) -> None:
        """Called as the sequence starts, with the root mapping as composed so far."""

    def item(self, item: Item) -> None:
        """Called with each item, in order, once it is converted."""


def compose(text: str | bytes) -> Node | None:
    """Compose the single YAML document in ``text``; None when it holds no document.

    ``text`` may also be given as UTF-8 bytes (known to be valid, without a byte-order
    mark): libyaml reads those as they are, where a str would first be encoded again.

    Raises ``YamlError`` for a syntax error, a second document, an undefined or recursive
    alias, nesting deeper than ``MAX_DEPTH`` or alias expansion over the limits.
    """
    return _run(text, lambda composer: composer.document(lambda event: composer.node(event, 0)))


def compose_streaming(text: str | bytes, key: str, sink: ItemSink) -> Node | None:
    """``compose``, except for the sequence under the root mapping's ``key``.

    Its items go to ``sink`` one at a time, converted (``convert``'s rules, paths starting
    at ``key``), and are not kept: a file of 100,000 tasks never holds their nodes at once.
    The tree gets a ``Streamed`` node in the sequence's place. Nothing is streamed unless
    the root is a plain mapping whose first key ``key`` (the one ``mapping_pairs`` keeps) is
    untagged and holds an untagged sequence without an anchor (an alias could repeat it);
    then ``sink.begin`` is never called. Errors are raised exactly as ``compose`` raises
    them, and whatever ``sink`` raises passes through.
    """

    def read_root(composer: _Composer) -> Node | None:
        return composer.document(lambda event: composer.root(event, key, sink))

    return _run(text, read_root)


def _run(text: str | bytes, read: Callable[[_Composer], Node | None]) -> Node | None:
    if isinstance(text, bytes) and not _reads_utf8(_EventSource):
        # The pure-Python reader decodes bytes itself, and would count a byte-order mark
        # as a column; give it the text.
        text = text.decode("utf-8")
    try:
        # The pure-Python parser already reads (and may reject) the text here.
        parser = _EventSource(text)
    except yaml.YAMLError as err:
        raise _translate_yaml_error(err, text) from None
    try:
        return read(_Composer(parser.get_event))
    except yaml.YAMLError as err:
        raise _translate_yaml_error(err, text) from None
    finally:
        parser.dispose()


def _reads_utf8(source: type) -> bool:
    """Whether ``source`` is libyaml's parser, which reads UTF-8 bytes as they are."""
    return _LibYaml is not None and issubclass(source, _LibYaml)


_SCALAR = events.ScalarEvent
_ALIAS = events.AliasEvent
_MAPPING_START = events.MappingStartEvent
_SEQUENCE_START = events.SequenceStartEvent
_ENDS = (events.MappingEndEvent, events.SequenceEndEvent)
_FRAMING = (events.StreamStartEvent, events.DocumentStartEvent, events.DocumentEndEvent)
# A plain item nested deeper than this goes to the general composer, which enforces
# MAX_DEPTH at the very event the original composer did.
_PLAIN_DEPTH = 16


class _Composer:
    """Composes nodes from a parser's events, one value at a time.

    The limits hold across the whole document, so what they need (anchors, the collections
    still open, the alias budget) lives here rather than in one call. Events are read one
    by one, in order, and each limit is checked at the event that breaks it, so the error
    raised is the first in the file whichever way the values are read.
    """

    def __init__(self, get_event: Callable[[], Any]) -> None:
        self.get_event = get_event
        self.anchors: dict[str, Node] = {}
        self.open_ids: set[int] = set()  # anchored collections still being composed
        self.expansion = 0
        # Mapping keys of plain items, shared: 100,000 tasks repeat the same few names.
        self.names: dict[str, str] = {}

    def document(self, read_root: Callable[[Any], Node]) -> Node | None:
        """The root of the stream's only document, read by ``read_root`` from its first event."""
        root: Node | None = None
        while True:
            event = self.get_event()
            kind = type(event)
            if kind is events.StreamEndEvent:
                return root
            if kind is events.DocumentStartEvent and root is not None:
                raise _error_at(event, "the file holds more than one YAML document; keep one")
            if kind in _FRAMING:
                continue
            root = read_root(event)

    def node(self, first: Any, depth: int) -> Node:
        """The whole value that starts with the event ``first``, ``depth`` collections deep."""
        # An explicit stack (no recursion, so no depth crash); the loop is written flat
        # because it runs once per value of the file.
        get_event = self.get_event
        anchors, open_ids = self.anchors, self.open_ids
        stack: list[_Frame] = []
        event = first
        while True:
            kind = type(event)
            node: Node
            if kind is _SCALAR:
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
            elif kind is _MAPPING_START or kind is _SEQUENCE_START:
                if depth + len(stack) >= MAX_DEPTH:
                    raise _error_at(event, f"nesting deeper than {MAX_DEPTH} levels")
                mark = event.start_mark
                tag = _collection_tag(event)
                coll: Seq | Map
                if kind is _MAPPING_START:
                    coll = Map(tag, mark.line + 1, mark.column + 1)
                else:
                    coll = Seq(tag, mark.line + 1, mark.column + 1)
                if event.anchor is not None:
                    anchors[event.anchor] = coll
                    open_ids.add(id(coll))
                stack.append(_Frame(coll, event.anchor is not None))
                event = get_event()
                continue
            elif kind in _ENDS:
                done = stack.pop()
                if done.anchored:
                    open_ids.discard(id(done.node))
                node = done.node
                size = done.node.size
            elif kind is _ALIAS:
                node = _resolve_alias(event, anchors, open_ids)
                size = node_size(node)
                self.expansion += size
                if self.expansion > MAX_ALIAS_EXPANSION:
                    raise _error_at(
                        event,
                        f"aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes in all; "
                        "write the values out or share fewer",
                    )
            else:  # no other event comes inside a document's value
                event = get_event()
                continue
            if not stack:
                return node
            frame = stack[-1]
            parent = frame.node
            parent.size += size
            if isinstance(parent, Seq):
                parent.items.append(node)
            elif frame.key is None:
                frame.key = node
            else:
                parent.pairs.append((frame.key, node))
                frame.key = None
            event = get_event()

    def root(self, first: Any, key: str, sink: ItemSink) -> Node:
        """The document's root, streaming the sequence under ``key`` into ``sink``."""
        if type(first) is not _MAPPING_START or first.anchor or _collection_tag(first):
            return self.node(first, 0)
        root = Map(None, *_position(first))
        found = False  # the first key named ``key`` was read: later ones are duplicates
        while True:
            event = self.get_event()
            if type(event) is events.MappingEndEvent:
                return root
            key_node = self.node(event, 1)
            event = self.get_event()
            value: Node
            if not found and _names(key_node, key):
                found = True
                if key_node.tag is None and _plain_sequence(event):
                    sink.begin(root)
                    value = self.stream(event, key, sink)
                else:
                    value = self.node(event, 1)
            else:
                value = self.node(event, 1)
            root.size += node_size(key_node) + node_size(value)
            root.pairs.append((key_node, value))

    def stream(self, first: Any, key: str, sink: ItemSink) -> Streamed:
        """Read the sequence starting at ``first``, handing each item to ``sink``."""
        seq = Streamed(None, *_position(first))
        layout, fields = sink.layout, sink.fields
        index = 0
        while True:
            event = self.get_event()
            if type(event) is events.SequenceEndEvent:
                return seq
            item = self.item(event, (key, index), layout, fields)
            seq.size += item.size
            sink.item(item)
            index += 1

    def item(self, first: Any, path: Path, layout: Layout, fields: frozenset[str]) -> Item:
        """One item of a streamed sequence (two collections deep), converted."""
        seen = [first]
        # Kept beside node() and convert for the plan-of-100,000-tasks figure (README,
        # Performance): composing every task as nodes and converting them takes 1.5x as long.
        plain = self.plain(seen, layout, fields)
        if plain is not None:
            value, places, size = plain
            # No anchor or alias in it, so its events compose alike at any later time.
            nodes = functools.partial(self.replay, seen, 2)
            return Item(value, *_position(first), [], set(), places, nodes, size)
        # Something in it needs nodes: read its events again, through the general composer.
        return converted_item(self.replay(seen, 2), layout, path, fields)

    def plain(
        self, seen: list[Any], layout: Layout, fields: frozenset[str]
    ) -> tuple[Any, dict[str, tuple[int, int]], int] | None:
        """Value, field places and size of the collection starting at ``seen[0]``, built
        straight from the events, when it needs nothing a node gives.

        That is: no anchor, alias or tag, only text keys, no merge key or repeated key, and
        little depth; such a collection converts without any problem. None as soon as an
        event breaks this; every event read is then in ``seen``, to be read again.
        """
        first = seen[0]
        if first.anchor is not None or first.tag is not None:
            return None
        kind = type(first)
        if kind is not _MAPPING_START and kind is not _SEQUENCE_START:
            return None
        is_map = kind is _MAPPING_START
        container: Any = {} if is_map else []
        get_event, keep, names = self.get_event, seen.append, self.names
        places: dict[str, tuple[int, int]] = {}
        # The enclosing collections: (container, its layout, its pending key, is it a mapping)
        stack: list[tuple[Any, Layout, str | None, bool]] = []
        key: str | None = None  # the pending key of the innermost mapping
        size = 1
        while True:
            event = get_event()
            keep(event)
            kind = type(event)
            value: Any
            if kind is _SCALAR:
                if event.anchor is not None or event.tag is not None:
                    return None
                size += 1
                text = event.value
                is_plain = not event.style
                if is_map and key is None:
                    if (is_plain and text == "<<") or text in container:
                        return None
                    key = names.setdefault(text, text)
                    continue
                if not is_plain:
                    value = text
                elif text in NULLS:
                    value = None
                elif is_map and key in layout.typed:
                    value = typed_value(text)
                else:
                    value = text
                if key in fields and not stack:
                    places[key] = _position(event)
            elif kind is _MAPPING_START or kind is _SEQUENCE_START:
                if event.anchor is not None or event.tag is not None:
                    return None
                if (is_map and key is None) or len(stack) >= _PLAIN_DEPTH:
                    return None
                size += 1
                if key in fields and not stack:
                    places[key] = _position(event)
                stack.append((container, layout, key, is_map))
                # (key is None exactly when the enclosing collection is a sequence)
                layout = (layout.items or LEAF) if key is None else layout.fields.get(key, LEAF)
                is_map = kind is _MAPPING_START
                container = {} if is_map else []
                key = None
                continue
            elif kind in _ENDS:
                if not stack:
                    return container, places, size
                value = container
                container, layout, key, is_map = stack.pop()
            else:  # an alias
                return None
            if is_map:
                container[key] = value
                key = None
            else:
                container.append(value)

    def replay(self, seen: list[Any], depth: int) -> Node:
        """Compose the node whose first events were already read into ``seen``."""
        live = self.get_event
        pending = iter(seen[1:])
        self.get_event = lambda: next(pending, None) or live()
        try:
            return self.node(seen[0], depth)
        finally:
            self.get_event = live


def _collection_tag(event: Any) -> str | None:
    tag: str | None = event.tag
    return None if tag is None or tag == "!" else tag


def _names(node: Node, key: str) -> bool:
    """Whether ``node`` is a mapping key that ``mapping_pairs`` reads as ``key``."""
    return isinstance(node, Scalar) and node.text == key and not is_merge_key(node)


def _position(event: Any) -> tuple[int, int]:
    """1-based line and column where ``event`` starts."""
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


def _plain_sequence(event: Any) -> bool:
    return type(event) is _SEQUENCE_START and event.anchor is None and event.tag is None


def _resolve_alias(event: Any, anchors: dict[str, Node], open_ids: set[int]) -> Node:
    name = event.anchor
    node = anchors.get(name)
    if node is None:
        raise _error_at(event, f"alias '*{name}' has no anchor '&{name}' before it")
    if id(node) in open_ids:
        raise _error_at(event, f"alias '*{name}' refers to a collection that contains it")
    if node_size(node) > MAX_ALIASED_NODES:
        raise _error_at(
            event,
            f"alias '*{name}' repeats {node_size(node):,} nodes; an alias may repeat at most "
            f"{MAX_ALIASED_NODES:,}",
        )
    return node


def _error_at(event: Any, message: str) -> YamlError:
    mark = event.start_mark
    return YamlError(mark.line + 1, mark.column + 1, message)


def _translate_yaml_error(err: yaml.YAMLError, source: str | bytes) -> YamlError:
    """One clear line for a parser or reader error, located where YAML says."""
    text = source if isinstance(source, str) else source.decode("utf-8")
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
        if "maximum nesting depth" in message:
            # Newer libyaml stops deep nesting itself, sometimes before our own count does:
            # say the same thing either way.
            return YamlError(line, column, f"nesting deeper than {MAX_DEPTH} levels")
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
