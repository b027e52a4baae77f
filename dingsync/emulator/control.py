"""The ``/_emulator/`` control API: the in-process helpers, over HTTP, for other processes.

Answers are plain HTTP: 200 with a JSON object on success, 400 for a bad body, 404 for an
unknown route or record, each error as ``{"error": "..."}``. No token is needed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from dingsync.emulator.server import Emulator

PREFIX = "/_emulator/"
Answer = tuple[int, dict[str, Any]]


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handle_control(emulator: Emulator, method: str, path: str, raw: bytes) -> Answer:
    parts = [p for p in path[len(PREFIX) :].split("/") if p]
    try:
        return _route(emulator, method, parts, raw)
    except _ControlError as exc:
        return exc.status, {"error": str(exc)}
    except KeyError as exc:
        return 404, {"error": f"unknown record {exc.args[0]}"}
    except (TypeError, ValueError) as exc:
        return 400, {"error": str(exc)}


def _route(emulator: Emulator, method: str, parts: list[str], raw: bytes) -> Answer:
    route = (method, *parts)
    if route == ("GET", "records"):
        return 200, {"records": emulator.records()}
    if route == ("GET", "calls"):
        return 200, {"calls": emulator.call_counts()}
    if route == ("GET", "tokens"):
        return 200, {"tokens": emulator.issued_tokens()}
    if route == ("POST", "tokens", "revoke"):
        return 200, {"ok": True, "revoked": emulator.revoke_tokens()}
    if route == ("POST", "reset"):
        emulator.reset()
        return 200, {"ok": True}
    if route == ("POST", "clock"):
        return _clock(emulator, _body(raw))
    if route == ("POST", "faults"):
        return 200, {"ok": True, "faults": emulator.set_faults(**_fault_args(_body(raw)))}
    if route == ("POST", "users"):
        return _users(emulator, _body(raw))
    if route == ("GET", "users"):
        return 200, emulator.users()
    if method == "GET" and len(parts) == 2 and parts[0] == "users":
        try:
            return 200, {"userid": parts[1], "unionId": emulator.union_id(parts[1])}
        except KeyError:
            raise _ControlError(404, f"{parts[1]} is not a member") from None
    if len(parts) >= 2 and parts[0] == "records":
        return _record_route(emulator, method, parts[1], parts[2:], raw)
    if route == ("GET", "todo", "tasks"):
        return 200, {"tasks": emulator.todos()}
    if len(parts) >= 3 and parts[:2] == ["todo", "tasks"]:
        try:
            return _todo_route(emulator, method, parts[2], parts[3:], raw)
        except KeyError:
            raise _ControlError(404, f"unknown task {parts[2]}") from None
    raise _ControlError(404, f"no control route {method} {PREFIX}{'/'.join(parts)}")


def _refuse_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    """A misspelt control field is an error, never silently ignored."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _ControlError(400, f"unknown field(s) {', '.join(unknown)}")


def _record_route(
    emulator: Emulator, method: str, record_id: str, rest: list[str], raw: bytes
) -> Answer:
    if method == "DELETE" and not rest:
        emulator.delete(record_id)
        return 200, {"ok": True}
    if method == "POST" and rest == ["complete"]:
        return 200, {"ok": True, "record": emulator.complete(record_id)}
    if method == "POST" and rest == ["modify"]:
        body = _body(raw)
        _refuse_unknown(body, {"title", "url", "forms"})
        for name in ("title", "url"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise _ControlError(400, f"{name} must be a string")
        record = emulator.modify(
            record_id, title=body.get("title"), url=body.get("url"), forms=body.get("forms")
        )
        return 200, {"ok": True, "record": record}
    raise _ControlError(404, f"no control route {method} for records/{record_id}")


def _todo_route(
    emulator: Emulator, method: str, task_id: str, rest: list[str], raw: bytes
) -> Answer:
    if method == "DELETE" and not rest:
        emulator.delete_todo(task_id)
        return 200, {"ok": True}
    if method == "POST" and rest == ["complete"]:
        body = _body(raw)
        _refuse_unknown(body, {"executor"})
        executor = body.get("executor")
        if executor is not None and not isinstance(executor, str):
            raise _ControlError(400, "executor must be a unionId")
        return 200, {"ok": True, "task": emulator.complete_todo(task_id, executor)}
    if method == "POST" and rest == ["modify"]:
        return 200, {"ok": True, "task": emulator.modify_todo(task_id, **_body(raw))}
    raise _ControlError(404, f"no control route {method} for todo/tasks/{task_id}")


def _clock(emulator: Emulator, body: dict[str, Any]) -> Answer:
    seconds = body.get("advance")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise _ControlError(400, 'expected {"advance": seconds}')
    return 200, {"ok": True, "now": emulator.advance_clock(float(seconds))}


def _users(emulator: Emulator, body: dict[str, Any]) -> Answer:
    if "users" not in body:
        raise _ControlError(400, 'expected {"users": [userid, ...]} or {"users": null}')
    _refuse_unknown(body, {"users", "unionIds"})
    users = body["users"]
    if users is not None and not (
        isinstance(users, list) and all(isinstance(u, str) for u in users)
    ):
        raise _ControlError(400, "users must be a list of strings or null")
    union_ids = body.get("unionIds")
    if union_ids is not None and not isinstance(union_ids, dict):
        raise _ControlError(400, "unionIds must map userids to unionIds")
    emulator.set_users(users, union_ids)
    return 200, {"ok": True}


def _fault_args(body: dict[str, Any]) -> dict[str, Any]:
    allowed = {"rate", "kinds", "seed", "latency_ms", "qps"}
    _refuse_unknown(body, allowed)
    return body


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _ControlError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _ControlError(400, "the body must be a JSON object")
    return body
