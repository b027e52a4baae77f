"""The content diff shared by plan and drift: form lines compared in place."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dingsync.diff import FieldChange
from dingsync.diff import _form_lines
from dingsync.diff import diff
from dingsync.model import Content

_LINE = st.tuples(
    st.sampled_from(["截止", "地点", "a"]), st.sampled_from(["周五", "周一", "", "x"])
)


def _by_deepdiff(before: tuple[tuple[str, str], ...], after: tuple[tuple[str, str], ...]) -> list:
    """What DeepDiff itself reports, in the order diff.py sorts it: the reference."""
    from deepdiff import DeepDiff

    old = [{"title": t, "content": c} for t, c in before]
    new = [{"title": t, "content": c} for t, c in after]
    found = DeepDiff(old, new, ignore_order=False, view="tree")
    places = []
    for level in found.get("values_changed", []):
        path = level.path(output_format="list")
        places.append(FieldChange(f"form[{path[0]}].{path[1]}", level.t1, level.t2))
    return sorted(places, key=lambda c: (int(c.field[5:].split("]")[0]), c.field))


@given(st.lists(st.tuples(_LINE, _LINE), max_size=12))
def test_forms_of_one_length_differ_as_deepdiff_says(pairs: list) -> None:
    before = tuple(old for old, _ in pairs)
    after = tuple(new for _, new in pairs)
    assert list(_form_lines(before, after)) == _by_deepdiff(before, after)


def test_a_changed_line_names_its_field() -> None:
    before = Content(title="t", url="https://a.example", form=(("截止", "周五"), ("地点", "北京")))
    after = before._replace(form=(("截止", "周一"), ("地址", "北京")))
    assert diff(before, after, ["form"]) == (
        FieldChange("form[0].content", "周五", "周一"),
        FieldChange("form[1].title", "地点", "地址"),
    )


def test_lines_added_and_removed_are_whole_lines() -> None:
    before = Content(title="t", url="https://a.example", form=(("截止", "周五"),))
    longer = before._replace(form=(("截止", "周五"), ("地点", "北京")))
    assert diff(before, longer, ["form"]) == (
        FieldChange("form[1]", None, {"title": "地点", "content": "北京"}),
    )
    assert diff(longer, before, ["form"]) == (
        FieldChange("form[1]", {"title": "地点", "content": "北京"}, None),
    )


def test_fields_outside_the_names_are_not_compared() -> None:
    before = Content(title="t", url="https://a.example")
    after = before._replace(title="u", url="https://b.example")
    assert diff(before, after, ["title"]) == (FieldChange("title", "t", "u"),)
