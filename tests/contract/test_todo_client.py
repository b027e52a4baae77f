"""The v1.0 to-do client over real HTTP: against the emulator, and against a small scripted
server for the answers the emulator never gives (missing permission, IP allow-list, flow
control, a refused page token). Section numbers (§) refer to docs/dingtalk-todo.md.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from dingsync.emulator import Emulator
from dingsync.errors import AuthError
from dingsync.errors import CredentialsError
from dingsync.errors import DuplicateError
from dingsync.errors import EndpointError
from dingsync.errors import InvalidUserError
from dingsync.errors import IpBlockedError
from dingsync.errors import PermissionDeniedError
from dingsync.errors import QuotaExceededError
from dingsync.errors import RateLimitError
from dingsync.errors import TaskExistsError
from dingsync.errors import TransientApiError
from dingsync.errors import TransportError
from dingsync.todo_client import ACCESS_TOKEN
from dingsync.todo_client import CREATE
from dingsync.todo_client import DELETE
from dingsync.todo_client import GET
from dingsync.todo_client import GET_BY_SOURCE
from dingsync.todo_client import QUERY
from dingsync.todo_client import UPDATE
from dingsync.todo_client import USER_GET
from dingsync.todo_client import TodoClient
from dingsync.todo_client import todo_endpoints

from .conftest import APP_SECRET
from .conftest import StartEmulator
from .conftest import TodoClientFactory
from .conftest import Transcript

URL = "https://intranet.example.com/it/laptop"
DUE = 1_796_140_799_000  # 2026-12-01 23:59:59 in China, in ms
NOW = 1_796_090_400.25  # 2026-12-01 10:00:00.25 in China


def new_todo(
    client: TodoClient,
    creator: str,
    n: int,
    source_id: str | None = None,
    executor_ids: Sequence[str] = (),
    **fields: Any,
) -> str:
    """Create to-do number ``n`` (its own subject and sourceId); return its taskId.
    ``fields`` go into the body as named (``dueTime``, ``priority``...)."""
    body: dict[str, Any] = {"subject": f"待办 {n}", "detailUrl": {"appUrl": URL, "pcUrl": URL}}
    body.update(fields)
    return client.create(
        creator, f"src-{n}" if source_id is None else source_id, body, executor_ids
    )


@pytest.fixture
def client(make_todo_client: TodoClientFactory) -> TodoClient:
    return make_todo_client()


@pytest.fixture
def creator(emu: Emulator) -> str:
    return emu.union_id("hr-bot01")


# -- the token (docs/dingtalk-todo.md §2) ---------------------------------------------------


def test_one_token_serves_every_call_and_goes_in_the_header(
    emu: Emulator, client: TodoClient, creator: str, transcript: Transcript
) -> None:
    task_id = new_todo(client, creator, 1)
    assert client.get(creator, task_id) is not None
    assert client.union_id("alice01") == emu.union_id("alice01")
    assert client.call_counts[ACCESS_TOKEN] == 1
    assert emu.call_counts()["oauth2/accessToken"] == 1
    assert emu.call_counts()["gettoken"] == 0  # user/get took the v1.0 token too
    assert len(emu.issued_tokens()) == 1
    header = re.escape(" [x-acs-dingtalk-access-token: ***] -> 200 ok")
    assert re.search(
        rf"POST {re.escape(emu.url)}/v1.0/todo/users/\S+/tasks\S*{header}",
        "\n".join(transcript.lines),
    )


def test_token_is_renewed_ahead_of_its_expiry(
    emu: Emulator, make_todo_client: TodoClientFactory, creator: str
) -> None:
    now = [1000.0]
    client = make_todo_client(clock=lambda: now[0])
    list(client.list_created(creator, False))
    now[0] += 7200 - 600 - 1  # just outside the last ten minutes
    list(client.list_created(creator, False))
    assert client.call_counts[ACCESS_TOKEN] == 1
    now[0] += 2  # inside them: renewed before use (§2.2)
    list(client.list_created(creator, False))
    assert client.call_counts[ACCESS_TOKEN] == 2
    assert client.call_counts[QUERY] == 3  # no call was refused for its token
    assert len(emu.issued_tokens()) == 1  # a renewal within the lifetime keeps the token


def test_token_expired_on_the_server_is_renewed_once(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    new_todo(client, creator, 1)
    emu.advance_clock(7200 + 60)
    assert len(list(client.list_created(creator, False))) == 1
    assert client.call_counts[ACCESS_TOKEN] == 2
    assert client.call_counts[QUERY] == 2  # refused once, then sent with the new token
    assert len(emu.issued_tokens()) == 2


def test_revoked_token_is_renewed_once_and_the_create_sent_again(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    new_todo(client, creator, 1)
    emu.revoke_tokens()
    task_id = new_todo(client, creator, 2)  # a refused token means nothing was created
    assert [t["id"] for t in emu.todos()][-1] == task_id
    assert len(emu.todos()) == 2
    assert client.call_counts[ACCESS_TOKEN] == 2
    assert client.call_counts[CREATE] == 3


def test_token_refused_twice_is_a_fatal_auth_error(
    start_emulator: StartEmulator, make_todo_client: TodoClientFactory, transcript: Transcript
) -> None:
    ticks = iter(range(0, 10**9, 3 * 3600))  # each token has expired when it is checked
    emu = start_emulator(clock=lambda: 1.7e9 + next(ticks))
    client = make_todo_client(emu.url)
    with pytest.raises(AuthError) as caught:
        list(client.list_created(emu.union_id("hr-bot01"), False))
    transcript.texts.append(str(caught.value))
    assert caught.value.fatal
    assert caught.value.reason == "InvalidAuthentication"
    assert "freshly fetched" in str(caught.value)
    assert client.call_counts[ACCESS_TOKEN] == 2
    assert client.call_counts[QUERY] == 2


def test_wrong_secret_is_a_credentials_error(
    make_todo_client: TodoClientFactory, transcript: Transcript, creator: str
) -> None:
    client = make_todo_client(app_secret="not-the-secret-at-all")
    with pytest.raises(CredentialsError) as caught:
        new_todo(client, creator, 1)
    transcript.texts.append(str(caught.value))
    assert str(caught.value) == (
        "DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET: "
        "invalidClientIdOrSecret 无效的clientId或者clientSecret"
    )
    assert client.call_counts[CREATE] == 0


# -- userid -> unionId (§3) -----------------------------------------------------------------


def test_union_id_is_resolved_once(emu: Emulator, client: TodoClient) -> None:
    assert client.union_id("alice01") == emu.union_id("alice01")
    assert client.union_id("alice01") == emu.union_id("alice01")
    assert client.union_id("bob02") == emu.union_id("bob02")
    assert client.call_counts[USER_GET] == 2
    assert emu.call_counts()["v2/user/get"] == 2


def test_unknown_userid_says_what_a_userid_is(
    emu: Emulator, client: TodoClient, transcript: Transcript
) -> None:
    emu.set_users({"alice01"})
    with pytest.raises(InvalidUserError) as caught:
        client.union_id("mallory")
    message = str(caught.value)
    transcript.texts.append(message)
    assert not caught.value.fatal  # that userid's records fail, the rest go on
    assert caught.value.reason == "33012"
    assert "'mallory' is not a userid of this organisation" in message
    assert "管理后台 → 通讯录 → 成员管理" in message
    assert "not the 工号, the phone number or the unionId" in message
    assert client.call_counts[USER_GET] == 1  # not retried
    assert client.union_id("alice01") == emu.union_id("alice01")


# -- create, get, update, delete (§5–§9) ----------------------------------------------------


def test_create_sends_every_field_by_its_wire_name(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    alice = emu.union_id("alice01")
    task_id = client.create(
        creator,
        "dingsync-onboarding:laptop@alice01:1",
        {
            "subject": "领取笔记本电脑",
            "description": "到三楼 IT 服务台领取并签收",
            "detailUrl": {"appUrl": URL, "pcUrl": URL + "?pc=1"},
            "dueTime": DUE,
            "priority": 30,
            "isOnlyShowExecutor": True,
            "notifyConfigs": {"dingNotify": "1"},
        },
        [alice],
    )
    [stored] = emu.todos()
    assert stored["id"] == task_id
    assert stored["subject"] == "领取笔记本电脑"
    assert stored["description"] == "到三楼 IT 服务台领取并签收"
    assert stored["detailUrl"] == {"appUrl": URL, "pcUrl": URL + "?pc=1"}
    assert stored["sourceId"] == "dingsync-onboarding:laptop@alice01:1"
    assert stored["dueTime"] == DUE
    assert stored["priority"] == 30
    assert stored["executorIds"] == [alice]
    assert stored["creatorId"] == creator
    assert stored["isOnlyShowExecutor"] is True
    assert stored["dingNotify"] == "1"
    assert stored["done"] is False


def test_create_leaves_unset_fields_out_and_defaults_the_pc_url(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    new_todo(client, creator, 1)
    [stored] = emu.todos()
    assert stored["detailUrl"] == {"appUrl": URL, "pcUrl": URL}
    for name in ("description", "dueTime", "priority", "dingNotify"):
        assert stored[name] is None, name
    assert stored["executorIds"] == [] and stored["isOnlyShowExecutor"] is False


def test_create_needs_a_source_id(client: TodoClient, creator: str) -> None:
    with pytest.raises(ValueError, match="sourceId"):
        new_todo(client, creator, 1, source_id="")
    assert client.call_counts[CREATE] == 0


def test_get_and_get_by_source_id_read_what_is_stored(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    alice = emu.union_id("alice01")
    task_id = new_todo(client, creator, 1, executor_ids=[alice], dueTime=DUE, priority=40)
    [stored] = emu.todos()

    task = client.get(creator, task_id)
    assert task is not None
    assert task.task_id == task_id
    assert task.subject == "待办 1"
    assert task.due_time_ms == DUE and task.priority == 40
    assert task.executor_ids == (alice,)
    assert (task.app_url, task.pc_url) == (URL, URL)
    assert task.source_id == "src-1" and task.creator_id == creator
    assert task.biz_tag == stored["bizTag"]
    assert task.created_ms == stored["createdTime"] and task.done is False
    assert client.get_by_source_id(creator, "src-1") == task
    assert client.get(creator, "OPJ" + "0" * 24) is None
    assert client.get_by_source_id(creator, "src-never") is None
    assert client.call_counts[GET] == 2 and client.call_counts[GET_BY_SOURCE] == 2


def test_source_id_with_path_characters_is_looked_up_encoded(
    client: TodoClient, creator: str
) -> None:
    task_id = new_todo(client, creator, 1, source_id="dingsync-ns:a b?c#d")
    found = client.get_by_source_id(creator, "dingsync-ns:a b?c#d")
    assert found is not None and found.task_id == task_id


def test_update_changes_only_what_it_is_given(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    task_id = new_todo(client, creator, 1, description="说明", dueTime=DUE)
    assert client.update(creator, task_id, {"subject": "新标题"}) is True
    [stored] = emu.todos()
    assert stored["subject"] == "新标题"
    assert stored["description"] == "说明" and stored["dueTime"] == DUE
    assert client.update(creator, task_id, {"description": "新说明", "dueTime": DUE + 1}) is True
    [stored] = emu.todos()
    assert (stored["subject"], stored["description"]) == ("新标题", "新说明")
    assert stored["dueTime"] == DUE + 1
    with pytest.raises(ValueError, match="at least one"):
        client.update(creator, task_id, {})


def test_done_completes_and_reopens(emu: Emulator, client: TodoClient, creator: str) -> None:
    alice = emu.union_id("alice01")
    task_id = new_todo(client, creator, 1, executor_ids=[alice])
    assert client.update(creator, task_id, {"done": True}) is True
    [stored] = emu.todos()
    assert stored["done"] is True and stored["finishTime"] is not None
    task = client.get(creator, task_id)
    assert task is not None and task.done and task.finish_ms == stored["finishTime"]
    assert client.update(creator, task_id, {"done": False}) is True
    [stored] = emu.todos()
    assert stored["done"] is False and stored["executorStatus"] == {alice: False}


def test_delete_then_everything_says_it_is_gone(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    task_id = new_todo(client, creator, 1)
    assert client.delete(creator, task_id) is True
    assert emu.todos() == []
    assert client.delete(creator, task_id) is False
    assert client.update(creator, task_id, {"done": True}) is False
    assert client.get(creator, task_id) is None
    # "task not exist" is an answer, not a failure: nothing was retried.
    assert client.call_counts[DELETE] == 2 and client.call_counts[UPDATE] == 1


def test_used_source_id_is_task_exists_with_the_existing_id(
    emu: Emulator, client: TodoClient, creator: str, transcript: Transcript
) -> None:
    first = new_todo(client, creator, 1)
    with pytest.raises(TaskExistsError) as caught:
        new_todo(client, creator, 2, source_id="src-1")
    transcript.texts.append(str(caught.value))
    assert isinstance(caught.value, DuplicateError)
    assert caught.value.task_id == first
    assert caught.value.reason == "todo.taskCreate.paramError"
    assert not caught.value.fatal
    assert [t["id"] for t in emu.todos()] == [first]
    assert client.call_counts[CREATE] == 2
    # The emulator keeps a deleted to-do's sourceId taken (its strict reading of §5.4).
    client.delete(creator, first)
    with pytest.raises(TaskExistsError) as again:
        new_todo(client, creator, 3, source_id="src-1")
    assert again.value.task_id == first


def test_lock_error_is_retried_with_the_same_source_id(
    emu: Emulator, make_todo_client: TodoClientFactory, creator: str
) -> None:
    emu.set_faults(rate=0.5, kinds=["lockerror"], seed=5)
    client = make_todo_client(max_retries=8)
    ids = [new_todo(client, creator, n) for n in range(8)]
    assert emu.fault_counts()["lockerror"] > 0
    assert client.call_counts[CREATE] == 8 + emu.fault_counts()["lockerror"]
    assert [(t["id"], t["sourceId"]) for t in emu.todos()] == [
        (task_id, f"src-{n}") for n, task_id in enumerate(ids)
    ]


def test_lock_error_that_persists_is_transient_and_creates_nothing(
    emu: Emulator, make_todo_client: TodoClientFactory, creator: str
) -> None:
    emu.set_faults(rate=1.0, kinds=["lockerror"])
    client = make_todo_client(max_retries=8)
    with pytest.raises(TransientApiError) as caught:
        new_todo(client, creator, 1)
    assert caught.value.reason == "todo.taskCreate.lockError"
    assert client.call_counts[CREATE] == 6  # the lock error's own limit: 5 retries
    assert emu.todos() == []


# -- list (§10) -----------------------------------------------------------------------------


def test_list_pages_lazily_through_the_creators_to_dos(
    start_emulator: StartEmulator, make_todo_client: TodoClientFactory
) -> None:
    emu = start_emulator(todo_page_size=3)
    client = make_todo_client(emu.url)
    creator, other = emu.union_id("hr-bot01"), emu.union_id("manager7078")
    ids = {new_todo(client, creator, n) for n in range(7)}
    new_todo(client, other, 99)  # another creator's to-do stays out
    done_id = new_todo(client, creator, 100)
    client.update(creator, done_id, {"done": True})

    cards = client.list_created(creator, False)
    assert client.call_counts[QUERY] == 0
    first = next(cards)
    assert client.call_counts[QUERY] == 1
    rest = list(cards)
    assert {c.task_id for c in [first, *rest]} == ids
    assert client.call_counts[QUERY] == 3  # 3 + 3 + 1
    assert all(not c.done and c.creator_id == creator for c in [first, *rest])
    assert {c.source_id for c in rest} | {first.source_id} == {f"src-{n}" for n in range(7)}

    [done] = client.list_created(creator, True)
    assert done.task_id == done_id and done.done
    assert emu.call_counts()["todo/orgTasksQuery"] == 4


# -- limits and quota (§12) -----------------------------------------------------------------


def test_rate_limit_slows_the_client_down_and_is_retried(
    start_emulator: StartEmulator, make_todo_client: TodoClientFactory
) -> None:
    emu = start_emulator(qps=2, clock=lambda: NOW)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # waiting moves the emulator's time on
        sleeps.append(seconds)
        emu.advance_clock(seconds)

    client = make_todo_client(emu.url, max_qps=20, sleep=sleep)
    creator = emu.union_id("hr-bot01")
    for _ in range(5):
        assert list(client.list_created(creator, False)) == []
    assert client.call_counts[QUERY] > 5  # some were refused with 403 and sent again
    # Each refusal paused the API for its window (tests/unit/test_ratelimit.py covers when
    # answers that keep coming also lower the rate).
    assert max(sleeps) >= 1.0  # at least the one-second window


def test_rate_limit_on_every_attempt_escapes_as_rate_limit_error(
    emu: Emulator, make_todo_client: TodoClientFactory, creator: str
) -> None:
    emu.set_faults(rate=1.0, kinds=["qps-global"])
    sleeps: list[float] = []
    client = make_todo_client(max_retries=2, sleep=sleeps.append)
    with pytest.raises(RateLimitError) as caught:
        new_todo(client, creator, 1)
    assert caught.value.reason == "Forbidden.AccessDenied.QpsLimitForApi"
    assert client.call_counts[CREATE] == 3  # a refusal: even a create may go again
    # Each retry waits at least the 1 s window; the unpaced limiter then waits out what
    # is left of the server's pause (all of it: the fake sleep does not move its clock).
    backoffs, pauses = sleeps[0::2], sleeps[1::2]
    assert len(backoffs) == 2 and all(s >= 1.0 for s in backoffs)
    assert len(pauses) == 2 and all(s > 0.5 for s in pauses)
    assert emu.todos() == []


def test_monthly_quota_is_fatal_and_not_retried(
    start_emulator: StartEmulator, make_todo_client: TodoClientFactory
) -> None:
    emu = start_emulator(monthly_quota=1)
    client = make_todo_client(emu.url)
    creator = emu.union_id("hr-bot01")
    new_todo(client, creator, 1)
    with pytest.raises(QuotaExceededError) as caught:
        list(client.list_created(creator, False))
    assert caught.value.fatal
    assert caught.value.reason == "Forbidden.AccessDenied.ApiCountLimitForOrg"
    assert "monthly DingTalk API quota is used up" in str(caught.value)
    assert "您的企业本月api调用量已超过限制" in str(caught.value)
    assert client.call_counts[QUERY] == 1
    assert client.union_id("bob02") == emu.union_id("bob02")  # contacts calls are free


# -- faults (§11.3) -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["http500", "errcode-1", "reset", "lost_ack"])
def test_reads_updates_and_deletes_survive_faults(
    emu: Emulator, make_todo_client: TodoClientFactory, creator: str, kind: str
) -> None:
    client = make_todo_client(max_retries=8)
    ids = [new_todo(client, creator, n) for n in range(4)]
    emu.set_faults(rate=0.5, kinds=[kind], seed=11)
    for _ in range(3):
        assert len(list(client.list_created(creator, False))) == 4
    assert client.get(creator, ids[0]) is not None
    assert client.update(creator, ids[1], {"done": True}) is True  # the same values again: safe
    client.delete(creator, ids[2])  # a lost answer then "task not exist": False is right
    assert sum(emu.fault_counts().values()) > 0
    emu.set_faults(rate=0.0)
    assert {t["id"]: t["done"] for t in emu.todos()} == {ids[0]: False, ids[1]: True, ids[3]: False}


@pytest.mark.parametrize("kind", ["http500", "errcode-1", "reset"])
def test_create_that_may_have_landed_is_never_sent_again(
    emu: Emulator, client: TodoClient, creator: str, transcript: Transcript, kind: str
) -> None:
    client.union_id("alice01")  # the token is in hand: only the create meets the fault
    emu.set_faults(rate=1.0, kinds=[kind])
    with pytest.raises(TransportError) as caught:
        new_todo(client, creator, 1)
    transcript.texts.append(str(caught.value))
    assert caught.value.maybe_committed
    assert "not sent again" in str(caught.value)
    assert client.call_counts[CREATE] == 1
    assert emu.call_counts()["todo/create"] == 1


def test_lost_answer_to_a_create_is_settled_by_source_id(
    emu: Emulator, client: TodoClient, creator: str, transcript: Transcript
) -> None:
    client.union_id("alice01")
    emu.set_faults(rate=1.0, kinds=["lost_ack"])
    with pytest.raises(TransportError) as caught:
        new_todo(client, creator, 1, source_id="dingsync-ns:laptop@alice01:1")
    transcript.texts.append(str(caught.value))
    assert caught.value.maybe_committed
    assert client.call_counts[CREATE] == 1
    [stored] = emu.todos()
    # What the caller then does (§5.9): look it up, or send again with the same sourceId.
    emu.set_faults(rate=0.0)
    found = client.get_by_source_id(creator, "dingsync-ns:laptop@alice01:1")
    assert found is not None and found.task_id == stored["id"]
    with pytest.raises(TaskExistsError) as exists:
        new_todo(client, creator, 1, source_id="dingsync-ns:laptop@alice01:1")
    assert exists.value.task_id == stored["id"]
    assert len(emu.todos()) == 1


def test_ip_block_is_fatal_and_stops_further_calls(
    emu: Emulator, client: TodoClient, creator: str
) -> None:
    client.union_id("alice01")
    emu.set_faults(rate=1.0, kinds=["ipblock"])
    with pytest.raises(IpBlockedError) as caught:
        list(client.list_created(creator, False))
    assert caught.value.fatal
    with pytest.raises(IpBlockedError):
        new_todo(client, creator, 1)
    assert client.call_counts[QUERY] == 1 and client.call_counts[CREATE] == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_not_committed(make_todo_client: TodoClientFactory) -> None:
    client = make_todo_client(f"http://127.0.0.1:{closed_port()}", max_retries=2)
    with pytest.raises(TransportError) as caught:
        client.union_id("alice01")
    assert not caught.value.maybe_committed
    assert "cannot connect" in str(caught.value)
    assert "gave up after 3 attempts" in str(caught.value)
    assert sum(client.call_counts.values()) == 0


# -- answers the emulator never gives: a scripted server ------------------------------------

SCRIPT_TOKEN = "scripted-access-token-4b1d9e"
USER = "unionid0000000000000001"


class Scripted:
    """A tiny stand-in for DingTalk on 127.0.0.1: the token call always succeeds; every
    other path answers from its own list of ``(status, body)``, the last one repeating."""

    def __init__(self, answers: dict[str, list[tuple[int, dict[str, Any]]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, dict[str, Any] | None]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                body = json.loads(raw) if raw else None
                script.seen.append((self.command, path, body))
                if path == "/v1.0/oauth2/accessToken":
                    status, reply = 200, {"accessToken": SCRIPT_TOKEN, "expireIn": 7200}
                else:
                    queue = script.answers[path]
                    status, reply = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(reply, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(make_todo_client: TodoClientFactory) -> Iterator[type[Scripted]]:
    servers: list[Scripted] = []
    make_todo_client.extra_secrets.append(SCRIPT_TOKEN)

    class Started(Scripted):
        def __init__(self, answers: dict[str, list[tuple[int, dict[str, Any]]]]) -> None:
            super().__init__(answers)
            servers.append(self)

    yield Started
    for server in servers:
        server.close()


def v1_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "requestid": "9F2C-REQ", **extra}


TASKS = f"/v1.0/todo/users/{USER}/tasks"
QUERY_PATH = f"/v1.0/todo/users/{USER}/org/tasks/query"
DENIED = "Forbidden.AccessDenied.AccessTokenPermissionDenied"


def test_missing_permission_names_what_to_grant_and_where(
    scripted: type[Scripted], make_todo_client: TodoClientFactory, transcript: Transcript
) -> None:
    write = v1_error(
        DENIED, "没有调用该接口的权限", accessdenieddetail={"requiredScopes": ["Todo.Todo.Write"]}
    )
    server = scripted(
        {
            TASKS: [(403, write)],
            QUERY_PATH: [(403, v1_error(DENIED, "没有调用该接口的权限"))],
            "/topapi/v2/user/get": [
                (200, {"errcode": 88, "sub_code": "60011", "errmsg": "没有调用该接口的权限"})
            ],
        }
    )
    client = make_todo_client(server.url)
    failures: list[tuple[PermissionDeniedError, str]] = []
    with pytest.raises(PermissionDeniedError) as create:
        new_todo(client, USER, 1)
    failures.append((create.value, "Todo.Todo.Write"))
    with pytest.raises(PermissionDeniedError) as listing:
        list(client.list_created(USER, False))
    failures.append((listing.value, "Todo.Todo.Read"))
    with pytest.raises(PermissionDeniedError) as lookup:
        client.union_id("alice01")
    failures.append((lookup.value, "qyapi_get_member"))
    for error, permission in failures:
        transcript.texts.append(str(error))
        assert error.fatal
        assert f"the app lacks the permission {permission}" in str(error)
        assert "开发者后台 → 应用 → 权限管理" in str(error)
    assert "DingTalk names Todo.Todo.Write" in str(create.value)
    assert create.value.reason == DENIED and create.value.request_id == "9F2C-REQ"
    assert client.call_counts[CREATE] == 1 and client.call_counts[QUERY] == 1  # not retried
    assert client.call_counts[USER_GET] == 1


def test_ip_not_in_the_allow_list_says_where_to_add_it(
    scripted: type[Scripted], make_todo_client: TodoClientFactory, transcript: Transcript
) -> None:
    code = "Forbidden.AccessDenied.IpNotInWhiteList"
    server = scripted({QUERY_PATH: [(403, v1_error(code, "ip not in white list"))]})
    client = make_todo_client(server.url)
    with pytest.raises(PermissionDeniedError) as caught:
        list(client.list_created(USER, False))
    transcript.texts.append(str(caught.value))
    assert caught.value.fatal and caught.value.reason == code
    assert "安全设置 → 服务器出口IP" in str(caught.value)
    assert client.call_counts[QUERY] == 1


def test_flow_control_slows_down_and_resends_the_same_source_id(
    scripted: type[Scripted], make_todo_client: TodoClientFactory
) -> None:
    flow = v1_error(
        "todo.taskCreate.flowControlError", "flowControl because of executorId or orgId"
    )
    server = scripted({TASKS: [(400, flow), (400, flow), (200, {"id": "OPJtask1"})]})
    sleeps: list[float] = []
    client = make_todo_client(server.url, max_qps=20, sleep=sleeps.append)
    assert new_todo(client, USER, 1, source_id="dingsync-ns:k@u:3") == "OPJtask1"
    sent = [body for method, path, body in server.seen if path == TASKS]
    assert len(sent) == 3 and all(
        b is not None and b["sourceId"] == "dingsync-ns:k@u:3" for b in sent
    )
    assert [s for s in sleeps if s >= 1.0]  # waited at least the window before each retry


def test_flow_control_that_persists_fails_the_record(
    scripted: type[Scripted], make_todo_client: TodoClientFactory
) -> None:
    flow = v1_error(
        "todo.taskCreate.flowControlError", "flowControl because of executorId or orgId"
    )
    server = scripted({TASKS: [(400, flow)]})
    client = make_todo_client(server.url, max_retries=8, sleep=lambda _s: None)
    with pytest.raises(RateLimitError) as caught:
        new_todo(client, USER, 1)
    assert not caught.value.fatal
    assert client.call_counts[CREATE] == 4  # three retries, then the record fails


def card(n: int) -> dict[str, Any]:
    return {"taskId": f"OPJ{n}", "subject": f"待办 {n}", "isDone": False, "sourceId": f"s{n}"}


def test_refused_page_token_restarts_the_listing_once(
    scripted: type[Scripted], make_todo_client: TodoClientFactory
) -> None:
    bad = v1_error("todo.orgTaskQuery.paramError", "nextToken is invalid")
    first = {"todoCards": [card(1), card(2)], "nextToken": "2"}
    server = scripted(
        {
            QUERY_PATH: [
                (200, first),
                (400, bad),
                (200, first),
                (200, {"todoCards": [card(3)], "nextToken": "3"}),
                (200, {"todoCards": [card(4)], "nextToken": "3"}),  # a token seen before
            ]
        }
    )
    client = make_todo_client(server.url)
    assert [c.task_id for c in client.list_created(USER, False)] == ["OPJ1", "OPJ2", "OPJ3", "OPJ4"]
    bodies = [body for _m, path, body in server.seen if path == QUERY_PATH]
    assert [b.get("nextToken") if b else None for b in bodies] == [None, "2", None, "2", "3"]
    assert all(b is not None and b["roleTypes"] == [["creator"]] for b in bodies)


# -- endpoint and secrets ------------------------------------------------------------------


def test_default_endpoint_splits_the_two_path_families() -> None:
    both = ("https://api.dingtalk.com", "https://oapi.dingtalk.com")
    assert todo_endpoints("https://oapi.dingtalk.com") == both
    assert todo_endpoints("https://api.dingtalk.com/") == both
    assert todo_endpoints("https://gw.example.com/dt/") == ("https://gw.example.com/dt",) * 2
    assert todo_endpoints("http://127.0.0.1:8080") == ("http://127.0.0.1:8080",) * 2
    with pytest.raises(EndpointError, match="loopback"):
        TodoClient("http://api.dingtalk.com", "key", "secret")


def test_repr_and_log_lines_hold_no_secret(
    emu: Emulator, client: TodoClient, creator: str, transcript: Transcript
) -> None:
    client.union_id("alice01")
    new_todo(client, creator, 1)
    base = re.escape(emu.url)
    assert re.fullmatch(
        rf"POST {base}/v1.0/oauth2/accessToken -> 200 ok \(\d+ ms\)", transcript.lines[0]
    )
    assert re.fullmatch(
        rf"POST {base}/topapi/v2/user/get\?access_token=\*\*\* -> 200 errcode=0 \(\d+ ms\)",
        transcript.lines[1],
    )
    assert repr(client) == f"TodoClient(endpoint={emu.url!r}, topapi={emu.url!r})"


def test_no_secret_anywhere_after_every_kind_of_failure(
    emu: Emulator, make_todo_client: TodoClientFactory, creator: str, transcript: Transcript
) -> None:
    client = make_todo_client(max_retries=1, sleep=lambda _s: None)
    new_todo(client, creator, 0)
    failures: list[Exception] = []
    for kind in ("http500", "reset", "lost_ack", "errcode-1", "qps-global", "lockerror"):
        emu.set_faults(rate=1.0, kinds=[kind])
        calls = (
            lambda n: new_todo(client, creator, n),
            lambda _n: list(client.list_created(creator, False)),
        )
        for call in calls:
            try:
                call(len(failures) + 10)
            except (TransportError, TransientApiError, RateLimitError) as exc:
                failures.append(exc)
    emu.set_faults(rate=0.0)
    emu.revoke_tokens()
    new_todo(client, creator, 2)
    with pytest.raises(TaskExistsError) as exists:
        new_todo(client, creator, 2)
    failures.append(exists.value)
    with pytest.raises(CredentialsError) as bad:
        make_todo_client(app_secret=APP_SECRET + "x").union_id("alice01")
    failures.append(bad.value)

    assert len(failures) >= 12
    transcript.texts.extend(str(f) for f in failures)
    transcript.texts.extend(repr(f) for f in failures)
    assert len(transcript.lines) > 20
    # The fixture then scans every line and text for the key, the secret and all tokens.
