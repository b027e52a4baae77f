"""One comparison of to-do content, for the plan and for drift alike.

Pure. Fields are compared in the order of ``model.FIELDS``; a form is compared line by
line, so that a plan and a drift report both say ``form[1].content: "周五" → "周一"``
rather than repeating the whole form.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from typing import Any
from typing import NamedTuple

from dingsync.model import FIELDS
from dingsync.model import FormPairs

FIELD_ORDER = tuple(f.name for f in FIELDS)


class FieldChange(NamedTuple):
    # A content field ("title"), or a place in the form: "form[1].content" for a changed
    # line, "form[2]" for a line added (before is None) or removed (after is None).
    field: str
    before: Any
    after: Any

    @property
    def head(self) -> str:
        """The content field the change belongs to."""
        return self.field.split("[", 1)[0]


def diff(before: Any, after: Any, names: Iterable[str]) -> tuple[FieldChange, ...]:
    """How ``after`` differs from ``before`` in the fields ``names`` (attributes of a
    ``Content``, or of what DingTalk shows: a ``RemoteRecord``)."""
    wanted = frozenset(names)
    changes: list[FieldChange] = []
    for name in FIELD_ORDER:
        if name not in wanted:
            continue
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if name == "form":
            changes.extend(_form_lines(old, new))
        else:
            changes.append(FieldChange(name, old, new))
    return tuple(changes)


def _form_lines(before: FormPairs, after: FormPairs) -> Iterator[FieldChange]:
    if len(before) == len(after):
        # The common edit, compared here: DeepDiff costs about a millisecond a form, which
        # alone kept a plan of 300 replaces from the apply target (<= 1.10x the physical
        # limit at 100/s). Lines are paired by position, as DeepDiff pairs them.
        yield from _changed_lines(before, after)
        return
    old, new = _lines(before), _lines(after)
    # Imported here: deepdiff is heavy, and most contents have not changed their form.
    from deepdiff import DeepDiff

    found = DeepDiff(old, new, ignore_order=False, view="tree")
    places: list[FieldChange] = []
    for kind in ("values_changed", "type_changes"):
        for level in found.get(kind, []):
            places.append(FieldChange(_place(level.path(output_format="list")), level.t1, level.t2))
    for kind in ("iterable_item_added", "iterable_item_removed"):
        for level in found.get(kind, []):
            added = kind == "iterable_item_added"
            place = _place(level.path(output_format="list"))
            places.append(
                FieldChange(place, None if added else level.t1, level.t2 if added else None)
            )
    yield from sorted(places, key=_line_order)


def _changed_lines(before: FormPairs, after: FormPairs) -> Iterator[FieldChange]:
    for number, (old, new) in enumerate(zip(before, after, strict=True)):
        # "content" sorts before "title", as the changes of one line are sorted below.
        if old[1] != new[1]:
            yield FieldChange(f"form[{number}].content", old[1], new[1])
        if old[0] != new[0]:
            yield FieldChange(f"form[{number}].title", old[0], new[0])


def _line_order(change: FieldChange) -> tuple[int, str]:
    number = change.field[len("form[") :].split("]", 1)[0]
    return (int(number) if number.isdigit() else -1, change.field)


def _lines(form: FormPairs) -> list[dict[str, str]]:
    return [{"title": title, "content": content} for title, content in form]


def _place(path: list[Any]) -> str:
    text = "form"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text
