"""A built-in fake DingTalk over HTTP: the legacy ``topapi/workrecord`` calls and, on the
same port, the v1.0 to-do API (``/v1.0/oauth2/accessToken``, ``/v1.0/todo/...``).

Used by ``dingsync apply --sandbox`` (in-process), by the tests and benchmarks (over real
HTTP on 127.0.0.1) and by ``dingsync emulator`` (``serve``). It reproduces the behaviour
written down in docs/dingtalk-workrecord.md §10 (the v1.0 side: docs/dingtalk-todo.md §13)::

    from dingsync.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(qps=0, users={"alice01"})) as emu:
        base_url = emu.url          # http://127.0.0.1:<port>
        ...
        emu.records()               # what DingTalk now holds

DingTalk's side
    ``GET /gettoken?appkey=&appsecret=``; ``POST /topapi/workrecord/add``, ``/update``,
    ``/getbyuserid``, and with ``serve_workrecord_get`` also ``/topapi/workrecord/get``.
    ``/topapi/v2/user/get`` maps a userid to its unionId. Other ``/topapi/...`` names and
    other HTTP methods get errcode 22; paths outside ``/topapi/`` and ``/v1.0/`` get errcode
    404. Checks run in the order of docs/dingtalk-workrecord.md §10.2 (method, token
    present, token valid and live, rate limit, monthly quota, body, required fields, field
    rules, userid, duplicate, daily cap). Faults are drawn, with a seeded generator, for the
    API calls of both sides that passed the token check (never for the token calls):
    ``http500`` (HTTP 500 or 502, HTML body), ``errcode-1`` (system busy), ``reset``
    (connection reset, no answer), ``lost_ack`` (the call takes effect, then the connection
    closes without an answer), and, only when asked for, ``ipblock`` (the ``punish: deny``
    body), ``qps-global`` (88/90002) and ``lockerror`` (v1.0 creates with a sourceId only).
    Nothing is stored for a fault other than ``lost_ack``.

The v1.0 side
    Routes, answers and the readings chosen where DingTalk is silent (written down in
    docs/dingtalk-todo.md §13) are listed in ``todo_gateway`` (calls), ``todo_wire`` (field
    rules) and ``todo_store`` (sourceId scope, done and the list's rules); how unionIds are
    made is in ``directory``. Both sides share tokens, the clock, the rate limiter
    (``qps``), ``latency_ms``, ``monthly_quota`` and the faults.

``workrecord/get`` (off by default; DingTalk has no such call, docs/dingtalk-workrecord.md §6)
    Body ``{"userid", "record_id"}`` (record_id only; a biz_id is not looked up). Answer
    ``{"errcode": 0, "record": {"record_id", "create_time", "title", "url", "forms":
    [{"title", "content"}], "status": 0|1}, "request_id"}``; a record that is unknown or
    belongs to another user gives ``{"errcode": 0, "record": null, "request_id"}``.

Choices where the documentation is silent
    update of an unknown or foreign record answers ``result: <update_unknown_result>``
    (false by default); an expired token gets 88/42001, an unknown or revoked one 88/40014;
    gettoken answers any HTTP method but reads only the query string; the per-API rate limit is
    a token bucket of ``qps`` calls refilled at ``qps`` per second; metered calls (for
    ``monthly_quota``) are the workrecord calls that pass the token check and the rate
    limit; days and months are counted in China time (UTC+8); the same-day duplicate rule
    compares with the user's records that still exist (completed or not), while a biz_id,
    once received, stays used even after its record is removed.

Control API (JSON in and out, no token; not counted in ``call_counts``)
    ``GET  /_emulator/records``                   -> ``{"records": [record, ...]}``
    ``POST /_emulator/records/{record_id}/complete`` -> ``{"ok": true, "record": record}``
    ``DELETE /_emulator/records/{record_id}``     -> ``{"ok": true}``
    ``POST /_emulator/records/{record_id}/modify`` body ``{"title"?, "url"?, "forms"?}``
                                                   -> ``{"ok": true, "record": record}``
    ``GET  /_emulator/calls``                     -> ``{"calls": {api name: count}}``
    ``GET  /_emulator/tokens``                    -> ``{"tokens": [token, ...]}``
    ``POST /_emulator/tokens/revoke``             -> ``{"ok": true, "revoked": n}``
    ``POST /_emulator/clock`` body ``{"advance": seconds}`` -> ``{"ok": true, "now": epoch}``
    ``POST /_emulator/faults`` body any of ``rate, kinds, seed, latency_ms, qps``
                                                   -> ``{"ok": true, "faults": settings}``
    ``POST /_emulator/users`` body ``{"users": [userid, ...] | null, "unionIds"?: {userid:
    unionId}}``                                    -> ``{"ok": true}``
    ``GET  /_emulator/users``                     -> ``{"users": [...] | null, "unionIds": {}}``
    ``GET  /_emulator/users/{userid}``            -> ``{"userid", "unionId"}`` (404: no member)
    ``GET  /_emulator/todo/tasks``                -> ``{"tasks": [task, ...]}``
    ``POST /_emulator/todo/tasks/{taskId}/complete`` body ``{"executor"?: unionId}``
                                                   -> ``{"ok": true, "task": task}``
    ``POST /_emulator/todo/tasks/{taskId}/modify`` body any of ``subject, description,
    dueTime, priority, appUrl, pcUrl`` (null clears) -> ``{"ok": true, "task": task}``
    ``DELETE /_emulator/todo/tasks/{taskId}``     -> ``{"ok": true}``
    ``POST /_emulator/reset``                     -> ``{"ok": true}``
    A record is the dict of ``Emulator.records()``: record_id, userid, biz_id, title, url,
    pcUrl, formItemList, originator_user_id, source_name, pc_open_type, create_time (ms),
    status (0/1), app, created_at (epoch seconds). A task is the dict of
    ``Emulator.todos()``: the wire fields of a get (detailUrl with both urls, nulls kept)
    plus app, dingNotify, contentFieldList, todoType, executorStatus ({unionId: done}) and
    seq. Errors: HTTP 400 (bad body) or 404 (unknown route, record or task) with
    ``{"error": message}``.
"""

from __future__ import annotations

from dingsync.emulator.config import DEFAULT_APPKEY
from dingsync.emulator.config import DEFAULT_APPSECRET
from dingsync.emulator.config import DEFAULT_FAULT_KINDS
from dingsync.emulator.config import FAULT_KINDS
from dingsync.emulator.config import EmulatorConfig
from dingsync.emulator.gateway import CALL_NAMES
from dingsync.emulator.persist import EmulatorDataError
from dingsync.emulator.server import Emulator
from dingsync.emulator.server import serve

__all__ = [
    "CALL_NAMES",
    "DEFAULT_APPKEY",
    "DEFAULT_APPSECRET",
    "DEFAULT_FAULT_KINDS",
    "FAULT_KINDS",
    "Emulator",
    "EmulatorConfig",
    "EmulatorDataError",
    "serve",
]
