"""The emulator's data: records, tokens, the counters behind DingTalk's add rules, and the
v1.0 to-dos (``todo``, a ``TodoStore``).

``Store`` does no locking of its own: every caller holds ``Store.lock`` (one lock for the
whole emulator, so that a request's checks and its effect are atomic). Time always comes in
as an argument, so that the rules can be driven by an injected clock. Section numbers (§)
refer to docs/dingtalk-workrecord.md.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dingsync.chinatime import CHINA
from dingsync.chinatime import china_day_of
from dingsync.emulator.todo_store import TodoStore
from dingsync.emulator.wire import AddRequest
from dingsync.emulator.wire import FormPairs
from dingsync.emulator.wire import Rejection

# DingTalk counts days in China time.
day_of = china_day_of

DATA_FORMAT = 1


def month_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CHINA).strftime("%Y-%m")


def shanghai_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, CHINA).strftime("%Y-%m-%d %H:%M:%S")


def day_bounds(epoch: float) -> tuple[float, float]:
    """Start and end, in epoch seconds, of the China-time day holding ``epoch``."""
    offset = 8 * 3600
    start = math.floor((epoch + offset) / 86400) * 86400 - offset
    return float(start), float(start + 86400)


@dataclass
class Record:
    record_id: str
    userid: str
    biz_id: str | None
    title: str
    url: str
    pc_url: str | None
    forms: FormPairs
    originator_user_id: str | None
    source_name: str | None
    pc_open_type: int | None
    create_time: int
    status: int
    app: str
    created_at: float
    seq: int

    def full(self) -> dict[str, Any]:
        """Every stored field, under the wire names where there is one."""
        return {
            "record_id": self.record_id,
            "userid": self.userid,
            "biz_id": self.biz_id,
            "title": self.title,
            "url": self.url,
            "pcUrl": self.pc_url,
            "formItemList": _form_dicts(self.forms),
            "originator_user_id": self.originator_user_id,
            "source_name": self.source_name,
            "pc_open_type": self.pc_open_type,
            "create_time": self.create_time,
            "status": self.status,
            "app": self.app,
            "created_at": self.created_at,
        }

    def list_item(self) -> dict[str, Any]:
        """What getbyuserid reveals: nothing else, in particular no biz_id or status (§5.3)."""
        return {
            "record_id": self.record_id,
            "create_time": self.create_time,
            "title": self.title,
            "url": self.url,
            "forms": _form_dicts(self.forms),
        }

    def detail(self) -> dict[str, Any]:
        """The shape of the optional workrecord/get: a list item plus its status."""
        return {**self.list_item(), "status": self.status}

    def to_data(self) -> dict[str, Any]:
        return {**self.full(), "seq": self.seq}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Record:
        return cls(
            record_id=str(data["record_id"]),
            userid=str(data["userid"]),
            biz_id=data.get("biz_id"),
            title=str(data["title"]),
            url=str(data["url"]),
            pc_url=data.get("pcUrl"),
            forms=tuple((str(i["title"]), str(i["content"])) for i in data["formItemList"]),
            originator_user_id=data.get("originator_user_id"),
            source_name=data.get("source_name"),
            pc_open_type=data.get("pc_open_type"),
            create_time=int(data["create_time"]),
            status=int(data["status"]),
            app=str(data["app"]),
            created_at=float(data["created_at"]),
            seq=int(data["seq"]),
        )


def _form_dicts(forms: FormPairs) -> list[dict[str, str]]:
    return [{"title": title, "content": content} for title, content in forms]


@dataclass
class Token:
    value: str
    app: str
    expires_at: float


class Store:
    """In-memory DingTalk data. Callers hold ``lock``; ``on_change`` fires after writes."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.on_change: Callable[[], None] = _nothing
        self.clear()

    def clear(self) -> None:
        self.records: dict[str, Record] = {}  # insertion order is creation order
        self._by_user: dict[str, list[Record]] = {}
        self._by_biz: dict[tuple[str, str], Record] = {}
        # Every biz_id a userid ever received: DingTalk refuses a repeat forever (§3.5, §3.7).
        self._biz_ids: dict[str, set[str]] = {}
        self._adds: dict[str, dict[str, int]] = {}  # day -> userid -> successful adds
        self._months: dict[str, int] = {}
        self.seq = 0
        self._tokens: dict[str, Token] = {}
        self._live: dict[str, Token] = {}  # app -> its current token
        self.issued: list[str] = []
        self.todo = TodoStore(self._changed)

    def _changed(self) -> None:
        # Looked up at each call: the emulator sets on_change after the store is built.
        self.on_change()

    # Tokens

    def issue_token(self, app: str, now: float, ttl: float) -> Token:
        """A live token is handed out again with its expiry pushed back (自动续期, §1.3)."""
        token = self._live.get(app)
        if token is not None and token.expires_at > now:
            token.expires_at = now + ttl
            return token
        token = Token(secrets.token_hex(16), app, now + ttl)
        self._tokens[token.value] = token
        self._live[app] = token
        self.issued.append(token.value)
        return token

    def token_app(self, value: str, now: float) -> str:
        """The app a token belongs to; a wrapped 40014 or 42001 when it is not usable."""
        token = self._tokens.get(value)
        if token is None:
            raise Rejection(88, "不合法的access_token", sub_code="40014")
        if token.expires_at <= now:
            raise Rejection(88, "access_token超时", sub_code="42001")
        return token.app

    def revoke_tokens(self) -> int:
        count = len(self._tokens)
        self._tokens.clear()
        self._live.clear()
        return count

    # Metering

    def meter(self, now: float) -> int:
        """Count one metered call in this China-time month; return the month's total."""
        month = month_of(now)
        self._months[month] = self._months.get(month, 0) + 1
        self.on_change()
        return self._months[month]

    # Records

    def add(self, request: AddRequest, app: str, now: float, daily_limit: int) -> Record:
        """Store a new to-do, or refuse it as a duplicate (854001) or over the cap (854002)."""
        userid = request.userid
        if request.biz_id is not None and request.biz_id in self._biz_ids.get(userid, ()):
            raise Rejection(854001, "待办任务重复: biz_id 已存在")
        if self._same_content_today(request, now):
            raise Rejection(854001, "待办任务重复: 同一人同一天不能收到相同内容的待办")
        adds_today = self._adds_on(day_of(now))
        if adds_today.get(userid, 0) >= daily_limit:
            raise Rejection(854002, "待办任务超过每日限额")
        record = self._new_record(request, app, now)
        self._index(record)
        adds_today[userid] = adds_today.get(userid, 0) + 1
        if record.biz_id is not None:
            self._biz_ids.setdefault(userid, set()).add(record.biz_id)
        self.on_change()
        return record

    def _adds_on(self, day: str) -> dict[str, int]:
        """The per-user add counts of ``day``; the counts of earlier days are dropped once
        a new day starts, so that an emulator left running does not grow without end."""
        counts = self._adds.get(day)
        if counts is None:
            self._adds = {d: c for d, c in self._adds.items() if d > day}
            counts = self._adds[day] = {}
        return counts

    def _same_content_today(self, request: AddRequest, now: float) -> bool:
        """Whether a record of this user created today has this title and these form pairs.

        Only records that still exist count, completed or not: one removed on the DingTalk
        side no longer blocks the same content (the docs are silent; a check against the
        user's records is the likely implementation). A removed record's biz_id, by contrast,
        stays used forever (see ``_biz_ids``).
        """
        start, end = day_bounds(now)
        return any(
            start <= r.created_at < end and r.title == request.title and r.forms == request.forms
            for r in self._by_user.get(request.userid, ())
        )

    def _new_record(self, request: AddRequest, app: str, now: float) -> Record:
        self.seq += 1
        return Record(
            record_id="record" + secrets.token_hex(16),
            userid=request.userid,
            biz_id=request.biz_id,
            title=request.title,
            url=request.url,
            pc_url=request.pc_url,
            forms=request.forms,
            originator_user_id=request.originator_user_id,
            source_name=request.source_name,
            pc_open_type=request.pc_open_type,
            create_time=request.create_time,
            status=0,
            app=app,
            created_at=now,
            seq=self.seq,
        )

    def _index(self, record: Record) -> None:
        self.records[record.record_id] = record
        self._by_user.setdefault(record.userid, []).append(record)
        if record.biz_id is not None:
            self._by_biz[(record.userid, record.biz_id)] = record

    def find_for_user(self, userid: str, ref: str) -> Record | None:
        """This user's record whose record_id, or else biz_id, is ``ref`` (update, §4.1)."""
        record = self.records.get(ref)
        if record is not None and record.userid == userid:
            return record
        return self._by_biz.get((userid, ref))

    def get_for_user(self, userid: str, record_id: str) -> Record | None:
        record = self.records.get(record_id)
        return record if record is not None and record.userid == userid else None

    def complete(self, record: Record) -> None:
        if record.status != 1:
            record.status = 1
            self.on_change()

    def page(self, userid: str, status: int, offset: int, limit: int) -> tuple[list[Record], bool]:
        """One page of a user's list, newest create_time first, ties newest-created first."""
        matching = [r for r in self._by_user.get(userid, ()) if r.status == status]
        matching.sort(key=lambda r: (r.create_time, r.seq), reverse=True)
        return matching[offset : offset + limit], offset + limit < len(matching)

    def delete(self, record_id: str) -> Record:
        """Forget a record, as a removal in DingTalk would. Its biz_id stays used."""
        record = self.records.pop(record_id)
        self._by_user[record.userid].remove(record)
        if record.biz_id is not None:
            self._by_biz.pop((record.userid, record.biz_id), None)
        self.on_change()
        return record

    def modify(
        self,
        record_id: str,
        title: str | None,
        url: str | None,
        forms: FormPairs | None,
    ) -> Record:
        """Change a record as an edit on the DingTalk side would. KeyError if unknown."""
        record = self.records[record_id]
        if title is not None:
            record.title = title
        if url is not None:
            record.url = url
        if forms is not None:
            record.forms = forms
        self.on_change()
        return record

    # Persistence

    def snapshot(self) -> dict[str, Any]:
        """Everything worth keeping across restarts, as JSON-ready data. Tokens are not kept."""
        return {
            "format": DATA_FORMAT,
            "seq": self.seq,
            "records": [r.to_data() for r in self.records.values()],
            "biz_ids": {user: sorted(ids) for user, ids in self._biz_ids.items()},
            "adds": {day: dict(users) for day, users in self._adds.items()},
            "months": dict(self._months),
            "todo": self.todo.snapshot(),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the data with a snapshot. Raises KeyError/TypeError/ValueError if malformed."""
        if data.get("format") != DATA_FORMAT:
            raise ValueError(f"unknown data format {data.get('format')!r}")
        self.clear()
        for item in data["records"]:
            self._index(Record.from_data(item))
        self.seq = max([int(data.get("seq", 0)), *(r.seq for r in self.records.values())])
        self._biz_ids = {str(u): set(ids) for u, ids in data.get("biz_ids", {}).items()}
        for record in self.records.values():
            # A stored record's biz_id is used even if the history lost track of it.
            if record.biz_id is not None:
                self._biz_ids.setdefault(record.userid, set()).add(record.biz_id)
        self._adds = {
            str(day): {str(user): int(n) for user, n in users.items()}
            for day, users in data.get("adds", {}).items()
        }
        self._months = {str(m): int(n) for m, n in data.get("months", {}).items()}
        # Files written before the v1.0 side existed have no "todo" part.
        self.todo.restore(data.get("todo", {}))


def form_pairs(items: Iterable[Any]) -> FormPairs:
    """Form items given as ``{title, content}`` objects or as ``(title, content)`` pairs.

    Raises ValueError for anything else, so that a bad item is not mistaken for a missing
    record (KeyError) by the callers.
    """
    if isinstance(items, (str, bytes, dict)):
        raise ValueError("forms must be a list of {title, content} items")
    pairs: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict):
            pair = (item.get("title"), item.get("content"))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pair = (item[0], item[1])
        else:
            raise ValueError(f"not a form item: {item!r}")
        if not all(isinstance(part, str) for part in pair):
            raise ValueError(f"a form item needs a string title and content: {item!r}")
        pairs.append((str(pair[0]), str(pair[1])))
    return tuple(pairs)


def _nothing() -> None:
    return None
