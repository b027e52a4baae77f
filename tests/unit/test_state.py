from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import dingsync
from dingsync import events
from dingsync import journal as journal_module
from dingsync import state as state_module
from dingsync.errors import StateError
from dingsync.events import apply_event
from dingsync.model import Content
from dingsync.model import PendingCreate
from dingsync.model import State
from dingsync.model import StateRecord
from dingsync.state import FORMAT
from dingsync.state import StateStore
from dingsync.state import default_state_path

LINEAGE = "0b6f4c1e-7d4a-4a57-9a55-3f1b2a9c8d10"


def commit(store: StateStore, state: State, event: events.Event) -> None:
    """What the ledger does with each change: make it durable, then apply it."""
    store.append(event)
    apply_event(state, event)


def content(title: str = "领取笔记本电脑") -> Content:
    return Content(
        title=title,
        url="https://intranet.example.com/it/laptop",
        form=(("任务描述", "到 IT 服务台领取并签收"), ("截止日期", "2026-12-05")),
        source_name="入职流程",
    )


def record(
    key: str = "laptop", userid: str = "alice01", record_id: str = "rec-1", generation: int = 0
) -> StateRecord:
    c = content()
    return StateRecord(
        key=key,
        userid=userid,
        record_id=record_id,
        biz_id=f"dingsync-{'0' * 40}-{generation}",
        generation=generation,
        content=c,
        fingerprint=c.fingerprint(),
        status="open",
        create_time_ms=1_764_331_200_000,
        created_at="2026-11-28T12:00:00Z",
        updated_at="2026-11-28T12:00:00Z",
    )


def pending(key: str = "laptop", userid: str = "alice01", generation: int = 0) -> PendingCreate:
    c = content()
    return PendingCreate(
        key=key,
        userid=userid,
        # The same biz_id as record() of the same generation: that record settles it.
        biz_id=f"dingsync-{'0' * 40}-{generation}",
        generation=generation,
        content=c,
        fingerprint=c.fingerprint(),
        create_time_ms=1_764_331_200_000,
        sent_at="2026-11-28T12:00:01Z",
    )


def sample_state() -> State:
    r = record()
    old = record(record_id="rec-0", generation=0)
    p = pending(key="badge", generation=1)
    return State(
        lineage=LINEAGE,
        records={r.address: r},
        pending={p.address: p},
        retiring={old.record_id: old},
        generations={r.address: 1, p.address: 1},
    )


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state" / "tasks.state.json")


def saved(store: StateStore, state: State | None = None) -> State:
    state = state or sample_state()
    store.save(state)
    return state


# -- paths ---------------------------------------------------------------------------------


def test_default_state_path() -> None:
    assert default_state_path("tasks.yaml", sandbox=False) == Path("state/tasks.state.json")
    assert default_state_path(Path("ci/onboarding.yml"), sandbox=True) == Path(
        "state/onboarding.sandbox.state.json"
    )


def test_companion_paths(store: StateStore) -> None:
    assert store.backup_path.name == "tasks.state.json.backup"
    assert store.journal_path.name == "tasks.state.json.journal"
    assert store.backup_path.parent == store.journal_path.parent == store.path.parent


# -- load and save -------------------------------------------------------------------------


def test_missing_file_gives_fresh_state_and_writes_nothing(store: StateStore) -> None:
    first, second = store.load(), StateStore(store.path).load()
    assert first.serial == 0 and not first.records and not first.pending
    assert first.lineage != second.lineage
    assert len(first.lineage) == 36  # a uuid4
    assert not store.exists() and not store.path.parent.exists()


def test_round_trip(store: StateStore) -> None:
    state = saved(store)
    assert store.exists()
    assert StateStore(store.path).load() == state


def test_save_increments_serial_and_keeps_lineage(store: StateStore) -> None:
    state = store.load()
    store.save(state)
    store.save(state)
    assert state.serial == 2
    loaded = StateStore(store.path).load()
    assert (loaded.lineage, loaded.serial) == (state.lineage, 2)


def test_file_layout_diffs_well(store: StateStore) -> None:
    saved(store)
    text = store.path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert text == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert '\n  "format": 1,' in text
    assert "领取笔记本电脑" in text  # not \u escapes
    assert doc["dingsync_version"] == dingsync.__version__


def test_file_holds_only_documented_keys(store: StateStore) -> None:
    # A guard against a secret or any other stray value slipping into the state file.
    saved(store)
    doc = json.loads(store.path.read_text(encoding="utf-8"))
    assert set(doc) == {
        "format",
        "lineage",
        "serial",
        "dingsync_version",
        "records",
        "pending",
        "retiring",
        "generations",
        "remote",
    }
    record_keys = {
        "key",
        "userid",
        "record_id",
        "biz_id",
        "generation",
        "content",
        "fingerprint",
        "status",
        "create_time",
        "created_at",
        "updated_at",
        "completed_by",
        "missing",
    }
    assert all(set(r) == record_keys for r in doc["records"].values())
    assert all(set(r) == record_keys for r in doc["retiring"].values())
    pending_keys = record_keys - {"record_id", "status", "created_at", "updated_at"}
    pending_keys -= {"completed_by", "missing"}
    assert all(set(p) == pending_keys | {"sent_at", "replaces"} for p in doc["pending"].values())
    assert not {"token", "secret", "access_token", "app_secret"} & _all_keys(doc)


def _all_keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _all_keys(v)}
    return set()


def test_new_file_is_0644_and_no_temp_file_is_left(store: StateStore) -> None:
    saved(store)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o644
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tasks.state.json"]


def test_existing_file_mode_is_kept(store: StateStore) -> None:
    state = saved(store)
    store.path.chmod(0o600)
    store.save(state)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_backup_holds_the_previous_file(store: StateStore) -> None:
    state = saved(store)
    first = store.path.read_bytes()
    assert not store.backup_path.exists()
    state.records.clear()
    store.save(state)
    assert store.backup_path.read_bytes() == first
    second = store.path.read_bytes()
    store.save(state)
    assert store.backup_path.read_bytes() == second
    assert not store.backup_path.samefile(store.path)


def test_backup_is_copied_where_hard_links_fail(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = saved(store)
    first = store.path.read_bytes()

    def no_link(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    store.save(state)
    assert store.backup_path.read_bytes() == first


def test_crash_before_rename_leaves_old_file_intact(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = saved(store)
    before = store.path.read_bytes()
    real_replace = os.replace

    def crash_on_state(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == store.path:
            raise OSError(5, "Input/output error")  # as if the process died right here
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_state)
    state.records.clear()
    with pytest.raises(StateError, match=r"cannot write state file .*tasks\.state\.json"):
        store.save(state)
    assert store.path.read_bytes() == before
    assert state.serial == 1  # not counted: the write did not happen
    leftovers = {p.name for p in store.path.parent.iterdir()}
    assert leftovers == {"tasks.state.json", "tasks.state.json.backup"}


def test_save_creates_parent_folders(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "a" / "b" / "s.json")
    store.save(store.load())
    assert store.exists()


# -- load errors ---------------------------------------------------------------------------


def test_truncated_file_names_the_backup(store: StateStore) -> None:
    state = saved(store)
    store.save(state)
    data = store.path.read_bytes()
    store.path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StateError) as info:
        StateStore(store.path).load()
    message = str(info.value)
    assert "\n" not in message
    assert str(store.path) in message and "not valid JSON" in message
    assert f"{store.backup_path} holds the previous state" in message


def test_truncated_file_without_backup(store: StateStore) -> None:
    store.path.parent.mkdir()
    store.path.write_text('{"format": 1, "lin', encoding="utf-8")
    with pytest.raises(StateError, match="perhaps truncated") as info:
        store.load()
    assert "backup" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b" \n\t ", "is empty"),
        ("\u00a0".encode(), "not valid JSON"),  # not whitespace to JSON
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "does not hold a JSON object"),
        (b'{"lineage": "x"}', "no integer 'format'"),
        (b'{"format": "1"}', "no integer 'format'"),
        (b'{"format": 1, "lineage": "x"}', "lacks field"),
    ],
)
def test_unreadable_content(store: StateStore, content: bytes, expected: str) -> None:
    store.path.parent.mkdir()
    store.path.write_bytes(content)
    with pytest.raises(StateError, match=expected):
        store.load()


def _doc(store: StateStore) -> dict[str, object]:
    saved(store)
    doc: dict[str, object] = json.loads(store.path.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"token": "x"}, "unknown field"),
        ({"lineage": ""}, "no lineage"),
        ({"serial": -1}, "serial"),
        ({"serial": True}, "serial"),
        ({"records": []}, "'records' field that is not an object"),
        ({"records": {"laptop@alice01": {"key": "laptop"}}}, "malformed entry"),
        ({"generations": {"a@b": "1"}}, "generations"),
    ],
)
def test_malformed_document(store: StateStore, change: dict[str, object], expected: str) -> None:
    doc = _doc(store)
    doc.update(change)
    store.path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StateError, match=expected):
        StateStore(store.path).load()


def test_entry_filed_under_wrong_address(store: StateStore) -> None:
    doc = _doc(store)
    records = doc["records"]
    assert isinstance(records, dict)
    records["other@alice01"] = records.pop("laptop@alice01")
    store.path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StateError, match="under the wrong address"):
        StateStore(store.path).load()


def test_newer_format_is_refused(store: StateStore) -> None:
    doc = _doc(store)
    doc["format"] = FORMAT + 1
    store.path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StateError) as info:
        StateStore(store.path).load()
    assert str(info.value) == (
        f"state file {store.path} was written by a newer dingsync (format 2); "
        "this version reads format 1 — upgrade dingsync"
    )


def test_older_format_without_migration_is_refused(store: StateStore) -> None:
    doc = _doc(store)
    doc["format"] = 0
    store.path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StateError, match="format 0, which this dingsync cannot migrate"):
        StateStore(store.path).load()


def test_reading_in_small_pieces_gives_the_same_state(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = {f"task-{n}@alice01": record(key=f"task-{n}", record_id=f"rec-{n}") for n in range(40)}
    state = saved(store, State(lineage=LINEAGE, records=many))
    monkeypatch.setattr(state_module._TextPieces, "PIECE", 7)  # cut inside every entry
    assert StateStore(store.path).load() == state


def test_members_in_any_order_are_read_alike(store: StateStore) -> None:
    # A hand edit may move "format" after the sections it decides how to read.
    state = saved(store)
    doc = json.loads(store.path.read_text(encoding="utf-8"))
    reordered = {k: doc[k] for k in sorted(doc, key=lambda k: k == "format")}
    assert list(reordered)[-1] == "format"
    store.path.write_text(json.dumps(reordered, ensure_ascii=False), encoding="utf-8")
    assert StateStore(store.path).load() == state


def test_entries_share_equal_contents_and_repeated_strings(store: StateStore) -> None:
    many = {
        f"task-{n}@bob02": record(key=f"task-{n}", userid="bob02", record_id=f"r{n}")
        for n in range(3)
    }
    saved(store, State(lineage=LINEAGE, records=many))
    loaded = list(StateStore(store.path).load().records.values())
    assert loaded[0].content == loaded[1].content
    assert loaded[0].content is loaded[1].content is loaded[2].content
    assert loaded[0].created_at is loaded[2].created_at


def test_bad_utf8_is_located_by_its_file_offset(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(store)
    good = store.path.read_bytes()
    at = good.index("领取".encode()) + 1  # inside a three-byte character
    store.path.write_bytes(good[:at] + b"\xff" + good[at + 1 :])
    monkeypatch.setattr(state_module._TextPieces, "PIECE", 5)
    with pytest.raises(StateError, match=rf"is not UTF-8 text \(byte {at - 1}\)"):
        StateStore(store.path).load()


def test_json_errors_name_the_line_of_the_whole_file(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved(store)
    lines = store.path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if '"record_id": "rec-1"' in line)
    lines[number] = lines[number].replace('"rec-1",', '"rec-1"')  # drop one comma
    text = "".join(lines)
    store.path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(state_module._TextPieces, "PIECE", 11)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    where = f"line {expected.value.lineno}, column {expected.value.colno}"
    assert expected.value.lineno == number + 2
    with pytest.raises(StateError, match=f"Expecting ',' delimiter at {where}"):
        StateStore(store.path).load()


def test_a_later_plain_section_is_still_checked(store: StateStore) -> None:
    # "records" is built while format is 1, then replaced by a second "records" read while
    # a second "format" said 0: that one must not slip through unchecked.
    store.path.parent.mkdir()
    store.path.write_text(
        '{"format": 1, "records": {}, "format": 0, "records": {"x": 5}, "format": 1, '
        '"lineage": "L", "serial": 1, "dingsync_version": "x", "pending": {}, '
        '"retiring": {}, "generations": {}}',
        encoding="utf-8",
    )
    with pytest.raises(StateError, match=r"malformed entry records\['x'\]"):
        StateStore(store.path).load()


def test_sections_built_before_a_second_format_are_refused(store: StateStore) -> None:
    store.path.parent.mkdir()
    store.path.write_text(
        '{"format": 1, "records": {}, "pending": {}, "retiring": {}, "generations": {}, '
        '"lineage": "L", "serial": 1, "dingsync_version": "x", "format": 0}',
        encoding="utf-8",
    )
    with pytest.raises(StateError, match="more than one 'format'"):
        StateStore(store.path).load()


def test_equal_but_differently_typed_contents_are_not_merged(store: StateStore) -> None:
    saved(store)
    doc = json.loads(store.path.read_text(encoding="utf-8"))
    first = doc["records"]["laptop@alice01"]
    second = json.loads(json.dumps(first))
    second.update(key="badge", record_id="rec-2")
    first["content"]["pc_open_type"], second["content"]["pc_open_type"] = 1, True
    doc["records"]["badge@alice01"] = second
    store.path.write_text(json.dumps(doc), encoding="utf-8")
    records = StateStore(store.path).load().records
    assert records["laptop@alice01"].content.pc_open_type is not True
    assert records["badge@alice01"].content.pc_open_type is True


def test_a_save_that_cannot_be_encoded_leaves_state_and_backup_alone(store: StateStore) -> None:
    saved(store)
    saved(store, store.load())  # now a .backup exists
    doc = json.loads(store.path.read_text(encoding="utf-8"))
    doc["records"]["laptop@alice01"]["content"]["title"] = "\ud800"  # a hand edit
    store.path.write_text(json.dumps(doc), encoding="utf-8")  # escaped, so still UTF-8
    before = (store.path.read_bytes(), store.backup_path.read_bytes())
    state = store.load()
    with pytest.raises(StateError, match="cannot write state file"):
        store.save(state)
    assert (store.path.read_bytes(), store.backup_path.read_bytes()) == before
    assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_missing_state_beside_its_backup_is_refused(store: StateStore) -> None:
    state = saved(store)
    saved(store, state)
    store.path.unlink()
    with pytest.raises(StateError, match=r"is missing but .*\.backup is there"):
        StateStore(store.path).load()
    store.backup_path.unlink()  # starting over is a deliberate act
    assert StateStore(store.path).load().lineage != state.lineage


def test_a_save_removes_temp_files_a_killed_save_left(store: StateStore) -> None:
    saved(store)
    folder = store.path.parent
    leftovers = [
        folder / f".{store.path.name}.k1ll3d.tmp",
        folder / f".{store.backup_path.name}.0123abcd.tmp",
    ]
    for leftover in leftovers:
        leftover.write_text("{half a state", encoding="utf-8")
    unrelated = folder / ".other.state.json.abc.tmp"
    unrelated.write_text("not ours", encoding="utf-8")
    saved(store, store.load())
    assert not any(p.exists() for p in leftovers)
    assert unrelated.exists()


def test_temp_files_of_a_state_whose_name_looks_like_a_pattern_are_told_apart(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "a[b].state.json")
    saved(store)
    other = tmp_path / ".ab.state.json.inflight.tmp"  # "a[b]" as a pattern matches "ab"
    other.write_text("another state's save in flight", encoding="utf-8")
    saved(store, store.load())
    assert other.exists()


def _from_format_0(doc: dict[str, object]) -> dict[str, object]:
    # An invented format 0: records as a list, no pending/retiring/generations, no version.
    records = doc.pop("records")
    assert isinstance(records, list)
    doc["records"] = {f"{r['key']}@{r['userid']}": r for r in records}
    doc.update(pending={}, retiring={}, generations={}, dingsync_version="0.0.1")
    return doc


def test_older_format_is_migrated_and_saved_as_current(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(state_module.MIGRATIONS, 0, _from_format_0)
    r = record()
    old = {"format": 0, "lineage": LINEAGE, "serial": 7, "records": [r.to_dict()]}
    store.path.parent.mkdir()
    store.path.write_text(json.dumps(old), encoding="utf-8")
    state = store.load()
    assert state == State(lineage=LINEAGE, serial=7, records={r.address: r})
    assert json.loads(store.path.read_text(encoding="utf-8")) == old  # load never writes
    store.save(state)
    assert json.loads(store.path.read_text(encoding="utf-8"))["format"] == FORMAT
    assert json.loads(store.backup_path.read_text(encoding="utf-8")) == old


def test_failed_migration_is_a_state_error(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(state_module.MIGRATIONS, 0, _from_format_0)
    store.path.parent.mkdir()
    store.path.write_text('{"format": 0, "lineage": "x", "serial": 1}', encoding="utf-8")
    with pytest.raises(StateError, match="cannot be migrated from format 0"):
        store.load()


def test_save_refused_after_failed_load(store: StateStore) -> None:
    state = saved(store)
    good = store.path.read_bytes()
    store.path.write_bytes(b'{"format": 1,')
    broken = store.path.read_bytes()
    with pytest.raises(StateError):
        store.load()
    with pytest.raises(StateError, match="could not be read, so it will not be overwritten"):
        store.save(state)
    with pytest.raises(StateError, match="will not be overwritten"):
        commit(store, state, events.record(record()))
    assert store.path.read_bytes() == broken
    assert not store.journal_path.exists()
    # Once the user restores a good file, a successful load lifts the ban.
    store.path.write_bytes(good)
    store.save(store.load())


# -- journal -------------------------------------------------------------------------------


def test_a_record_event_settles_only_its_own_pending_create(store: StateStore) -> None:
    state = store.load()
    old = record(record_id="rec-old", generation=0)
    commit(store, state, events.record(old))
    commit(store, state, events.pending(pending(generation=1)))
    # the old record changes status while the replace is in flight: the intent stays
    commit(store, state, events.record(old._replace(status="done")))
    assert "laptop@alice01" in state.pending
    commit(store, state, events.record(record(record_id="rec-new", generation=1)))
    assert state.pending == {}
    assert store.load() == state


def journal_lines(store: StateStore) -> list[dict[str, object]]:
    text = store.journal_path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_journal_events_apply_live_and_on_replay(store: StateStore) -> None:
    state = store.load()
    store.save(state)
    old = record(record_id="rec-old", generation=0)
    commit(store, state, events.record(old))
    new_pending = pending(generation=1)
    commit(store, state, events.retire(old))
    commit(store, state, events.pending(new_pending))
    new = record(record_id="rec-new", generation=1)
    commit(store, state, events.record(new))
    commit(store, state, events.retired("rec-old"))
    commit(store, state, events.record(record(key="badge", record_id="rec-b")))
    commit(store, state, events.forget("badge@alice01"))
    commit(store, state, {"op": "generation", "address": "badge@alice01", "value": 3})
    commit(store, state, events.pending(pending(key="desk", generation=0)))
    commit(store, state, events.abandon("desk@alice01"))
    assert state == State(
        lineage=state.lineage,
        serial=1,
        records={"laptop@alice01": new},
        generations={"laptop@alice01": 1, "badge@alice01": 3, "desk@alice01": 0},
    )
    assert store.path.stat().st_size > 0 and json.loads(store.path.read_text())["records"] == {}
    assert StateStore(store.path).load() == state


def test_journal_file_format(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.retired("rec-0"))
    header, event = journal_lines(store)
    assert header == {"op": "begin", "format": 1, "lineage": LINEAGE, "serial": 1}
    assert event == {"op": "retired", "record_id": "rec-0"}


def test_intermediate_states_are_replayed(store: StateStore) -> None:
    # A crash after any acknowledged append: the next load sees exactly what was written.
    state = store.load()
    steps: list[Callable[[], None]] = [
        lambda: commit(store, state, events.pending(pending())),
        lambda: commit(store, state, events.record(record())),
        lambda: commit(store, state, events.retire(record())),
        lambda: commit(store, state, events.retired("rec-1")),
    ]
    for step in steps:
        step()
        assert StateStore(store.path).load() == state


def test_torn_last_line_is_ignored_then_cut(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.forget("laptop@alice01"))
    acknowledged = StateStore(store.path).load()
    line = json.dumps({"op": "record", "address": "x@y", "record": record().to_dict()})
    with store.journal_path.open("a", encoding="utf-8") as journal:
        journal.write(line[:40])
    resumed = StateStore(store.path)
    state = resumed.load()
    assert state == acknowledged
    # The next append must not glue its line onto the torn one.
    commit(resumed, state, {"op": "generation", "address": "laptop@alice01", "value": 5})
    assert [e["op"] for e in journal_lines(store)] == ["begin", "forget", "generation"]
    assert StateStore(store.path).load() == state


def test_resumed_run_extends_an_intact_journal(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.forget("laptop@alice01"))
    before = store.journal_path.read_bytes()
    resumed = StateStore(store.path)
    state = resumed.load()
    commit(resumed, state, events.retired("rec-0"))
    assert store.journal_path.read_bytes().startswith(before)
    assert [e["op"] for e in journal_lines(store)] == ["begin", "forget", "retired"]
    assert StateStore(store.path).load() == state


def test_garbled_last_line_is_ignored(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.forget("laptop@alice01"))
    with store.journal_path.open("ab") as journal:
        journal.write(b"\x00\x00\x00\n")
    assert StateStore(store.path).load() == state


def test_torn_header_means_empty_journal(store: StateStore) -> None:
    state = saved(store)
    store.journal_path.write_bytes(b'{"op": "begin", "lin')
    assert StateStore(store.path).load() == state


def test_damage_before_the_last_line_is_an_error(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.forget("laptop@alice01"))
    commit(store, state, events.retired("rec-0"))
    lines = store.journal_path.read_bytes().split(b"\n")
    lines[1] = b"garbage"
    store.journal_path.write_bytes(b"\n".join(lines))
    with pytest.raises(StateError, match=r"tasks\.state\.json\.journal is damaged at line 2"):
        StateStore(store.path).load()


def test_save_folds_and_removes_the_journal(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.forget("laptop@alice01"))
    assert store.journal_path.exists()
    resumed = StateStore(store.path)
    folded = resumed.load()
    resumed.save(folded)
    assert not store.journal_path.exists()
    assert folded.serial == 2
    assert StateStore(store.path).load() == folded
    # Appends after a save start a new journal on top of the new serial.
    commit(resumed, folded, events.retired("rec-0"))
    assert journal_lines(resumed)[0]["serial"] == 2
    assert StateStore(store.path).load() == folded


def test_journal_left_by_a_save_that_stopped_is_skipped(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = saved(store)
    commit(store, state, events.retired("rec-0"))
    commit(store, state, {"op": "generation", "address": "laptop@alice01", "value": 9})
    real_unlink = Path.unlink

    def die_before_unlink(path: Path, missing_ok: bool = False) -> None:
        if path == store.journal_path:
            raise KeyboardInterrupt
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", die_before_unlink)
    with pytest.raises(KeyboardInterrupt):
        store.save(state)
    monkeypatch.undo()
    assert store.journal_path.exists()
    resumed = StateStore(store.path)
    assert resumed.load() == state
    # The stale journal is replaced, not extended, by the next append.
    commit(resumed, state, events.forget("laptop@alice01"))
    assert [e["op"] for e in journal_lines(store)] == ["begin", "forget"]
    assert StateStore(store.path).load() == state


def test_journal_before_first_save_keeps_its_lineage(store: StateStore) -> None:
    state = store.load()
    commit(store, state, events.pending(pending()))
    assert not store.exists()
    resumed = StateStore(store.path).load()
    assert resumed == state
    assert resumed.lineage == state.lineage  # biz_ids already sent depend on it


def test_journal_of_another_lineage_is_refused(store: StateStore) -> None:
    saved(store)
    other = State(lineage="another")
    store.journal_path.write_text(
        json.dumps({"op": "begin", "format": 1, "lineage": other.lineage, "serial": 1}) + "\n"
    )
    with pytest.raises(StateError, match="belongs to another state"):
        StateStore(store.path).load()


def test_journal_newer_than_state_is_refused(store: StateStore) -> None:
    state = saved(store)
    store.save(state)
    commit(store, state, events.retired("rec-0"))
    os.replace(store.backup_path, store.path)  # someone put the older file back
    with pytest.raises(StateError, match="extends serial 2, but .* is at serial 1"):
        StateStore(store.path).load()


def test_journal_without_its_state_file_is_refused(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.retired("rec-0"))
    store.path.unlink()
    with pytest.raises(StateError, match="state file that is missing"):
        StateStore(store.path).load()


def test_journal_of_a_newer_format_is_refused(store: StateStore) -> None:
    saved(store)
    header = {"op": "begin", "format": 2, "lineage": LINEAGE, "serial": 1}
    store.journal_path.write_text(json.dumps(header) + "\n{}\n")
    with pytest.raises(StateError, match="newer dingsync"):
        StateStore(store.path).load()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_journal_that_is_no_regular_file_is_refused_unread(store: StateStore) -> None:
    saved(store)
    store.journal_path.symlink_to("/dev/zero")  # read whole, it would exhaust the memory
    with pytest.raises(StateError, match=r"\.journal is not a regular file"):
        StateStore(store.path).load()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_journal_that_is_a_fifo_is_refused_without_waiting(store: StateStore) -> None:
    saved(store)
    os.mkfifo(store.journal_path)  # opening it for reading would wait for a writer
    with pytest.raises(StateError, match="not a regular file"):
        StateStore(store.path).load()


def test_a_journal_larger_than_any_run_writes_is_refused(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = saved(store)
    commit(store, state, {"op": "generation", "address": "a@u", "value": 5})
    size = store.journal_path.stat().st_size
    monkeypatch.setattr(journal_module, "JOURNAL_LIMIT", size)
    assert StateStore(store.path).load().generations["a@u"] == 5  # at the bound: read
    monkeypatch.setattr(journal_module, "JOURNAL_LIMIT", size - 1)
    with pytest.raises(StateError, match=r"\.journal is larger than .* move it away"):
        StateStore(store.path).load()


# Writes forever: a journal event per step and a full save every 7 steps, printing each
# step once it is durable. The child keeps writing while the parent reads, so the kill
# lands at a different moment of the write cycle on each run.
WRITER = """
import sys
from dingsync.events import apply_event
from dingsync.state import StateStore

def commit(store, state, event):
    store.append(event)
    apply_event(state, event)

store = StateStore(sys.argv[1])
state = store.load()
step = 0
while True:
    step += 1
    if step % 7:
        commit(store, state, {"op": "generation", "address": f"a{step}@u", "value": step})
    else:
        state.generations[f"a{step}@u"] = step
        store.save(state)
    print(step, flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("acks", [1, 7, 8, 90])
def test_kill_at_any_moment_loses_no_acknowledged_write(store: StateStore, acks: int) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store.path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        for _ in range(acks):
            acknowledged = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        # The child went on writing while the parent read: its last printed step is the
        # last one acknowledged, whatever the pipe still held.
        acknowledged = max([acknowledged, *map(int, child.stdout.read().split())])
    state = StateStore(store.path).load()
    for step in range(1, acknowledged + 1):
        assert state.generations[f"a{step}@u"] == step
    assert len(state.generations) - acknowledged in (0, 1)  # at most the unacknowledged step


def test_save_without_load_refuses_to_drop_a_journal(store: StateStore) -> None:
    state = saved(store)
    commit(store, state, events.retired("rec-0"))
    with pytest.raises(StateError, match="load the state before saving"):
        StateStore(store.path).save(state)


def test_append_needs_a_loaded_state(store: StateStore) -> None:
    with pytest.raises(RuntimeError):
        store.append({"op": "retired", "record_id": "r"})


@pytest.mark.parametrize(
    "event",
    [
        {"op": "begin", "lineage": "x", "serial": 0},
        {"op": "delete"},
        {"op": "record", "address": "a@b", "record": {"key": "a"}},
    ],
)
def test_malformed_events_are_never_written(store: StateStore, event: dict[str, object]) -> None:
    store.load()
    with pytest.raises((ValueError, KeyError)):
        store.append(event)
    assert not store.journal_path.exists()


def test_retire_keeps_a_successor_in_place() -> None:
    old, new = record(record_id="rec-old"), record(record_id="rec-new", generation=1)
    state = State(lineage=LINEAGE, records={new.address: new})
    apply_event(state, {"op": "retire", "record_id": old.record_id, "record": old.to_dict()})
    assert state.records == {new.address: new} and state.retiring == {old.record_id: old}


def test_generations_never_go_down() -> None:
    state = State(lineage=LINEAGE, generations={"laptop@alice01": 4})
    apply_event(state, {"op": "generation", "address": "laptop@alice01", "value": 2})
    apply_event(
        state, {"op": "pending", "address": "laptop@alice01", "pending": pending().to_dict()}
    )
    assert state.generations == {"laptop@alice01": 4}


# -- property: any state survives a save and a load ----------------------------------------

texts = st.text(min_size=1, max_size=12)
optional_texts = st.none() | texts
contents = st.builds(
    Content,
    title=texts,
    url=texts,
    form=st.lists(st.tuples(texts, st.text(max_size=12)), min_size=1, max_size=3).map(tuple),
    pc_url=optional_texts,
    source_name=optional_texts,
    originator_userid=optional_texts,
    pc_open_type=st.none() | st.sampled_from([2, 4]),
)
generations = st.integers(min_value=0, max_value=2**40)
times = st.integers(min_value=0, max_value=2**50)
state_records = st.builds(
    StateRecord,
    key=texts,
    userid=texts,
    record_id=texts,
    biz_id=texts,
    generation=generations,
    content=contents,
    fingerprint=texts,
    status=st.sampled_from(["open", "done"]),
    create_time_ms=times,
    created_at=texts,
    updated_at=texts,
    completed_by=st.none() | st.sampled_from(["dingsync", "assignee"]),
    missing=st.booleans(),
)
pending_creates = st.builds(
    PendingCreate,
    key=texts,
    userid=texts,
    biz_id=texts,
    generation=generations,
    content=contents,
    fingerprint=texts,
    create_time_ms=times,
    sent_at=texts,
    replaces=optional_texts,
)
states = st.builds(
    State,
    lineage=st.uuids().map(str),
    serial=st.integers(min_value=0, max_value=10**6),
    records=st.lists(state_records, max_size=3).map(lambda rs: {r.address: r for r in rs}),
    pending=st.lists(pending_creates, max_size=3).map(lambda ps: {p.address: p for p in ps}),
    retiring=st.lists(state_records, max_size=2).map(lambda rs: {r.record_id: r for r in rs}),
    generations=st.dictionaries(texts, generations, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(states)
def test_any_state_survives_save_and_load(state: State) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = StateStore(Path(folder) / "s.state.json")
        serial = state.serial
        store.save(state)
        assert state.serial == serial + 1
        assert StateStore(store.path).load() == state


def test_the_file_is_written_in_batches_that_join_to_the_whole_text() -> None:
    state = sample_state()
    whole = "".join(state_module.state_pieces(state)).encode("utf-8")
    batches = list(state_module._utf8_batches(state_module.state_pieces(state), size=64))
    assert len(batches) > 5
    assert b"".join(batches) == whole


def test_the_remote_is_saved_without_the_app_key(tmp_path: Path) -> None:
    from dingsync.model import Remote
    from dingsync.model import app_key_fingerprint

    store = StateStore(tmp_path / "s.state.json")
    state = store.load()
    remote = Remote("workrecord", "https://oapi.dingtalk.com", app_key_fingerprint("dingabc123"))
    commit(store, state, events.remote(remote))
    store.save(state)
    text = store.path.read_text(encoding="utf-8")
    assert "dingabc123" not in text
    assert StateStore(store.path).load().remote == remote


def test_a_state_without_a_remote_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.state.json"
    path.write_text(
        '{"format": 1, "lineage": "l", "serial": 3, "dingsync_version": "0.1.0", '
        '"records": {}, "pending": {}, "retiring": {}, "generations": {}}\n',
        encoding="utf-8",
    )
    state = StateStore(path).load()
    assert state.remote is None and state.serial == 3


def test_a_save_never_overwrites_a_file_another_writer_changed(tmp_path: Path) -> None:
    path = tmp_path / "s.state.json"
    first = StateStore(path)
    first.save(first.load())
    mine, theirs = StateStore(path), StateStore(path)
    my_state, their_state = mine.load(), theirs.load()
    their_state.generations["a@b"] = 4
    theirs.save(their_state)
    written = path.read_bytes()
    my_state.generations["c@d"] = 1
    with pytest.raises(StateError, match="changed by another writer"):
        mine.save(my_state)
    assert path.read_bytes() == written
    unsaved = json.loads(path.with_name(path.name + ".unsaved").read_text(encoding="utf-8"))
    assert unsaved["generations"] == {"c@d": 1}
