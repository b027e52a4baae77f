"""The piecewise reader gives what json.loads gives (the same value, or the same error), and
the piecewise writer writes what json.dumps writes."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from dingsync.jsonstream import Converter
from dingsync.jsonstream import JsonStreamError
from dingsync.jsonstream import Lazy
from dingsync.jsonstream import dump_pieces
from dingsync.jsonstream import load_object

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
documents = st.dictionaries(st.text(max_size=8), values, max_size=6)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def tagged(name: str, _found: dict[str, Any]) -> Converter | None:
    """Convert the members of every nested object whose name starts with "r"."""
    return (lambda key, value: ("seen", key, value)) if name.startswith("r") else None


def expected_tagged(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc
    return {
        name: (
            {k: ("seen", k, v) for k, v in value.items()}
            if name.startswith("r") and isinstance(value, dict)
            else value
        )
        for name, value in doc.items()
    }


# Python 3.13.0's json reports a trailing comma at another place than other versions do.
JSON_MISPLACES_TRAILING_COMMAS = sys.version_info[:3] == (3, 13, 0)


def outcome(text: str, size: int) -> tuple[str, Any]:
    try:
        return "value", load_object(pieces(text, size), tagged)
    except JsonStreamError as exc:
        return "error", (exc.msg, exc.lineno, exc.colno)


def reference(text: str) -> tuple[str, Any]:
    try:
        return "value", expected_tagged(json.loads(text))
    except json.JSONDecodeError as exc:
        return "error", (exc.msg, exc.lineno, exc.colno)


@settings(max_examples=300, deadline=None)
@given(doc=documents, indent=st.sampled_from([None, 0, 2]), size=st.integers(1, 64))
def test_same_value_as_json_loads_in_any_pieces(
    doc: dict[str, Any], indent: int | None, size: int
) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    assert outcome(text, size) == reference(text)


@settings(max_examples=500, deadline=None)
@given(
    doc=documents,
    size=st.integers(1, 64),
    cut=st.integers(0, 10_000),
    edit=st.sampled_from(["truncate", "delete", "insert"]),
    char=st.sampled_from(list(' ,:{}[]"0x-\n\\\x01e')),
)
def test_same_error_as_json_loads_for_damaged_text(
    doc: dict[str, Any], size: int, cut: int, edit: str, char: str
) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    at = cut % (len(text) + 1)
    if edit == "truncate":
        damaged = text[:at]
    elif edit == "delete":
        damaged = text[:at] + text[at + 1 :]
    else:
        damaged = text[:at] + char + text[at:]
    got, wanted = outcome(damaged, size), reference(damaged)
    if JSON_MISPLACES_TRAILING_COMMAS and wanted[0] == "error" and "trailing comma" in wanted[1][0]:
        assert got[0] == "error" and got[1][0] == wanted[1][0]  # the message; not json's place
    else:
        assert got == wanted


@pytest.mark.parametrize(
    "text",
    [
        *("", "  \n", "[1, 2]", '"x"', "1 2", '{"a": 1} x', '{"a": 1,}', '{"r": {"q": 1,}}'),
        *("\ufeff{}", "\r\ufeff0", "\n\ufeff{}"),  # json.loads wants a BOM first to name it
    ],
)
def test_edge_cases_match_json_loads(text: str) -> None:
    if JSON_MISPLACES_TRAILING_COMMAS and ",}" in text:
        pytest.skip("Python 3.13.0's json puts a trailing comma one past the end of the text")
    for size in (1, 3, 1000):
        assert outcome(text, size) == reference(text)


def test_converted_values_replace_the_nested_members_one_at_a_time() -> None:
    seen: list[str] = []

    def choose(name: str, found: dict[str, Any]) -> Converter | None:
        if name != "records":
            return None
        assert found == {"format": 1}  # members before this one are there to decide by

        def convert(key: str, value: Any) -> Any:
            seen.append(key)
            return len(value)

        return convert

    text = '{"format": 1, "records": {"a": [1, 2], "b": [], "a": [3]}, "tail": {"x": 1}}'
    assert load_object(pieces(text, 5), choose) == {
        "format": 1,
        "records": {"a": 1, "b": 0},  # a repeated name keeps its last value, as in json
        "tail": {"x": 1},
    }
    assert seen == ["a", "b", "a"]


def test_a_member_that_is_not_an_object_is_kept_whole() -> None:
    text = '{"records": [1, 2]}'
    assert load_object([text], lambda name, found: lambda k, v: None) == {"records": [1, 2]}


def test_a_number_split_across_pieces_is_read_whole() -> None:
    assert load_object(['{"serial": 12', "345}"], lambda *a: None) == {"serial": 12345}
    assert load_object(["12", "345"], lambda *a: None) == 12345


@settings(max_examples=300, deadline=None)
@given(doc=documents, lazy=st.booleans())
def test_dump_pieces_writes_what_json_dumps_writes(doc: dict[str, Any], lazy: bool) -> None:
    expected = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
    if lazy:  # every object member made on the way out, from a stand-in value
        doc = {
            name: Lazy({k: ("boxed", v) for k, v in value.items()}, lambda box: box[1])
            if isinstance(value, dict)
            else value
            for name, value in doc.items()
        }
    assert "".join(dump_pieces(doc)) == expected


def test_dump_pieces_refuses_what_json_cannot_write() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        "".join(dump_pieces({"a": {1, 2}}))


def test_a_long_number_cut_by_a_piece_is_read_whole() -> None:
    # Cut after 4,500 digits, the start alone would pass Python's cap on integer digits.
    text = '{"a": [' + "1" * 5000 + ".5]}"
    assert load_object([text[:4507], text[4507:]], lambda *a: None) == json.loads(text)
