"""The emulator's user directory: which userids exist and the unionId of each.

DingTalk's v1.0 to-do API names people by unionId, the legacy API by userid
(docs/dingtalk-todo.md §3.1). Unless a unionId is configured for a userid, it is derived from
the userid (as docs/dingtalk-todo.md §13.4 describes): 20 base-62 characters of a SHA-256 of
the userid, then 4 check characters computed from those 20. The derivation is stable across
restarts and emulators, and the check characters let the emulator recognise its own unionIds
even when it accepts every userid, so that a client that sends a userid where a unionId
belongs is refused instead of served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_CHARS = 20
_CHECK_CHARS = 4


def _base62(data: bytes, length: int) -> str:
    value = int.from_bytes(data, "big")
    digits: list[str] = []
    for _ in range(length):
        value, rest = divmod(value, 62)
        digits.append(_BASE62[rest])
    return "".join(digits)


def _check(body: str) -> str:
    return _base62(hashlib.sha256(b"check:" + body.encode("utf-8")).digest(), _CHECK_CHARS)


def derived_union_id(userid: str) -> str:
    """The unionId the emulator gives ``userid`` when none is configured."""
    body = _base62(hashlib.sha256(b"unionid:" + userid.encode("utf-8")).digest(), _BODY_CHARS)
    return body + _check(body)


def is_derived_union_id(value: str) -> bool:
    """Whether ``value`` has the shape and check characters of a derived unionId."""
    if len(value) != _BODY_CHARS + _CHECK_CHARS or not all(c in _BASE62 for c in value):
        return False
    return _check(value[:_BODY_CHARS]) == value[_BODY_CHARS:]


class Directory:
    """The organisation's members as the emulator sees them.

    ``users=None`` means every userid is a member (the legacy side's default); a set limits
    membership to those userids. ``union_ids`` overrides the derived unionId of some userids.
    """

    def __init__(self, users: frozenset[str] | None, union_ids: Mapping[str, str]) -> None:
        self.users = users
        self.union_ids = dict(union_ids)
        self._members: dict[str, str] | None = None
        # unionId -> userid of every member whose unionId was asked for: DingTalk knows
        # whose a unionId is, and a derived one cannot be turned back without this.
        self._answered: dict[str, str] = {}

    def union_id(self, userid: str) -> str | None:
        """The unionId of a member, or None for a userid that is not one."""
        if self.users is not None and userid not in self.users:
            return None
        value = self.union_ids.get(userid) or derived_union_id(userid)
        self._answered[value] = userid
        return value

    def knows(self, union_id: str) -> bool:
        """Whether ``union_id`` belongs to a member."""
        if self.users is None:
            return union_id in self.union_ids.values() or is_derived_union_id(union_id)
        return union_id in self._member_union_ids()

    def userid_of(self, union_id: str) -> str | None:
        """The member's userid, where the directory can tell (configured or listed users)."""
        if self.users is not None:
            return self._member_union_ids().get(union_id)
        for userid, value in self.union_ids.items():
            if value == union_id:
                return userid
        return self._answered.get(union_id)

    def _member_union_ids(self) -> dict[str, str]:
        if self._members is None:
            users = self.users or frozenset()
            self._members = {self.union_id(u) or "": u for u in sorted(users)}
        return self._members


def check_union_ids(union_ids: Mapping[str, str]) -> dict[str, str]:
    """A copy of a userid -> unionId mapping, or ValueError when it cannot be one."""
    if not isinstance(union_ids, Mapping):
        raise ValueError("union_ids must map userids to unionIds")
    checked: dict[str, str] = {}
    for userid, union_id in union_ids.items():
        if not isinstance(userid, str) or not isinstance(union_id, str) or not union_id:
            raise ValueError(f"not a userid -> unionId pair: {userid!r} -> {union_id!r}")
        if "/" in union_id:
            raise ValueError(f"a unionId cannot hold '/': {union_id!r}")
        checked[userid] = union_id
    if len(set(checked.values())) != len(checked):
        raise ValueError("two userids cannot share one unionId")
    return checked
