"""Read and write a large JSON object one member at a time, so it never sits in memory whole.

The state of 100,000 records is a file of about 100 MB. ``json.loads`` holds it as one
string and then as one tree of dicts, several times its size at once; ``json.dumps`` holds
the tree, the string and its bytes.

``load_object`` takes the text in pieces and decodes one top-level member at a time;
inside the members a caller chooses (the state's ``records``), it decodes one nested
member at a time and keeps only what the caller's converter makes of it. It accepts
exactly what ``json.loads`` accepts, in any layout, and reports a problem with the
message, line and column ``json.loads`` would give.

``dump_pieces`` gives the text of ``json.dumps(doc, indent=2, sort_keys=True,
ensure_ascii=False)`` in pieces, character for character, making the members of a
``Lazy`` value one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any
from typing import Generic
from typing import TypeVar

# What to do with the members of one nested object: (name, decoded value) -> kept value.
Converter = Callable[[str, Any], Any]
# Asked for each top-level member before its value is read: (name, members so far) ->
# a converter for the members of its value (when that value is an object), or None to
# decode the value whole.
Chooser = Callable[[str, dict[str, Any]], Converter | None]

_WHITESPACE = " \t\n\r"
_AFTER_VALUE = _WHITESPACE + ",]}"
_DECODER = json.JSONDecoder()


def _trailing_comma_message() -> str | None:
    """What this Python's json says of ``{"a": 1,}``, when it is not the generic message."""
    try:
        json.loads('{"a": 1,}')
    except json.JSONDecodeError as exc:
        return None if exc.msg.startswith("Expecting property name") else exc.msg
    return None


# Newer Pythons name a trailing comma in an object (at the comma); older ones expect a name.
_TRAILING_COMMA = _trailing_comma_message()


class JsonStreamError(ValueError):
    """The text is not JSON; ``msg``, ``lineno`` and ``colno`` as ``json.JSONDecodeError``."""

    def __init__(self, msg: str, lineno: int, colno: int) -> None:
        super().__init__(f"{msg}: line {lineno} column {colno}")
        self.msg = msg
        self.lineno = lineno
        self.colno = colno


def load_object(pieces: Iterable[str], choose: Chooser) -> Any:
    """Decode the JSON text made of ``pieces``; see the module docstring.

    A top-level value that is not an object is returned whole, as ``json.loads`` would.
    """
    return _Cursor(iter(pieces)).document(choose)


class _Cursor:
    """A window on the text: ``buf`` holds the unread part, ``pos`` is the next character."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._line = 1  # line number of buf[0]
        self._column = 0  # characters between the start of that line and buf[0]

    # -- the grammar ---------------------------------------------------------------------

    def document(self, choose: Chooser) -> Any:
        while not self.buf and self._more():
            pass
        if self.buf.startswith("\ufeff"):  # json.loads looks for it at the very start only
            self.fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
        first = self.peek()
        if first != "{":
            result = self.value()
        else:
            result = self.object(lambda name, found: self.member(choose(name, found)))
        if self.peek():
            self.fail("Extra data")
        return result

    def member(self, convert: Converter | None) -> Any:
        """The value of one top-level member: converted member by member, or whole."""
        if convert is None or self.peek() != "{":
            return self.value()
        return self.object(lambda name, _found: convert(name, self.value()))

    def object(self, read_value: Callable[[str, dict[str, Any]], Any]) -> dict[str, Any]:
        """Read the object at ``pos``; ``read_value(name, found so far)`` reads each value."""
        self.pos += 1  # the "{"
        found: dict[str, Any] = {}
        if self.peek() == "}":
            self.pos += 1
            return found
        while True:
            if self.peek() != '"':
                self.fail("Expecting property name enclosed in double quotes")
            name = self.value()
            if self.peek() != ":":
                self.fail("Expecting ':' delimiter")
            self.pos += 1
            found[name] = read_value(name, found)
            following = self.peek()
            if following == ",":
                comma = self.pos
                self.pos += 1
                if _TRAILING_COMMA and self.peek() == "}":
                    self.fail(_TRAILING_COMMA, comma)
            elif following == "}":
                self.pos += 1
                return found
            else:
                self.fail("Expecting ',' delimiter")

    # -- reading -------------------------------------------------------------------------

    def peek(self) -> str:
        """Skip whitespace; the next character, or "" at the end of the text."""
        while True:
            buf, pos, end = self.buf, self.pos, len(self.buf)
            while pos < end and buf[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < end:
                return buf[pos]
            if not self._more():
                return ""

    def value(self) -> Any:
        """Decode the JSON value at ``pos``, reading on until it is complete."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Perhaps only cut off by the end of the window: read on, and fail only
                # when the whole text is in and the value still does not decode.
                offset = exc.pos - self.pos  # reading on moves the window
                if self._more():
                    continue
                self.fail(exc.msg, self.pos + offset)
            except ValueError as exc:
                # Python's cap on the digits of an integer: perhaps only the cut-off start
                # of a longer float, or a number json.loads cannot read either.
                if self._more():
                    continue
                self.fail(str(exc))
            # A number cut off by the end of the window ("-0." of "-0.5") decodes as a
            # shorter one: only whitespace or a closing character after it proves it whole.
            # (Strings, arrays and objects end with their own closing character.)
            length = end - self.pos  # reading on moves the window
            complete = end < len(self.buf) and (
                isinstance(value, (str, list, dict)) or self.buf[end] in _AFTER_VALUE
            )
            if complete or not self._more():
                self.pos += length
                return value

    def _more(self) -> bool:
        """Read at least as much again as the window holds; False at the end of the text."""
        if self.eof:
            return False
        self._drop_read_part()
        wanted = max(len(self.buf), 1)
        added: list[str] = []
        size = 0
        for piece in self._pieces:
            added.append(piece)
            size += len(piece)
            if size >= wanted:
                break
        else:
            self.eof = True
        self.buf += "".join(added)
        return size > 0

    def _drop_read_part(self) -> None:
        done = self.buf[: self.pos]
        newlines = done.count("\n")
        if newlines:
            self._line += newlines
            self._column = len(done) - done.rfind("\n") - 1
        else:
            self._column += len(done)
        self.buf = self.buf[self.pos :]
        self.pos = 0

    def fail(self, msg: str, at: int | None = None) -> Any:
        """Raise ``JsonStreamError`` for the character at ``at`` (default ``pos``)."""
        index = self.pos if at is None else at
        before = self.buf[:index]
        newlines = before.count("\n")
        if newlines:
            line, column = self._line + newlines, index - before.rfind("\n")
        else:
            line, column = self._line, self._column + index + 1
        raise JsonStreamError(msg, line, column)


# -- writing ---------------------------------------------------------------------------------

_T = TypeVar("_T")


class Lazy(Generic[_T]):
    """An object whose member values are made for JSON only as they are written."""

    def __init__(self, members: Mapping[str, _T], to_json: Callable[[_T], Any]) -> None:
        self.members = members
        self.to_json = to_json

    def pieces(self, indent: str) -> Iterator[str]:
        if not self.members:
            yield "{}"
            return
        inner = indent + "  "
        opening = "{\n"
        for name in sorted(self.members):
            value = self.to_json(self.members[name])
            yield f"{opening}{inner}{encode_basestring(name)}: {pretty(value, inner)}"
            opening = ",\n"
        yield f"\n{indent}}}"


def dump_pieces(doc: Mapping[str, Any]) -> Iterator[str]:
    """The text of ``json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)``."""
    if not doc:
        yield "{}"
        return
    opening = "{\n"
    for name in sorted(doc):
        value = doc[name]
        yield f"{opening}  {encode_basestring(name)}: "
        if isinstance(value, Lazy):
            yield from value.pieces("  ")
        else:
            yield pretty(value, "  ")
        opening = ",\n"
    yield "\n}"


def pretty(value: Any, indent: str) -> str:
    """``value`` as ``json.dumps`` writes it at ``indent`` (indent=2, sorted keys, UTF-8).

    The standard library writes indented JSON with its pure-Python encoder; this does the
    same work with fewer calls, about twice as fast.
    """
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        members = [f"{inner}{_key(k)}: {pretty(value[k], inner)}" for k in sorted(value)]
        return "{\n" + ",\n".join(members) + f"\n{indent}}}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        items = [inner + pretty(item, inner) for item in value]
        return "[\n" + ",\n".join(items) + f"\n{indent}]"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"keys must be str, not {type(name).__name__}")
    return encode_basestring(name)


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)
