"""The task-file loader: YAML safety, schema messages, semantic checks and records."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from dingsync import loader
from dingsync import schemacheck
from dingsync import schemawords
from dingsync import yamlnodes
from dingsync import yamlvalues
from dingsync.errors import ConfigError
from dingsync.errors import Problem
from dingsync.loader import load_task_file
from dingsync.model import Content
from dingsync.model import DesiredRecord
from dingsync.model import TaskFile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VALID = FIXTURES / "valid"
INVALID = FIXTURES / "invalid"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tasks.yaml"

# What `dingsync validate` prints for each file of tests/fixtures/invalid, after "FILE:".
EXPECTED: dict[str, list[str]] = {
    "field_of_the_other_api.yaml": [
        (
            "10:5: tasks[0].form: 'form' is a field of the legacy workrecord API; a file with "
            "'api: todo' cannot give it"
        ),
        (
            "15:15: tasks[1].due_time: due_time '2026-02-30' is not a real date-time: day is "
            "out of range for month"
        ),
        (
            "16:15: tasks[1].priority: priority must be 'low' or 'normal' or 'high' or "
            "'urgent', not 'soon'"
        ),
    ],
    "todo_field_without_api.yaml": [
        (
            "2:1: on_removal: 'on_removal' is a field of the v1.0 to-do API: it needs "
            "'api: todo' at the top"
        ),
        (
            "9:5: tasks[0].description: 'description' is a field of the v1.0 to-do API: it "
            "needs 'api: todo' at the top"
        ),
    ],
    "todo_bad_due_time.yaml": [
        (
            "10:15: tasks[0].due_time: due_time 'next friday' is neither a date (2026-12-05: "
            "the end of that day) nor a date-time (2026-12-05T18:00:00+08:00)"
        ),
    ],
    "todo_bad_on_removal.yaml": [
        "3:13: on_removal: on_removal must be 'complete' or 'delete', not 'archive'",
    ],
    "todo_bad_priority.yaml": [
        (
            "10:15: tasks[0].priority: priority must be 'low' or 'normal' or 'high' or "
            "'urgent', not 'highest'"
        ),
    ],
    "todo_description_too_long.yaml": [
        "10:18: tasks[0].description: description is 4097 characters; at most 4096 allowed",
    ],
    "todo_without_creator.yaml": [
        (
            "6:5: tasks[0]: missing required field 'creator_userid' (give it in the task or in "
            "defaults)"
        ),
    ],
    # A title or userid can hide text or rewrite a plan line with these (U+202E turns the
    # text right to left; ESC and CR move the cursor).
    "invisible_characters.yaml": [
        (
            "4:13: tasks[0].userid: userid 'alice01\\u200b' must not contain a control or "
            "invisible character (U+200B)"
        ),
        (
            "5:12: tasks[0].title: title '领取笔记本电脑\\u202e' holds a control or invisible "
            "character (U+202E), which would show garbled or hide text in DingTalk and in plans"
        ),
        (
            "10:12: tasks[1].title: title '领取工牌\\x1b[2K\\r' holds a control or invisible "
            "character (U+001B), which would show garbled or hide text in DingTalk and in plans"
        ),
    ],
    "alias_bomb.yaml": [
        ("7:10: <root>: alias '*d' repeats 11,111 nodes; an alias may repeat at most 10,000"),
    ],
    "bad_create_time.yaml": [
        (
            "9:18: tasks[0].create_time: create_time 'next monday' is not an ISO-8601 "
            "date-time such as 2026-12-01T09:00:00+08:00"
        ),
    ],
    "bad_key_pattern.yaml": [
        (
            "3:10: tasks[0].key: key 'Laptop_2026!' is not valid: use 1 to 64 lowercase "
            "letters, digits, '.', '_' or '-', starting with a letter or digit"
        ),
    ],
    "blank_title.yaml": [
        "5:12: tasks[0].title: title is blank",
    ],
    "comments_only.yaml": [
        "1:1: <root>: file is empty; expected a mapping with 'version' and 'tasks'",
    ],
    "control_character.yaml": [
        "5:14: <root>: U+0007 is not allowed in a YAML file",
    ],
    "custom_tag.yaml": [
        "4:13: tasks[0].userid: tag '!secret' is not allowed; write plain YAML values",
    ],
    "date_only_create_time.yaml": [
        (
            "9:18: tasks[0].create_time: create_time '2026-12-01' is not an ISO-8601 "
            "date-time such as 2026-12-01T09:00:00+08:00"
        ),
    ],
    "defaults_not_mapping.yaml": [
        "2:11: defaults: defaults must be a mapping, not text",
    ],
    "duplicate_content.yaml": [
        (
            "9:5: tasks[1]: sends the same title and form as task 'laptop' (line 3) to "
            "bob02; DingTalk would reject it as a duplicate (errcode 854001)"
        ),
    ],
    "duplicate_task_keys.yaml": [
        "9:10: tasks[1].key: duplicate task key 'laptop' (first at line 3)",
    ],
    "duplicate_userids.yaml": [
        "4:31: tasks[0].userids[2]: userids lists 'alice01' more than once",
    ],
    "duplicate_yaml_keys.yaml": [
        "6:5: tasks[0].title: duplicate key 'title' (first at line 5)",
    ],
    "empty.yaml": [
        "1:1: <root>: file is empty; expected a mapping with 'version' and 'tasks'",
    ],
    "empty_content.yaml": [
        "8:32: tasks[0].form[0].content: form content is empty",
    ],
    "empty_form.yaml": [
        "7:11: tasks[0].form: form is empty; give at least one item",
    ],
    "empty_tasks.yaml": [
        "2:8: tasks: tasks is empty; give at least one task",
    ],
    "empty_title.yaml": [
        "5:12: tasks[0].title: title is empty",
    ],
    "empty_userids.yaml": [
        "4:14: tasks[0].userids: userids is empty; give at least one userid",
    ],
    "form_21_items.yaml": [
        "8:7: tasks[0].form: form has 21 items; DingTalk allows at most 20",
    ],
    "form_item_extra_field.yaml": [
        "8:44: tasks[0].form[0].note: unknown field 'note'",
    ],
    "form_item_missing_content.yaml": [
        "8:9: tasks[0].form[0]: missing required field 'content'",
    ],
    "form_mapping_null_content.yaml": [
        "9:12: tasks[0].form.截止日期: form content must be text, not null (no value)",
    ],
    "form_string.yaml": [
        "7:11: tasks[0].form: form must be a list or a mapping, not text",
    ],
    "ftp_url.yaml": [
        (
            "6:10: tasks[0].url: url must be an http:// or https:// link with a host, not "
            "'ftp://files.example.com/laptop.pdf'"
        ),
    ],
    "impossible_create_time.yaml": [
        (
            "9:18: tasks[0].create_time: create_time '2026-02-30T09:00:00' is not a real "
            "date-time: day is out of range for month"
        ),
    ],
    "invalid_utf8.yaml": [
        "5:12: <root>: file is not valid UTF-8 (byte 0xc1); save it as UTF-8",
    ],
    "javascript_url.yaml": [
        (
            "6:10: tasks[0].url: url must be an http:// or https:// link with a host, not "
            "'javascript:alert(1)'"
        ),
    ],
    "key_with_newline.yaml": [
        (
            "3:10: tasks[0].key: key 'laptop\\n' is not valid: use 1 to 64 lowercase "
            "letters, digits, '.', '_' or '-', starting with a letter or digit"
        ),
    ],
    "merge_not_mapping.yaml": [
        "9:9: tasks[0]: a merge key '<<' takes a mapping or a list of mappings",
    ],
    "merge_wrong_types.yaml": [
        "9:17: tasks[1].title: title must be text, not a list",
        (
            "9:42: tasks[1].pc_open_type: pc_open_type must be 2 (open in the DingTalk "
            "client) or 4 (open in a browser), not 'two'"
        ),
    ],
    "missing_url.yaml": [
        ("3:5: tasks[0]: missing required field 'url' (give it in the task or in defaults)"),
    ],
    "missing_version.yaml": [
        "1:1: <root>: missing required field 'version'",
    ],
    "misspelt_field.yaml": [
        ("3:5: tasks[0]: missing required field 'title' (give it in the task or in defaults)"),
        "5:5: tasks[0].titel: unknown field 'titel' (did you mean 'title'?)",
    ],
    "misspelt_root_field.yaml": [
        "1:1: <root>: missing required field 'tasks'",
        "2:1: task: unknown field 'task' (did you mean 'tasks'?)",
    ],
    "multiple_documents.yaml": [
        "9:1: <root>: the file holds more than one YAML document; keep one",
    ],
    "no_userid.yaml": [
        "3:5: tasks[0]: missing required field 'userid' (or 'userids')",
    ],
    "non_text_key.yaml": [
        "9:5: tasks[0]: a mapping key must be text, not a collection",
    ],
    "not_yaml.yaml": [
        "2:1: <root>: invalid YAML: did not find expected <document start>",
    ],
    "null_title.yaml": [
        "5:11: tasks[0].title: title must be text, not null (no value)",
    ],
    "pc_open_type_3.yaml": [
        (
            "9:19: tasks[0].pc_open_type: pc_open_type must be 2 (open in the DingTalk "
            "client) or 4 (open in a browser), not 3"
        ),
    ],
    "pc_open_type_string.yaml": [
        (
            "9:19: tasks[0].pc_open_type: pc_open_type must be 2 (open in the DingTalk "
            "client) or 4 (open in a browser), not '2'"
        ),
    ],
    "pc_url_without_host.yaml": [
        (
            "9:13: tasks[0].pc_url: pc_url must be an http:// or https:// link with a host, "
            "not 'https:///it/laptop'"
        ),
    ],
    "python_tag.yaml": [
        (
            "5:12: tasks[0].title: tag '!!python/object/apply:os.system' is not allowed; "
            "write plain YAML values"
        ),
    ],
    "recursive_alias.yaml": [
        "4:14: <root>: alias '*loop' refers to a collection that contains it",
    ],
    "status_closed.yaml": [
        "9:13: tasks[0].status: status must be 'open' or 'done', not 'closed'",
    ],
    "syntax_error.yaml": [
        (
            "9:1: <root>: invalid YAML: did not find expected ',' or '}' (while parsing a "
            "flow mapping at line 8)"
        ),
    ],
    "tab_indentation.yaml": [
        "5:1: <root>: tab character used for indentation; indent with spaces",
    ],
    "task_not_mapping.yaml": [
        "9:5: tasks[1]: task must be a mapping, not text",
    ],
    "tasks_mapping.yaml": [
        "3:3: tasks: tasks must be a list, not a mapping",
    ],
    "title_51_chars.yaml": [
        "5:12: tasks[0].title: title is 51 characters; DingTalk allows at most 50",
    ],
    "title_list.yaml": [
        "5:12: tasks[0].title: title must be text, not a list",
    ],
    "top_level_list.yaml": [
        "1:1: <root>: the file must be a mapping with 'version' and 'tasks', not a list",
    ],
    "top_level_scalar.yaml": [
        "1:1: <root>: the file must be a mapping with 'version' and 'tasks', not text",
    ],
    "undefined_alias.yaml": [
        "4:13: <root>: alias '*assignee' has no anchor '&assignee' before it",
    ],
    "unknown_field.yaml": [
        "9:5: tasks[0].urgency: unknown field 'urgency'",
    ],
    "userid_and_userids.yaml": [
        "5:5: tasks[0].userids: give either userid or userids, not both",
    ],
    "userid_in_defaults.yaml": [
        "3:3: defaults.userid: 'userid' cannot stand in defaults; give it in each task",
    ],
    "userid_too_long.yaml": [
        "4:13: tasks[0].userid: userid is 65 characters; at most 64 allowed",
    ],
    "userid_with_space.yaml": [
        "4:13: tasks[0].userid: userid 'alice 01' must not contain whitespace",
    ],
    "utf16.yaml": [
        "1:1: <root>: file is not valid UTF-8 (byte 0xff); save it as UTF-8",
    ],
    "version_2.yaml": [
        "1:10: version: unsupported version 2; this dingsync reads version 1",
    ],
    "version_string.yaml": [
        "1:10: version: version must be the number 1, not the text '1'",
    ],
    "wire_name_field.yaml": [
        "9:5: tasks[0].pcUrl: unknown field 'pcUrl' (did you mean 'pc_url'?)",
    ],
}


def problems_of(path: Path | str) -> list[str]:
    """The problems of a file, each as LINE:COL: path: message."""
    with pytest.raises(ConfigError) as caught:
        load_task_file(path)
    return [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems]


def write(tmp_path: Path, text: str, name: str = "tasks.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def one_task(**fields: str) -> str:
    """A valid file of one task; keyword arguments replace or add lines of the task."""
    lines = {
        "key": "laptop",
        "userid": "alice01",
        "title": "领取笔记本电脑",
        "url": "https://intranet.example.com/it/laptop",
        "form": "{任务描述: 到 IT 服务台领取}",
    }
    lines.update(fields)
    body = "".join(
        f"    {name}: {value}\n" if i else f"  - {name}: {value}\n"
        for i, (name, value) in enumerate(lines.items())
    )
    return "version: 1\ntasks:\n" + body


# --- fixtures -----------------------------------------------------------------------------


def test_every_invalid_fixture_has_an_expectation() -> None:
    on_disk = {path.name for path in INVALID.glob("*.yaml")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_fixture(name: str) -> None:
    assert problems_of(INVALID / name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_problem_is_printed_with_the_file_name(name: str) -> None:
    path = str(INVALID / name)
    with pytest.raises(ConfigError) as caught:
        load_task_file(path)
    lines = str(caught.value).splitlines()
    assert lines == [f"{path}:{expected}" for expected in EXPECTED[name]]


@pytest.mark.parametrize(
    "path", sorted(VALID.glob("*.yaml")) + [EXAMPLE], ids=lambda path: path.name
)
def test_valid_file_loads(path: Path) -> None:
    task_file = load_task_file(path)
    assert isinstance(task_file, TaskFile)
    assert task_file.records
    addresses = [record.address for record in task_file.records]
    assert len(addresses) == len(set(addresses))


def test_example_is_realistic() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/tasks.schema.json\n")
    records = load_task_file(EXAMPLE).records
    keys = list(dict.fromkeys(record.key for record in records))
    assert 5 <= len(keys) <= 8
    assert any(record.content.pc_url and record.content.pc_open_type for record in records)
    assert all(len(record.content.title) <= 50 for record in records)


# --- the result ---------------------------------------------------------------------------


def test_task_file_carries_path_and_digest(tmp_path: Path) -> None:
    path = write(tmp_path, one_task())
    task_file = load_task_file(str(path))
    assert task_file.path == str(path)
    assert task_file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_task_file(path).path == str(path)  # a Path is accepted too


def test_record_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        one_task(
            pc_url="https://intranet.example.com/it/laptop?client=pc",
            pc_open_type="4",
            source_name="入职流程",
            originator_userid="manager7078",
            status="done",
            create_time="2026-12-01T09:00:00+08:00",
        ),
    )
    (record,) = load_task_file(path).records
    assert record.address == "laptop@alice01"
    assert record.content == Content(
        title="领取笔记本电脑",
        url="https://intranet.example.com/it/laptop",
        form=(("任务描述", "到 IT 服务台领取"),),
        pc_url="https://intranet.example.com/it/laptop?client=pc",
        source_name="入职流程",
        originator_userid="manager7078",
        pc_open_type=4,
    )
    assert record.status == "done"
    assert record.create_time_ms == 1_796_086_800_000
    assert record.line == 3


def test_status_defaults_to_open_and_create_time_to_none(tmp_path: Path) -> None:
    (record,) = load_task_file(write(tmp_path, one_task())).records
    assert record.status == "open"
    assert record.create_time_ms is None
    assert record.content.pc_url is None and record.content.pc_open_type is None


def test_userids_expand_in_order(tmp_path: Path) -> None:
    text = one_task(userid="carol03") + (
        "  - key: badge\n"
        "    userids: [zoe09, alice01, mike05]\n"
        "    title: 领取工牌\n"
        "    url: https://intranet.example.com/it/badge\n"
        "    form: {任务描述: 到前台领取}\n"
    )
    records = load_task_file(write(tmp_path, text)).records
    assert [r.address for r in records] == [
        "laptop@carol03",
        "badge@zoe09",
        "badge@alice01",
        "badge@mike05",
    ]
    assert [r.line for r in records] == [3, 8, 8, 8]
    assert records[1].content is records[3].content  # one Content per task, not per record


def test_defaults_merge_under_tasks(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "defaults:\n"
        "  url: https://intranet.example.com/onboarding\n"
        "  source_name: 入职流程\n"
        "  pc_open_type: 2\n"
        "  status: done\n"
        "  form: {说明: 请按指引完成}\n"
        "tasks:\n"
        "  - key: inherits\n"
        "    userid: alice01\n"
        "    title: 阅读员工手册\n"
        "  - key: overrides\n"
        "    userid: alice01\n"
        "    title: 领取工牌\n"
        "    url: https://intranet.example.com/badge\n"
        "    source_name: 行政部\n"
        "    pc_open_type: 4\n"
        "    status: open\n"
        "    form: [{title: 地点, content: 一楼前台}]\n"
    )
    inherits, overrides = load_task_file(write(tmp_path, text)).records
    assert inherits.content.url == "https://intranet.example.com/onboarding"
    assert inherits.content.source_name == "入职流程"
    assert inherits.content.pc_open_type == 2
    assert inherits.content.form == (("说明", "请按指引完成"),)
    assert inherits.status == "done"
    assert overrides.content.url == "https://intranet.example.com/badge"
    assert overrides.content.source_name == "行政部"
    assert overrides.content.pc_open_type == 4
    assert overrides.content.form == (("地点", "一楼前台"),)
    assert overrides.status == "open"


def test_form_as_mapping_equals_form_as_list(tmp_path: Path) -> None:
    items = ["{title: 任务描述, content: 领取}", "{title: 截止日期, content: 2026-12-05}"]
    as_list = one_task(form="".join(f"\n      - {item}" for item in items))
    as_mapping = one_task(form="\n      任务描述: 领取\n      截止日期: 2026-12-05")
    first = load_task_file(write(tmp_path, as_list, "list.yaml")).records
    second = load_task_file(write(tmp_path, as_mapping, "mapping.yaml")).records
    assert first == second
    assert first[0].content.form == (("任务描述", "领取"), ("截止日期", "2026-12-05"))


def test_merge_keys_apply_and_explicit_values_win() -> None:
    records = {r.key: r for r in load_task_file(VALID / "merge_keys.yaml").records}
    assert records["monitor"].content.title == "领取显示器"
    assert records["monitor"].content.url == "https://intranet.example.com/it"
    assert records["monitor"].content.pc_open_type == 2
    assert records["badge"].content.url == "https://intranet.example.com/it/badge"
    assert records["badge"].content.form == (("任务描述", "到 IT 服务台领取"), ("地点", "一楼前台"))


# --- text as written ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "written", ["2026-12-05", "010", "no", "on", "0o7", "1e3", "true", "1.0", "0x1F", "12:30"]
)
def test_plain_scalars_in_text_fields_are_text_as_written(tmp_path: Path, written: str) -> None:
    text = one_task(
        userid=written, title=written, form=f"[{{title: {written}, content: {written}}}]"
    )
    (record,) = load_task_file(write(tmp_path, text)).records
    assert record.userid == written
    assert record.content.title == written
    assert record.content.form == ((written, written),)


@pytest.mark.parametrize("written", ["2026-12-05", "010", "no", "on", "1e3", "true", "1.0"])
def test_plain_scalar_keys_are_text_as_written(tmp_path: Path, written: str) -> None:
    (record,) = load_task_file(write(tmp_path, one_task(key=written))).records
    assert record.key == written


def test_text_as_written_fixture() -> None:
    first, second = load_task_file(VALID / "text_as_written.yaml").records
    assert (first.key, first.userid, first.content.title) == ("2026-12-05", "010", "no")
    assert first.content.form == (
        ("on", "2026-12-05"),
        ("0o7", "1e3"),
        ("true", "010"),
        ("1.0", "12:30"),
        ("~", "null"),
        (".inf", "0x1F"),
    )
    assert (second.key, second.userid, second.content.title) == ("1.0", "true", "多行标题")
    assert second.content.form == (("1_000", "folded text"),)


@pytest.mark.parametrize("written", ["~", "null", "NULL", ""])
def test_null_in_a_text_field_is_a_problem(tmp_path: Path, written: str) -> None:
    (problem,) = problems_of(write(tmp_path, one_task(userid=written)))
    assert problem.startswith("4:")
    assert problem.endswith(": tasks[0].userid: userid must be text, not null (no value)")


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("'2'", "pc_open_type must be 2 (open in the DingTalk client) or 4 (open in a browser), "),
        ("true", "pc_open_type must be 2 (open in the DingTalk client) or 4 (open in a browser), "),
    ],
)
def test_numbers_only_where_the_schema_wants_them(
    tmp_path: Path, written: str, message: str
) -> None:
    (problem,) = problems_of(write(tmp_path, one_task(pc_open_type=written)))
    assert message in problem
    (record,) = load_task_file(write(tmp_path, one_task(pc_open_type="2.0"))).records
    assert record.content.pc_open_type == 2 and type(record.content.pc_open_type) is int


def test_version_must_be_a_plain_number(tmp_path: Path) -> None:
    text = one_task().replace("version: 1", "version: !!str 1")
    assert problems_of(write(tmp_path, text)) == [
        "1:10: version: version must be the number 1, not the text '1'"
    ]


# --- locations and completeness -----------------------------------------------------------


def test_all_problems_are_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "tasks:\n"
        "  - key: b-task\n"
        "    userid: alice01\n"
        "    title: 领取工牌\n"
        "    url: ftp://intranet.example.com/badge\n"
        "    form: {地点: 一楼前台}\n"
        "  - key: a-task\n"
        "    userid: alice01\n"
        "    titel: 领取显示器\n"
        "    url: https://intranet.example.com/monitor\n"
        "    form: {地点: 三楼}\n"
        "    status: closed\n"
    )
    assert problems_of(write(tmp_path, text)) == [
        (
            "6:10: tasks[0].url: url must be an http:// or https:// link with a host, not "
            "'ftp://intranet.example.com/badge'"
        ),
        "8:5: tasks[1]: missing required field 'title' (give it in the task or in defaults)",
        "10:5: tasks[1].titel: unknown field 'titel' (did you mean 'title'?)",
        "13:13: tasks[1].status: status must be 'open' or 'done', not 'closed'",
    ]


def test_nested_locations(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "defaults:\n"
        "  url: https://intranet.example.com\n"
        "tasks:\n"
        "  - key: one\n"
        "    userid: alice01\n"
        "    title: 一\n"
        "    form: {a: b}\n"
        "  - key: two\n"
        "    userids:\n"
        "      - alice01\n"
        "      - bob 02\n"
        "    title: 二\n"
        "    form:\n"
        "      - title: 任务描述\n"
        "        content: 领取\n"
        "      - title: 截止日期\n"
        '        content: ""\n'
    )
    assert problems_of(write(tmp_path, text)) == [
        "12:9: tasks[1].userids[1]: userid 'bob 02' must not contain whitespace",
        "18:18: tasks[1].form[1].content: form content is empty",
    ]


def test_long_values_are_shortened_in_messages(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, one_task(status="x" * 500)))
    assert problem.endswith("not 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…'")
    assert len(problem) < 150


def test_duplicate_content_names_both_tasks(tmp_path: Path) -> None:
    expected = (
        "8:5: tasks[1]: sends the same title and form as task 'laptop' (line 3) to bob02 "
        "and 1 more; DingTalk would reject it as a duplicate (errcode 854001)"
    )
    text = one_task(userids="[alice01, bob02, carol03]").replace("    userid: alice01\n", "")
    second = text.split("tasks:\n")[1].replace("key: laptop", "key: laptop-2")
    second = second.replace("[alice01, bob02, carol03]", "[bob02, carol03]")
    assert problems_of(write(tmp_path, text + second)) == [expected]


def test_the_same_title_with_another_form_is_no_duplicate(tmp_path: Path) -> None:
    text = one_task()
    second = text.split("tasks:\n")[1].replace("key: laptop", "key: laptop-2")
    second = second.replace("到 IT 服务台领取", "到前台领取")
    assert len(load_task_file(write(tmp_path, text + second)).records) == 2


# --- YAML safety --------------------------------------------------------------------------


def test_files_over_the_limit_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(loader.MAX_FILE_BYTES + 1)  # sparse: instant, takes no disk space
    assert problems_of(path) == ["1:1: <root>: file is 64.0 MiB; task files may be at most 64 MiB"]


def test_size_limit_is_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = one_task()
    size = len(text.encode("utf-8"))
    path = write(tmp_path, text)
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", size)
    assert load_task_file(path).records
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", size - 1)
    (problem,) = problems_of(path)
    assert "task files may be at most" in problem


def test_missing_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path / "absent.yaml") == [
        "1:1: <root>: cannot read the file: No such file or directory"
    ]


def test_deep_nesting_is_refused_without_crashing(tmp_path: Path) -> None:
    depth = 200_000  # libyaml's own composer overflows the C stack long before this
    path = write(tmp_path, "version: 1\ntasks: " + "[" * depth + "]" * depth + "\n")
    # Where it is caught depends on the libyaml inside PyYAML: ours counts 64 levels, newer
    # libyaml stops at its own limit first. The problem and its line are the same.
    (problem,) = problems_of(path)
    assert re.fullmatch(r"2:\d+: <root>: nesting deeper than 64 levels", problem)


def test_alias_bomb_fails_fast(tmp_path: Path) -> None:
    lines = ["version: 1", "tasks:", "  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 30):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"  - &l{level} [{refs}]")
    (problem,) = problems_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert "alias '*l4' repeats 66,430 nodes; an alias may repeat at most 10,000" in problem


def test_total_alias_expansion_is_bounded(tmp_path: Path) -> None:
    team = ", ".join(f"user{i}" for i in range(9_000))
    lines = ["version: 1", f"x-team: &team [{team}]", "tasks:"]
    lines += [f"  - userids: *team\n    key: t{i}" for i in range(120)]
    (problem,) = problems_of(write(tmp_path, "\n".join(lines) + "\n"))
    assert "aliases expand to more than 1,000,000 nodes in all" in problem


def test_aliases_within_budget_are_expanded(tmp_path: Path) -> None:
    team = ", ".join(f"user{i:04d}" for i in range(1_000))
    lines = [
        "version: 1",
        "defaults: {url: 'https://intranet.example.com', form: {a: b}}",
        "tasks:",
        f"  - {{key: t0, title: 任务0, userids: &team [{team}]}}",
    ]
    lines += [f"  - {{key: t{i}, title: 任务{i}, userids: *team}}" for i in range(1, 100)]
    records = load_task_file(write(tmp_path, "\n".join(lines) + "\n")).records
    assert len(records) == 100_000


def test_pure_python_parser_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    with_libyaml = {name: problems_of(INVALID / name) for name in EXPECTED}
    example = load_task_file(EXAMPLE)
    monkeypatch.setattr(yamlnodes, "_EventSource", yaml.SafeLoader)
    assert load_task_file(EXAMPLE).records == example.records
    for name, expected in with_libyaml.items():
        got = problems_of(INVALID / name)
        if any("invalid YAML" in line for line in expected):
            # The two parsers word syntax errors differently; the place is the same.
            assert [line.split(": ")[0] for line in got] == [
                line.split(": ")[0] for line in expected
            ], name
        else:
            assert got == expected, name


# --- create_time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "millis"),
    [
        ("2026-12-01T09:00:00+08:00", 1_796_086_800_000),
        ("2026-12-01T09:00:00", 1_796_086_800_000),  # naive: Asia/Shanghai
        ("2026-12-01 09:00", 1_796_086_800_000),
        ("2026-12-01T01:00:00Z", 1_796_086_800_000),
        ("2026-12-01T01:00:00.250z", 1_796_086_800_250),
        ("2026-11-30T20:00:00-0500", 1_796_086_800_000),
        ("2026-12-01T09:00:00+08", 1_796_086_800_000),
        ("2026-12-01T09:00:00.123456789+08:00", 1_796_086_800_123),
    ],
)
def test_create_time(written: str, millis: int) -> None:
    assert loader.create_time_ms(written) == millis


@pytest.mark.parametrize("written", ["2026-12-01", "2026-13-01T00:00", "2026-12-01T24:00", "x"])
def test_create_time_rejects(written: str) -> None:
    with pytest.raises(ValueError):
        loader.create_time_ms(written)


def test_an_unreal_create_time_in_defaults_is_one_problem_for_all_tasks(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "defaults: {url: 'https://e.example.com', create_time: '2026-02-30T01:00'}\n"
        "tasks:\n"
        "  - {key: a, userid: u1, title: 一, form: {a: b}}\n"
        "  - {key: b, userid: u2, title: 二, form: {a: b}, create_time: '2026-03-01T01:00'}\n"
    )
    assert problems_of(write(tmp_path, text)) == [
        "2:55: defaults.create_time: create_time '2026-02-30T01:00' is not a real "
        "date-time: day is out of range for month"
    ]


# --- the schema check -----------------------------------------------------------------------


def test_partial_jsonschema_run_finds_the_same_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = one_task().split("tasks:\n")[1]
    tasks = [good.replace("laptop", f"task{i}").replace("笔记本", f"{i}号") for i in range(6)]
    tasks[1] = tasks[1].replace("https://", "ftp://")
    tasks[4] = tasks[4].replace("title:", "titel:")
    path = write(tmp_path, "version: 1\ntasks:\n" + "".join(tasks))
    fast = problems_of(path)
    monkeypatch.setattr(loader, "fast_check", lambda: None)
    assert problems_of(path) == fast
    assert len(fast) == 3


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 5)
    | st.sampled_from([2.0, 1.5])
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELD_VALUES = {
    "key": st.sampled_from(["laptop", "Laptop", "", "a" * 65, "laptop\n"]) | JSON,
    "userid": st.sampled_from(["alice01", "bob 02", "", "u" * 65]) | JSON,
    "userids": st.lists(st.sampled_from(["alice01", "bob02", "", "c d"]), max_size=3) | JSON,
    "title": st.sampled_from(["领取", "", " ", "标" * 51]) | JSON,
    "url": st.sampled_from(["https://a.example", "ftp://a", "https://", "http://[::1]:8/x"]) | JSON,
    "pc_url": st.sampled_from(["https://a.example/pc", "javascript:x"]) | JSON,
    "pc_open_type": st.sampled_from([2, 4, 3, 2.0, True, "2"]) | JSON,
    "form": st.sampled_from(
        [{"a": "b"}, [{"title": "a", "content": "b"}], [], {}, [{"title": "a"}]]
    )
    | JSON,
    "status": st.sampled_from(["open", "done", "closed"]) | JSON,
    "create_time": st.sampled_from(["2026-12-01T09:00", "2026-12-01", "x"]) | JSON,
    "source_name": st.sampled_from(["入职", "", " "]) | JSON,
    "originator_userid": st.sampled_from(["m1", "m 1"]) | JSON,
    "titel": JSON,
}


def task_dicts() -> st.SearchStrategy[dict[str, object]]:
    names = st.sets(st.sampled_from(sorted(FIELD_VALUES)), max_size=8)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({n: FIELD_VALUES[n] for n in chosen}))


DOCUMENTS = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1.0, "1", 2, True])},
    optional={
        "defaults": task_dicts() | JSON,
        "tasks": st.lists(task_dicts(), max_size=3) | JSON,
        "extra": JSON,
    },
)


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
def test_compiled_check_agrees_with_jsonschema(document: dict[str, Any]) -> None:
    fast = schemacheck.fast_check()
    assert fast is not None
    assert fast(document) == (not any(schemawords.validator().iter_errors(document)))


def test_compiled_check_agrees_on_every_fixture() -> None:
    fast = schemacheck.fast_check()
    assert fast is not None
    for path in [*VALID.glob("*.yaml"), *INVALID.glob("*.yaml"), EXAMPLE]:
        try:
            text = loader._decode(str(path), loader._read(str(path)))
            document = loader._convert(str(path), loader._compose(str(path), text)).value
        except ConfigError:
            continue  # not YAML: never reaches the schema
        assert fast(document) == (not any(schemawords.validator().iter_errors(document))), path


# --- order independence ---------------------------------------------------------------------

TASKS = st.lists(
    st.tuples(
        st.lists(
            st.sampled_from(["alice01", "bob02", "carol03", "dave04"]),
            min_size=1,
            max_size=3,
            unique=True,
        ),
        st.sampled_from(["领取", "签署", "上传"]),
        st.dictionaries(
            st.sampled_from(["说明", "地点"]), st.sampled_from(["一楼", "三楼"]), min_size=1
        ),
    ),
    min_size=1,
    max_size=8,
)


def task_file_text(tasks: list[tuple[list[str], str, dict[str, str]]], order: list[int]) -> str:
    entries = []
    for index in order:
        userids, title, form = tasks[index]
        entries.append(
            {"key": f"task-{index}", "userids": userids, "title": f"{title} {index}", "form": form}
        )
    document = {"version": 1, "defaults": {"url": "https://intranet.example.com"}, "tasks": entries}
    return json.dumps(document, ensure_ascii=False, indent=1)  # JSON is YAML


@settings(max_examples=60, deadline=None)
@given(TASKS, st.randoms(use_true_random=False))
def test_task_order_does_not_change_the_records(
    tmp_path_factory: pytest.TempPathFactory,
    tasks: list[tuple[list[str], str, dict[str, str]]],
    rng: random.Random,
) -> None:
    folder = tmp_path_factory.mktemp("order")
    order = list(range(len(tasks)))
    shuffled = order[:]
    rng.shuffle(shuffled)
    first = load_task_file(write(folder, task_file_text(tasks, order), "a.yaml")).records
    second = load_task_file(write(folder, task_file_text(tasks, shuffled), "b.yaml")).records

    def essence(records: tuple[DesiredRecord, ...]) -> set[tuple[object, ...]]:
        return {(r.address, r.content, r.status, r.create_time_ms) for r in records}

    assert essence(first) == essence(second)
    assert len(first) == sum(len(userids) for userids, _, _ in tasks)


def test_problem_type() -> None:
    problem = Problem("tasks.yaml", 3, 5, "tasks[0].title", "title is empty")
    assert str(problem) == "tasks.yaml:3:5: tasks[0].title: title is empty"


# --- reading the tasks one by one -----------------------------------------------------------


def many_tasks(count: int, **fields: str) -> str:
    """A file of ``count`` tasks on common defaults; ``fields`` change task N (``_N_name``)."""
    lines = [
        "version: 1",
        "defaults:",
        "  url: https://intranet.example.com/onboarding",
        "  form: {说明: 按指引完成}",
        "tasks:",
    ]
    for n in range(count):
        task = {"key": f"task-{n:04d}", "userid": f"user{n % 50:02d}", "title": f"任务 {n}"}
        task.update({k.split("_", 2)[2]: v for k, v in fields.items() if k.startswith(f"_{n}_")})
        lines.append("  - " + "\n    ".join(f"{k}: {v}" for k, v in task.items() if v))
    return "\n".join(lines) + "\n"


def both_readings(path: Path) -> tuple[object, object]:
    """What the streamed reading and the whole-file reading make of a file."""
    name = str(path)
    data = loader._read(name)

    def outcome(read: Any) -> object:
        try:
            return read()
        except ConfigError as err:
            return [str(problem) for problem in err.problems]

    streamed = outcome(lambda: loader._streamed_records(name, loader._utf8(name, data)))
    whole = outcome(lambda: loader._checked_records(name, loader._decode(name, data)))
    return streamed, whole


LAST = 599  # the last of 600 tasks: more than the one-by-one reading ever holds at once
STREAMED_CASES = {
    "valid": many_tasks(600),
    "version and defaults last": "tasks:"
    + many_tasks(600).split("tasks:")[1]
    + many_tasks(0).split("tasks:")[0],
    "a bad task at the end": many_tasks(600, **{f"_{LAST}_url": "ftp://files.example.com"}),
    "a repeated key at the end": many_tasks(600, **{f"_{LAST}_key": "task-0003"}),
    "a repeated title and form": many_tasks(600, **{f"_{LAST}_title": "任务 549"}),
    "unreal create_times": many_tasks(600, _3_create_time="2026-02-30T09:00")
    + "  - {key: extra, userid: x, title: 额外, create_time: '2026-04-31 10:00'}\n",
    "defaults with a problem": many_tasks(600).replace("  form:", "  source_name: ' '\n  form:"),
    "defaults with a problem and repeats": many_tasks(
        600, _7_title="任务 6", _7_userid="user06"
    ).replace("  form: {说明: 按指引完成}", "  form: {说明: [a]}"),
    "another part with a problem and repeats": many_tasks(
        600, _5_title="任务 4", _5_userid="user04"
    ).replace("version: 1", "version: 2"),
    "every task with a problem": many_tasks(600).replace("title:", "titel:"),
    "problems of every kind": many_tasks(
        600,
        _0_priority="high",
        _10_userid="'bob 02'",
        _20_form="[{title: a}]",
        _30_pc_open_type="3",
        _40_status="!secret done",
        _50_key="Bad!",
        _60_userids="[a, a]",
    ),
    "anchors, aliases and merge keys": many_tasks(600).replace(
        "  - key: task-0000", "  - &first\n    key: task-0000", 1
    )
    + "  - {<<: *first, key: merged, title: 合并}\n  - {<<: *first, key: merged-2}\n",
    "an empty list of tasks": (
        "version: 1\ndefaults: {create_time: '2026-02-30T01:00'}\ntasks: []\n"
    ),
}


@pytest.mark.parametrize("case", sorted(STREAMED_CASES))
def test_streamed_reading_agrees_with_reading_the_whole_file(tmp_path: Path, case: str) -> None:
    streamed, whole = both_readings(write(tmp_path, STREAMED_CASES[case]))
    assert streamed is not None, "read whole instead"
    assert streamed == whole


def test_streamed_reading_leaves_unusual_layouts_to_the_whole_file(tmp_path: Path) -> None:
    text = many_tasks(3).replace("tasks:", "tasks: !!seq")
    streamed, whole = both_readings(write(tmp_path, text))
    assert streamed is None
    records, rest = whole
    assert len(records) == 3 and rest["version"] == 1


def test_valid_file_is_read_once_task_by_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def whole_file(name: str, text: str) -> None:
        raise AssertionError("read whole")

    monkeypatch.setattr(loader, "_checked_records", whole_file)
    path = write(tmp_path, many_tasks(600) + "  - {key: alone, userid: u, title: 只此一个}\n")
    records = load_task_file(path).records
    assert len(records) == 601
    assert records[-1].content.form == (("说明", "按指引完成"),)
    assert records[0].content.form is records[-1].content.form  # the defaults' form, shared


def test_streamed_items_are_converted_as_the_whole_document_would_be() -> None:
    text = (
        "version: 1\n"
        "tasks:\n"
        "  - {key: plain, n: [1, {deep: ~}], pc_open_type: 2}\n"
        "  - &a {key: anchored, userids: [u1, u2]}\n"
        "  - {<<: *a, key: merged}\n"
        "  - {key: tagged, title: !!str 5, x: !secret y}\n"
        "  - {key: twice, key: again}\n"
        "  - just text\n"
    )

    class Sink:
        layout = loader._TASK_FIELDS
        fields = frozenset({"key"})

        def __init__(self) -> None:
            self.items: list[yamlnodes.Item] = []

        def begin(self, head: yamlnodes.Map) -> None:
            assert [key.text for key, _ in head.pairs] == ["version"]  # type: ignore[attr-defined]

        def item(self, item: yamlnodes.Item) -> None:
            self.items.append(item)

    sink = Sink()
    streamed_root = yamlnodes.compose_streaming(text.encode("utf-8"), "tasks", sink)
    root = yamlnodes.compose(text)
    assert isinstance(root, yamlnodes.Map) and isinstance(streamed_root, yamlnodes.Map)
    whole = yamlvalues.convert(root, loader._LAYOUT, 10_000)
    assert [item.value for item in sink.items] == whole.value["tasks"]
    assert [p for item in sink.items for p in item.problems] == whole.problems
    assert set().union(*(item.poisoned for item in sink.items)) == whole.poisoned
    tasks, _ = yamlvalues.locate(root, ("tasks",))
    assert isinstance(tasks, yamlnodes.Seq)
    for index, (item, node) in enumerate(zip(sink.items, tasks.items, strict=True)):
        assert (item.line, item.column) == (node.line, node.column)
        assert (item.nodes().line, item.nodes().column) == (node.line, node.column)
        if isinstance(item.value, dict):
            key, _ = yamlvalues.locate(root, ("tasks", index, "key"))
            assert item.places["key"] == (key.line, key.column)
    assert streamed_root.size == root.size


@pytest.mark.parametrize(
    "change",
    [
        {"maxItems": 1000},
        {"uniqueItems": True},
        {"minItems": 2},
        {"$ref": "#/$defs/task"},
    ],
)
def test_schema_judging_tasks_together_turns_streaming_off(change: dict[str, Any]) -> None:
    schema = loader.load_schema()
    schema["properties"]["tasks"].update(change)
    assert schemacheck._rules(schema, lambda s: lambda x: True) is None


def test_condition_on_the_tasks_turns_streaming_off() -> None:
    schema = loader.load_schema()
    schema["allOf"][0]["if"]["properties"]["tasks"] = {"minItems": 2}
    assert schemacheck._rules(schema, lambda s: lambda x: True) is None
    assert schemacheck._rules(loader.load_schema(), lambda s: lambda x: True) is not None
    assert schemacheck.task_rules() is not None


def test_byte_order_mark_does_not_shift_columns(tmp_path: Path) -> None:
    text = "version: 2\ntasks: []\n"
    with_mark = write(tmp_path, "\ufeff" + text, "bom.yaml")
    assert [p.split(": ")[0] for p in problems_of(with_mark)] == ["1:10", "2:8"]
    assert problems_of(with_mark) == problems_of(write(tmp_path, text))


def test_a_title_is_counted_in_utf16_units_like_dingtalk(tmp_path: Path) -> None:
    ok = (
        "version: 1\ntasks:\n"
        "  - {key: a, userid: u1, title: '%s', url: 'https://x.example.com', form: {a: b}}\n"
    )
    load_task_file(write(tmp_path, ok % ("验" * 48 + "🎉")))
    with pytest.raises(ConfigError) as caught:
        load_task_file(write(tmp_path, ok % ("验" * 49 + "🎉")))
    assert str(caught.value).endswith(
        "tasks[0].title: title is 51 characters (an emoji or another rare character counts 2); "
        "DingTalk allows at most 50"
    )
