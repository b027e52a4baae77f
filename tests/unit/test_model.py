"""Fingerprints and biz_ids must never change across releases: state files depend on them."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files

from hypothesis import given
from hypothesis import strategies as st

from dingsync.loader import _READERS
from dingsync.model import CONTENT_FIELDS
from dingsync.model import FIELDS
from dingsync.model import SANDBOX_ENDPOINT
from dingsync.model import Content
from dingsync.model import Remote
from dingsync.model import app_key_fingerprint
from dingsync.model import biz_id_for
from dingsync.model import generation_of_key
from dingsync.model import source_id_for
from dingsync.todo_backend import _WIRE

EXAMPLE = Content(
    title="领取笔记本电脑",
    url="https://intranet.example.com/it/laptop",
    form=(("任务描述", "到 IT 服务台领取并签收"), ("截止日期", "2026-12-05")),
    pc_url=None,
    source_name="入职流程",
    originator_userid="manager7078",
    pc_open_type=2,
)


def test_fingerprint_is_pinned():
    # Fingerprints are written into state and plan files: they change only on purpose.
    # (Plans compare content by value, so a change of the digest replaces nothing.)
    assert EXAMPLE.fingerprint() == (
        "sha256:a1daf852a7d64121fe1b0baa3a42ed9e714aeb414b2c9bfcf912e476baded03e"
    )


def test_every_content_field_changes_the_fingerprint():
    changed = {
        "title": "x",
        "url": "https://x.example.com",
        "pc_url": "https://pc.example.com",
        "form": (("a", "b"),),
        "source_name": "x",
        "originator_userid": "x",
        "pc_open_type": 4,
        "description": "x",
        "due_time": 1_764_000_000_000,
        "priority": 40,
        "creator_userid": "hr-bot01",
    }
    assert set(changed) == set(CONTENT_FIELDS)
    for name, value in changed.items():
        assert EXAMPLE._replace(**{name: value}).fingerprint() != EXAMPLE.fingerprint(), name


def test_form_order_matters():
    swapped = EXAMPLE._replace(form=tuple(reversed(EXAMPLE.form)))
    assert swapped.fingerprint() != EXAMPLE.fingerprint()


def test_content_round_trips_through_its_dict():
    assert Content.from_dict(EXAMPLE.to_dict()) == EXAMPLE


def test_biz_id_is_pinned():
    assert biz_id_for("3f0c", "laptop@alice01", 0) == (
        "dingsync-9990e8f3590e293e92383a4c39657f16c593befa-0"
    )


@given(
    lineage=st.uuids().map(str),
    address=st.text(min_size=1, max_size=200),
    generation=st.integers(min_value=0, max_value=10**9),
)
def test_biz_id_fits_dingtalk(lineage, address, generation):
    biz = biz_id_for(lineage, address, generation)
    assert biz.startswith("dingsync-")
    assert len(biz) <= 64 and biz.isascii()
    assert biz != biz_id_for(lineage, address, generation + 1)


def test_an_unset_field_does_not_enter_the_fingerprint() -> None:
    from dingsync.model import Content

    plain = Content(title="t", url="https://x.example.com", form=(("a", "b"),))
    canonical = '{"form":[{"content":"b","title":"a"}],"title":"t","url":"https://x.example.com"}'
    assert plain.fingerprint() == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert plain._replace(pc_url="https://x.example.com/pc").fingerprint() != plain.fingerprint()


def test_a_source_id_names_its_address_and_generation():
    first = source_id_for("onboarding", "laptop@alice01", 0)
    second = source_id_for("onboarding", "laptop@alice01", 1)
    assert first == "dingsync-" + first[9:49] + "-0"
    assert first[:-1] == second[:-1]  # one prefix for every generation of an address
    assert source_id_for("other", "laptop@alice01", 0)[:-1] != first[:-1]
    assert set(first) <= set("dingsync-0123456789abcdef")  # safe in a URL path
    assert [generation_of_key(k) for k in (first, second)] == [0, 1]
    assert generation_of_key(biz_id_for("onboarding", "laptop@alice01", 7)) == 7
    assert generation_of_key("someone-else-3") == -1
    assert generation_of_key("dingsync-abc-x") == -1


def test_a_remote_describes_itself_without_a_secret():
    remote = Remote("todo", "https://api.dingtalk.com", app_key_fingerprint("ding-app-key"))
    assert "ding-app-key" not in remote.describe() and "todo" in remote.describe()
    assert Remote.from_dict(remote.to_dict()) == remote
    assert Remote("todo", SANDBOX_ENDPOINT).sandbox
    assert "sandbox" in Remote("workrecord", SANDBOX_ENDPOINT).describe()
    for bad in (
        {"api": 1, "endpoint": "x"},
        {"api": "todo", "endpoint": "x", "app_key_fingerprint": 5},
    ):
        try:
            Remote.from_dict(bad)
        except TypeError:
            continue
        raise AssertionError(f"accepted {bad}")


# ---------------------------------------------------------------- the field table's reach


def _schema(name: str) -> dict:
    text = files("dingsync.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def test_every_field_of_the_table_is_in_the_schemas() -> None:
    """A new row in FIELDS fails here until the task file and the plan can carry it."""
    tasks, plan = _schema("tasks"), _schema("plan")
    for field in FIELDS:
        assert field.name in tasks["$defs"]["task"]["properties"], field.name
        assert field.name in tasks["$defs"]["defaults"]["properties"], field.name
        assert field.name in plan["$defs"]["content"]["properties"], field.name


def test_every_v1_field_reaches_the_wire() -> None:
    """Each v1.0 field has a name in the request body, unless it travels another way (url
    and pc_url as detailUrl, creator_userid as the unionId a call is made as)."""
    carried_apart = {"url", "pc_url", "creator_userid"}
    v1_fields = {f.name for f in FIELDS if "todo" in f.apis}
    assert set(_WIRE) | carried_apart == v1_fields
    assert {f.name for f in FIELDS if f.in_place and "todo" in f.apis} <= set(_WIRE)


def test_the_loader_reads_every_kind_of_field() -> None:
    assert {f.kind for f in FIELDS} - {"form"} <= set(_READERS)
