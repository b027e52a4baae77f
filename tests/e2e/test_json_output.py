"""Every ``--json`` document of plan, apply, drift and validate matches its published schema.

The schemas in schemas/ (shipped as ``dingsync.schemas``) are what users' pipelines rely
on, so each document here comes from a real command run against the emulator.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.e2e.conftest import CREATOR
from tests.e2e.conftest import ONBOARDING
from tests.e2e.conftest import dingsync
from tests.e2e.conftest import write_tasks
from tests.helpers import complete_remote
from tests.helpers import delete_remote
from tests.helpers import retitle_remote

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("plan", "apply", "drift", "validate", "error")


def load_schema(kind: str) -> dict[str, Any]:
    text = files("dingsync.schemas").joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


SCHEMAS = {kind: load_schema(kind) for kind in KINDS}


def check(kind: str, document: dict[str, Any]) -> dict[str, Any]:
    """Fail with every schema error at once; return the document for further asserts."""
    validator = Draft202012Validator(SCHEMAS[kind])
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    messages = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not messages, "\n".join(messages)
    assert document["kind"] == kind and document["format_version"] == 1
    return document


def json_of(*args: str, code: int = 0) -> dict[str, Any]:
    run = dingsync(*args)
    assert run.code == code, run.err
    return run.json()


def record_ids() -> dict[str, str]:
    addresses = dingsync("state", "list").out.split()
    return {
        a: dingsync("state", "show", a, "--json").json()["record"]["record_id"] for a in addresses
    }


@pytest.fixture
def tasks_file(workdir, api):
    """The task file, once for each of DingTalk's to-do APIs: every document of either
    follows the same schemas."""
    return write_tasks(workdir / "tasks.yaml", ONBOARDING, api)


@pytest.fixture
def applied(tasks_file):
    assert dingsync("apply", "-y").code == 0
    return record_ids()


# ---------------------------------------------------------------- the schemas themselves


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12(kind):
    schema = SCHEMAS[kind]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:dingsync:schema:{kind}:1"
    assert schema["additionalProperties"] is False
    assert {"format_version", "kind"} <= set(schema["required"])
    assert schema["properties"]["kind"]["const"] == kind


def _resources() -> dict[str, dict[str, Any]]:
    """Every schema resource by $id, bundled copies included."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$id" in node:
                found[node["$id"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for schema in SCHEMAS.values():
        walk(schema)
    return found


def _target(ref: str, base: str, resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    uri, _, pointer = ref.partition("#")
    node: Any = resources[uri or base]
    for part in filter(None, pointer.split("/")):
        node = node[part]
    return node


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_is_described(kind):
    """Each declared property says what it is, itself or through the definition it names."""
    resources = _resources()
    undocumented: list[str] = []

    def walk(node: Any, base: str, where: str) -> None:
        if isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, base, f"{where}/{i}")
            return
        if not isinstance(node, dict):
            return
        base = node.get("$id", base)
        for name, sub in node.get("properties", {}).items():
            described = "description" in sub or (
                "$ref" in sub and "description" in _target(sub["$ref"], base, resources)
            )
            if not described:
                undocumented.append(f"{where}/properties/{name}")
        for key, value in node.items():
            # if/then/else only narrow properties declared (and described) elsewhere
            if key not in ("properties", "if", "then", "else", "not"):
                walk(value, base, f"{where}/{key}")
            elif key == "properties":
                for name, sub in value.items():
                    walk(sub, base, f"{where}/properties/{name}")

    walk(SCHEMAS[kind], SCHEMAS[kind]["$id"], "")
    assert not undocumented, undocumented


def test_apply_schema_bundles_exact_copies_of_plan_and_drift():
    bundled = SCHEMAS["apply"]["$defs"]
    for kind in ("plan", "drift"):
        standalone = {k: v for k, v in SCHEMAS[kind].items() if k != "$schema"}
        assert bundled[kind] == standalone, f"apply.schema.json's copy of {kind} is stale"


def test_schemas_reject_a_wrong_document():
    validator = Draft202012Validator(SCHEMAS["plan"])
    assert not validator.is_valid({"format_version": 1, "kind": "plan"})
    assert not Draft202012Validator(SCHEMAS["validate"]).is_valid(
        {"format_version": 1, "kind": "validate", "valid": True, "file": "t.yaml", "problems": []}
    ), "a valid result carries the record count"


# ---------------------------------------------------------------- plan


def test_plan_before_the_first_apply(tasks_file):
    doc = check("plan", json_of("plan", "--json"))
    assert doc["state"]["lineage"] is None and doc["state"]["serial"] == 0
    assert [c["reason"] for c in doc["changes"]] == ["new"] * 3


def test_plan_without_changes(applied):
    doc = check("plan", json_of("plan", "--json"))
    assert doc["has_changes"] is False and doc["changes"] == []
    assert doc["summary"]["text"] == "No changes."
    assert doc["summary"]["unchanged"] == doc["summary"]["managed"] == 3


def test_plan_with_create_replace_and_complete(applied, workdir, api):
    text = ONBOARDING.replace("title: 领取笔记本电脑", "title: 领取笔记本电脑和显示器")
    text = text.replace("      - key: nda\n", "      - key: badge\n        status: open\n")
    write_tasks(workdir / "tasks.yaml", text, api)
    doc = check("plan", json_of("plan", "--json", "--out", "saved.plan"))
    actions = {c["address"]: (c["action"], c.get("reason")) for c in doc["changes"]}
    retitled = "replace" if api == "workrecord" else "update"  # v1.0 edits in place
    assert actions == {
        "badge@alice01": ("create", "new"),
        "laptop@alice01": (retitled, None),
        "laptop@bob02": (retitled, None),
        "nda@alice01": ("complete", "removed"),
    }
    replace = next(c for c in doc["changes"] if c["action"] == retitled)
    assert [d["field"] for d in replace["diff"]] == ["title"]
    check("plan", json.loads((workdir / "saved.plan").read_text(encoding="utf-8")))
    as_format = json_of("plan", "--format", "json")
    assert check("plan", as_format) == doc


def test_plan_with_refresh_counts_its_calls(applied):
    assert "api_calls" not in check("plan", json_of("plan", "--json"))
    doc = check("plan", json_of("plan", "--refresh", "--json"))
    assert doc["api_calls"]["total"] == sum(doc["api_calls"]["by_api"].values()) > 0
    text = dingsync("plan", "--refresh")
    assert text.code == 0, text.err
    assert text.out.splitlines()[-1].startswith("API calls: ")


def test_plan_completing_a_task_marked_done(applied, workdir, api):
    write_tasks(workdir / "tasks.yaml", ONBOARDING + "        status: done\n", api)
    doc = check("plan", json_of("plan", "--json"))
    assert [(c["action"], c["reason"]) for c in doc["changes"]] == [("complete", "done")]


# ---------------------------------------------------------------- apply


def test_apply_success(tasks_file, emulator):
    doc = check("apply", json_of("apply", "-y", "--json"))
    assert doc["ok"] is True
    assert doc["result"]["created"] == ["laptop@alice01", "laptop@bob02", "nda@alice01"]
    assert doc["result"]["failed"] == {} and doc["result"]["fatal"] is None
    assert doc["drift"]["checked"] == 0 and doc["drift"]["items"] == []  # refreshed first
    calls = doc["api_calls"]
    assert calls["total"] == sum(calls["by_api"].values()) == sum(emulator.call_counts().values())
    assert doc["state"]["serial"] >= 1


def test_apply_with_a_failed_record(tasks_file, emulator):
    emulator.set_users({"alice01", "manager7078", CREATOR})  # not bob02
    doc = check("apply", json_of("apply", "-y", "--json", code=1))
    assert doc["ok"] is False
    assert list(doc["result"]["failed"]) == ["laptop@bob02"]
    assert "33012" in doc["result"]["failed"]["laptop@bob02"]
    assert doc["result"]["created"] == ["laptop@alice01", "nda@alice01"]


def test_apply_without_refresh_and_with_drift(applied, emulator, workdir):
    doc = check("apply", json_of("apply", "-y", "--json", "--no-refresh"))
    assert doc["drift"] is None and doc["plan"]["has_changes"] is False
    retitle_remote(emulator, applied["nda@alice01"], "签署保密协议（新版）")
    delete_remote(emulator, applied["laptop@bob02"])
    doc = check("apply", json_of("apply", "-y", "--json"))
    assert doc["drift"]["summary"] == {"completed": 0, "missing": 1, "modified": 1}


def test_apply_with_a_replace(applied, workdir, api):
    text = ONBOARDING.replace("说明: 在 HR 系统中在线签署", "说明: 在 HR 系统中在线签署（新版）")
    write_tasks(workdir / "tasks.yaml", text, api)
    doc = check("apply", json_of("apply", "-y", "--json"))
    # The form (v1.0: the description made of it) changed: a replace, or an update in place.
    done, field = ("replaced", "form") if api == "workrecord" else ("updated", "description")
    assert doc["result"][done] == ["nda@alice01"]
    assert doc["plan"]["changes"][0]["diff"][0]["field"] == field


def test_apply_reports_the_plan_it_was_made_from(tasks_file):
    before = check("plan", json_of("plan", "--json"))
    doc = check("apply", json_of("apply", "-y", "--json"))
    assert doc["plan"]["state"] == before["state"]


# ---------------------------------------------------------------- drift


def test_drift_without_drift(applied):
    doc = check("drift", json_of("drift", "--json"))
    assert doc["checked"] == 3 and doc["items"] == [] and doc["unsettled"] == []
    assert doc["lookup"] == "list" and doc["lookup_fell_back"] is False


def test_drift_with_every_kind(applied, emulator, api):
    complete_remote(emulator, applied["laptop@alice01"])
    delete_remote(emulator, applied["laptop@bob02"])
    if api == "workrecord":
        emulator.modify(
            applied["nda@alice01"],
            title="签署保密协议（新版）",
            forms=[("说明", "线下签署"), ("地点", "HR 办公室")],
        )
    else:
        emulator.modify_todo(applied["nda@alice01"], subject="签署保密协议（新版）", priority=40)
    doc = check("drift", json_of("drift", "--json", "--detailed-exitcode", code=2))
    kinds = {i["address"]: i["kind"] for i in doc["items"]}
    assert kinds == {
        "laptop@alice01": "completed",
        "laptop@bob02": "missing",
        "nda@alice01": "modified",
    }
    assert doc["summary"] == {"completed": 1, "missing": 1, "modified": 1}
    modified = next(i for i in doc["items"] if i["kind"] == "modified")
    expected = {"title", "form[0].content", "form[1]"} if api == "workrecord" else {"title"}
    assert {f["path"] for f in modified["fields"]} == expected
    assert check("drift", json_of("drift", "--format", "json"))["summary"]["completed"] == 0


def test_drift_with_the_get_lookup_falling_back(applied, api):
    doc = check("drift", json_of("drift", "--json", "--lookup", "get"))
    # workrecord/get does not exist on DingTalk; the v1.0 refresh has no such choice.
    assert doc["lookup"] == "get" and doc["lookup_fell_back"] is (api == "workrecord")


# ---------------------------------------------------------------- validate


def test_validate_valid(workdir):
    example = ROOT / "examples" / "tasks.yaml"
    doc = check("validate", json_of("validate", "--json", "-f", str(example)))
    assert doc["valid"] is True and doc["problems"] == [] and doc["records"] >= 1


def test_validate_invalid(workdir):
    write_tasks(
        workdir / "bad.yaml",
        """
        version: 1
        tasks:
          - key: Laptop
            userid: alice01
            titel: 领取笔记本电脑
            form: []
        """,
    )
    doc = check("validate", json_of("validate", "--json", "-f", "bad.yaml", code=1))
    assert doc["valid"] is False and "records" not in doc
    assert {p["path"] for p in doc["problems"]} >= {"tasks[0].key", "tasks[0].titel"}
    missing = check("validate", json_of("validate", "--json", "-f", "absent.yaml", code=1))
    assert [p["path"] for p in missing["problems"]] == ["<root>"]


def test_validate_documents_of_every_fixture(workdir):
    fixtures = sorted((ROOT / "tests" / "fixtures").glob("*/*.yaml"))
    assert fixtures
    for path in fixtures:
        run = dingsync("validate", "--json", "-f", str(path))
        doc = check("validate", run.json())
        assert doc["valid"] is (path.parent.name == "valid"), path.name
        assert run.code == (0 if doc["valid"] else 1), path.name


def test_failed_commands_print_an_error_document_with_json(workdir, emulator):
    (workdir / "tasks.yaml").write_text("version: 1\ntasks:\n  - key: Bad\n", encoding="utf-8")
    bad = dingsync("plan", "--json")
    assert bad.code == 1
    doc = check("error", bad.json())
    assert doc["problems"] and all(p["line"] >= 1 for p in doc["problems"])
    write_tasks(workdir / "tasks.yaml", ONBOARDING)
    locked = workdir / "state" / "tasks.state.json.lock"
    locked.parent.mkdir(exist_ok=True)
    locked.write_text('{"pid": 1, "host": "elsewhere", "command": "apply"}', encoding="utf-8")
    held = dingsync("apply", "-y", "--json")
    assert held.code == 1
    doc = check("error", held.json())
    assert "locked" in doc["error"] and doc["problems"] == []
