from __future__ import annotations

from dingsync.wording import counted


def test_the_noun_agrees_with_the_count() -> None:
    assert [counted(n, "record") for n in (0, 1, 2)] == ["0 records", "1 record", "2 records"]
