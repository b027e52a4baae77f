"""The JSON Schema of the task file, on its own: what editors and other tools see."""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from dingsync.loader import load_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "tasks.schema.json"

VALID_TASK = {
    "key": "laptop",
    "userid": "alice01",
    "title": "领取笔记本电脑",
    "url": "https://intranet.example.com/it/laptop",
    "form": [{"title": "任务描述", "content": "到 IT 服务台领取"}],
}


def validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def document(**task: Any) -> dict[str, Any]:
    merged = {**VALID_TASK, **task}
    return {"version": 1, "tasks": [{k: v for k, v in merged.items() if v is not None}]}


def subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from subschemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from subschemas(value)


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"] and schema["description"]


def test_packaged_schema_is_the_top_level_file() -> None:
    packaged = importlib.resources.files("dingsync.schemas").joinpath("tasks.schema.json")
    assert json.loads(packaged.read_text(encoding="utf-8")) == json.loads(
        SCHEMA_FILE.read_text(encoding="utf-8")
    )
    assert load_schema() == json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_load_schema_returns_a_copy() -> None:
    first = load_schema()
    first["properties"].clear()
    assert load_schema()["properties"]


def test_every_object_with_properties_forbids_others() -> None:
    for node in subschemas(load_schema()):
        if "properties" in node and node.get("type") == "object":
            assert node.get("additionalProperties") is False, node.get("title")


def test_every_field_is_documented_for_editor_hover() -> None:
    schema = load_schema()
    for name in ("task", "defaults"):
        for field, ref in schema["$defs"][name]["properties"].items():
            target = schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]
            assert target.get("description") or ref.get("description"), field


def test_a_valid_document_passes() -> None:
    assert not list(validator().iter_errors(document()))


def test_the_spec_example_passes() -> None:
    spec_example = {
        "version": 1,
        "defaults": {
            "url": "https://intranet.example.com/onboarding",
            "source_name": "入职流程",
            "originator_userid": "manager7078",
        },
        "tasks": [
            {
                "key": "laptop",
                "userids": ["alice01", "bob02"],
                "title": "领取笔记本电脑",
                "url": "https://intranet.example.com/it/laptop",
                "pc_url": "https://intranet.example.com/it/laptop?pc=1",
                "pc_open_type": 2,
                "form": [
                    {"title": "任务描述", "content": "到 IT 服务台领取并签收"},
                    {"title": "截止日期", "content": "2026-12-05"},
                ],
                "status": "open",
            }
        ],
    }
    assert not list(validator().iter_errors(spec_example))


@pytest.mark.parametrize(
    ("change", "keyword"),
    [
        ({"key": "Laptop"}, "pattern"),
        ({"key": "a" * 65}, "pattern"),
        ({"userids": ["bob02"]}, "oneOf"),
        ({"userid": None}, "oneOf"),
        ({"userid": None, "userids": []}, "minItems"),
        ({"userid": None, "userids": ["a", "a"]}, "uniqueItems"),
        ({"userid": "alice 01"}, "pattern"),
        ({"userid": "u" * 65}, "maxLength"),
        ({"title": "标" * 51}, "maxLength"),
        ({"title": ""}, "minLength"),
        ({"title": "   "}, "pattern"),
        ({"url": "javascript:alert(1)"}, "pattern"),
        ({"url": "ftp://files.example.com"}, "pattern"),
        ({"url": "https://"}, "pattern"),
        ({"url": None}, "required"),
        ({"pc_url": "ftp://files.example.com"}, "pattern"),
        ({"pc_open_type": 3}, "enum"),
        ({"pc_open_type": True}, "enum"),
        ({"form": []}, "minItems"),
        ({"form": {}}, "minProperties"),
        ({"form": [{"title": "t", "content": "c"}] * 21}, "maxItems"),
        ({"form": "text"}, "type"),
        ({"form": [{"title": "t"}]}, "required"),
        ({"form": [{"title": "t", "content": ""}]}, "minLength"),
        ({"form": {"t": ""}}, "minLength"),
        ({"status": "closed"}, "enum"),
        ({"create_time": "next monday"}, "pattern"),
        ({"titel": "x"}, "additionalProperties"),
    ],
)
def test_invalid_task(change: dict[str, Any], keyword: str) -> None:
    errors = list(validator().iter_errors(document(**change)))
    assert keyword in {error.validator for error in errors}


@pytest.mark.parametrize(
    "url",
    [
        "https://intranet.example.com",
        "http://localhost:8080/x?y=1#z",
        "https://user@host.example/path",
        "https://[::1]:8443/",
        "https://intranet.example.com/入职?step=1",
    ],
)
def test_urls_accepted(url: str) -> None:
    assert not list(validator().iter_errors(document(url=url, pc_url=url)))


def test_version_must_be_the_number_one() -> None:
    for version in ("1", 2, True):
        assert list(validator().iter_errors({**document(), "version": version}))


def test_url_may_come_from_defaults() -> None:
    without_url = document(url=None)
    assert list(validator().iter_errors(without_url))
    with_default = {**without_url, "defaults": {"url": "https://intranet.example.com"}}
    assert not list(validator().iter_errors(with_default))


def test_defaults_cannot_hold_identity_fields() -> None:
    for field in ("key", "userid", "userids"):
        doc = {**document(), "defaults": {field: "x"}}
        assert "additionalProperties" in {e.validator for e in validator().iter_errors(doc)}


def test_no_constraint_spans_several_tasks() -> None:
    # The loader validates rejected tasks one by one (see loader._TaskCollector); a keyword
    # such as uniqueItems or maxItems on the tasks list would need the whole list.
    tasks = load_schema()["properties"]["tasks"]
    assert set(tasks) <= {"title", "description", "type", "minItems", "items"}


def test_tasks_must_not_be_empty() -> None:
    assert list(validator().iter_errors({"version": 1, "tasks": []}))
