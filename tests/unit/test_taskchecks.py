"""The checks across tasks: one set, whichever way the YAML of the tasks was read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from dingsync import loader
from dingsync.errors import ConfigError
from dingsync.loader import load_task_file
from dingsync.taskchecks import TaskChecks

# Few values each, so that keys, times and what tasks send often collide.
TASK = st.fixed_dictionaries(
    {
        "key": st.sampled_from(["laptop", "badge", "desk"]),
        "title": st.sampled_from(["领取", "签署"]),
    },
    optional={
        "userid": st.sampled_from(["alice01", "bob02"]),
        "userids": st.lists(st.sampled_from(["alice01", "bob02", "carol03"]), max_size=2),
        "form": st.sampled_from([{"说明": "一楼"}, {"说明": "三楼"}, [{"title": "说明"}]]),
        "create_time": st.sampled_from(
            ["2026-12-01T09:00", "2026-02-30T09:00", "2026-04-31 10:00", "soon"]
        ),
        "url": st.sampled_from(["https://intranet.example.com/t", "ftp://files.example.com"]),
    },
)
DEFAULTS = st.fixed_dictionaries(
    {"url": st.just("https://intranet.example.com")},
    optional={
        "form": st.sampled_from([{"说明": "一楼"}, {"说明": ["一楼"]}]),
        "create_time": st.sampled_from(["2026-12-01T09:00", "2026-02-30T09:00"]),
    },
)

# The same tasks, read one by one as they are parsed, then composed whole: a tag or an
# anchor on the list keeps it from being streamed. Each keeps every line where it was.
WHOLE = ["tasks: !!seq", "tasks: &all"]


def task_file(defaults: dict[str, Any], tasks: list[dict[str, Any]], tasks_line: str) -> str:
    lines = ["version: 1", "defaults: " + json.dumps(defaults, ensure_ascii=False), tasks_line]
    lines += ["  - " + json.dumps(task, ensure_ascii=False) for task in tasks]
    return "\n".join(lines) + "\n"


def outcome(folder: Path, text: str) -> object:
    """The records, or the problems without the file's name."""
    folder.mkdir()
    path = folder / "tasks.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return load_task_file(path).records
    except ConfigError as err:
        return [(p.line, p.column, p.path, p.message) for p in err.problems]


def is_streamed(text: str) -> bool:
    data = text.encode("utf-8")
    try:
        return loader._streamed_records("tasks.yaml", data) is not None
    except ConfigError:
        return True


@settings(max_examples=150, deadline=None)
@given(DEFAULTS, st.lists(TASK, min_size=1, max_size=6), st.sampled_from(WHOLE))
def test_tasks_read_whole_get_the_same_checks_as_streamed_ones(
    tmp_path_factory: pytest.TempPathFactory,
    defaults: dict[str, Any],
    tasks: list[dict[str, Any]],
    whole: str,
) -> None:
    folder = tmp_path_factory.mktemp("pipeline")
    streamed_text = task_file(defaults, tasks, "tasks:")
    whole_text = task_file(defaults, tasks, whole)
    assert is_streamed(streamed_text) and not is_streamed(whole_text)
    assert outcome(folder / "whole", whole_text) == outcome(folder / "streamed", streamed_text)


@pytest.mark.parametrize("whole", WHOLE)
def test_each_check_across_tasks_holds_for_tasks_read_whole(tmp_path: Path, whole: str) -> None:
    tasks = [
        {"key": "laptop", "userid": "alice01", "title": "领取", "form": {"说明": "一楼"}},
        {"key": "laptop", "userid": "bob02", "title": "签署"},
        {"key": "badge", "userid": "alice01", "title": "领取", "create_time": "2026-02-30T09:00"},
    ]
    defaults = {"url": "https://intranet.example.com", "form": {"说明": "一楼"}}
    expected = [
        (5, 13, "tasks[1].key", "duplicate task key 'laptop' (first at line 4)"),
        (
            6,
            5,
            "tasks[2]",
            "sends the same title and form as task 'laptop' (line 4) to alice01; DingTalk "
            "would reject it as a duplicate (errcode 854001)",
        ),
        (
            6,
            73,
            "tasks[2].create_time",
            "create_time '2026-02-30T09:00' is not a real date-time: day is out of range for month",
        ),
    ]
    for name, line in [("streamed", "tasks:"), ("whole", whole)]:
        assert outcome(tmp_path / name, task_file(defaults, tasks, line)) == expected, name


def test_a_due_time_that_does_not_exist_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "api: todo\n"
        "defaults: {url: 'https://intranet.example.com', creator_userid: boss}\n"
        "tasks:\n"
        "  - {key: a, userid: u1, title: 一, due_time: '2026-02-30'}\n"
    )
    assert outcome(tmp_path / "file", text) == [
        (
            5,
            46,
            "tasks[0].due_time",
            "due_time '2026-02-30' is not a real date-time: day is out of range for month",
        )
    ]


def test_a_refused_tag_over_the_tasks_does_not_stop_the_other_checks(tmp_path: Path) -> None:
    # jsonschema's words about the tasks are silenced under the tag; the checks across
    # tasks still run, on tasks whose values cannot even be compared.
    text = (
        "version: 1\n"
        "tasks: !custom\n"
        "  - {key: a, userids: [[u1]], title: 一}\n"
        "  - {key: a, userid: u1, title: 一, form: {x: y}}\n"
    )
    assert outcome(tmp_path / "file", text) == [
        (2, 8, "tasks", "tag '!custom' is not allowed; write plain YAML values"),
        (4, 11, "tasks[1].key", "duplicate task key 'a' (first at line 3)"),
    ]


def test_values_that_cannot_be_compared_send_nothing() -> None:
    checks = TaskChecks("tasks.yaml")
    checks.sends_as_written(0, {"title": "一", "form": {"x": ["y"]}, "userid": "u1"})
    checks.sends_as_written(1, {"title": "一", "form": {"x": ["y"]}, "userid": "u1"})
    checks.sends_as_written(2, {"title": "一", "form": {}, "userids": [["u1"]]})
    assert checks.problems(duplicates=True) == []
