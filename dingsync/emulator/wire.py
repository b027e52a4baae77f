"""What travels on the wire: request bodies, field rules and the shapes of replies.

Everything here is pure. Section numbers (§) refer to docs/dingtalk-workrecord.md. The field
rules follow §3–§5 and the order of §10.2 steps 5–7: the body must parse, then every
required field must be present, then each field must obey its rule. A broken rule raises
``Rejection``, which the gateway turns into DingTalk's error body.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from dingsync.model import text_length

FormPairs = tuple[tuple[str, str], ...]

MAX_TITLE_CHARS = 50
MAX_FORM_ITEMS = 20
MAX_PAGE_SIZE = 50

_INTEGER = re.compile(r"\s*-?\d+\s*")
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
# request_id values seen in real replies are 12 or 13 base-36 characters.
_ID_LOW = 36**11
_ID_HIGH = 36**13
_ids = random.Random()


class Rejection(Exception):
    """A request DingTalk refuses. ``sub_code`` set means the reply is wrapped in errcode 88.

    ``traced`` says whether the reply carries a ``request_id``; a few bodies documented
    verbatim (-1 system busy, 90020 quota) have none.
    """

    def __init__(
        self,
        errcode: int,
        errmsg: str,
        *,
        sub_code: str | None = None,
        traced: bool = True,
    ) -> None:
        super().__init__(errmsg)
        self.errcode = errcode
        self.errmsg = errmsg
        self.sub_code = sub_code
        self.traced = traced

    def body(self, request_id: str) -> dict[str, Any]:
        if self.sub_code is not None:
            return wrapped_error(self.sub_code, self.errmsg, request_id)
        reply: dict[str, Any] = {"errcode": self.errcode, "errmsg": self.errmsg}
        if self.traced:
            reply["request_id"] = request_id
        return reply


def new_request_id() -> str:
    value = _ids.randrange(_ID_LOW, _ID_HIGH)
    digits: list[str] = []
    while value:
        value, rest = divmod(value, 36)
        digits.append(_ID_ALPHABET[rest])
    return "".join(reversed(digits))


def wrapped_error(sub_code: str, sub_msg: str, request_id: str) -> dict[str, Any]:
    """The errcode 88 envelope the gateway uses for auth and rate-limit errors (§7.2)."""
    return {
        "errcode": 88,
        "sub_code": sub_code,
        "sub_msg": sub_msg,
        "errmsg": f"ding talk error[subcode={sub_code},submsg={sub_msg}]",
        "request_id": request_id,
    }


def unknown_method(path_after_topapi: str, request_id: str) -> dict[str, Any]:
    """errcode 22 exactly as the gateway answers an unregistered topapi name (§6.2)."""
    api_name = "dingtalk.oapi." + path_after_topapi.replace("/", ".")
    detail = f"不合法ApiName，ApiName = {api_name}"
    return {
        "errcode": 22,
        "sub_msg": detail,
        "errmsg": f"Invalid method[submsg={detail}]",
        "request_id": request_id,
    }


def is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def parse_body(content_type: str, raw: bytes) -> dict[str, Any] | None:
    """The request's fields, or None when the body is not a usable JSON object.

    Form-encoded bodies are read too: the gateway accepts them (§2.2), and their nested
    lists arrive as JSON strings, which the field readers decode.
    """
    try:
        if is_form(content_type):
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        parsed = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


@dataclass(frozen=True)
class AddRequest:
    userid: str
    create_time: int
    title: str
    url: str
    forms: FormPairs
    pc_url: str | None
    originator_user_id: str | None
    source_name: str | None
    pc_open_type: int | None
    biz_id: str | None


@dataclass(frozen=True)
class UpdateRequest:
    userid: str
    record_id: str


@dataclass(frozen=True)
class ListRequest:
    userid: str
    offset: int
    limit: int
    status: int


@dataclass(frozen=True)
class GetRequest:
    userid: str
    record_id: str


def read_add(body: dict[str, Any]) -> AddRequest:
    _require(body, ("userid", "create_time", "title", "url", "formItemList"))
    create_time = _integer(body["create_time"])
    if create_time is None:
        raise _invalid("create_time", "必须是数字")
    title = _text(body["title"], "title")
    if title == "":
        raise Rejection(400002, "参数错误: title 不能为空")
    if text_length(title) > MAX_TITLE_CHARS:
        raise _invalid("title", f"长度不能超过{MAX_TITLE_CHARS}个字符")
    return AddRequest(
        userid=_text(body["userid"], "userid"),
        create_time=create_time,
        title=title,
        url=_text(body["url"], "url"),
        forms=_forms(body["formItemList"]),
        pc_url=_optional_text(body, "pcUrl"),
        originator_user_id=_optional_text(body, "originator_user_id"),
        source_name=_optional_text(body, "source_name"),
        pc_open_type=_optional_integer(body, "pc_open_type"),
        # An empty biz_id is taken as "no business id", not as a key to deduplicate on.
        biz_id=_optional_text(body, "biz_id") or None,
    )


def read_update(body: dict[str, Any]) -> UpdateRequest:
    _require(body, ("userid", "record_id"))
    return UpdateRequest(
        userid=_text(body["userid"], "userid"),
        record_id=_text(body["record_id"], "record_id"),
    )


def read_list(body: dict[str, Any]) -> ListRequest:
    _require(body, ("userid", "offset", "limit", "status"))
    offset = _integer(body["offset"])
    if offset is None or offset < 0:
        raise Rejection(40068, "无效的offset")
    limit = _integer(body["limit"])
    if limit is None or not 1 <= limit <= MAX_PAGE_SIZE:
        raise Rejection(40069, f"无效的limit, limit必须在1到{MAX_PAGE_SIZE}之间")
    status = _integer(body["status"])
    if status not in (0, 1):
        raise _invalid("status", "只能是0或1")
    return ListRequest(
        userid=_text(body["userid"], "userid"), offset=offset, limit=limit, status=status
    )


def read_get(body: dict[str, Any]) -> GetRequest:
    _require(body, ("userid", "record_id"))
    return GetRequest(
        userid=_text(body["userid"], "userid"),
        record_id=_text(body["record_id"], "record_id"),
    )


def _require(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = body.get(name)
        # An empty title is present but empty: that is the field rule 400002, not 40035.
        if value is None or (value == "" and name != "title"):
            raise Rejection(40035, f"缺少参数 {name}")


def _invalid(name: str, why: str) -> Rejection:
    return Rejection(40035, f"参数不合法: {name} {why}")


def _text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    # Official SDKs send every scalar as a string; the reverse (a number where a string is
    # expected) is read leniently, as a Java backend binding JSON to String fields does.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _invalid(name, "必须是字符串")


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return None if value is None else _text(value, name)


def _integer(value: Any) -> int | None:
    """An int, or a numeric string (the Java SDK sends every number as a string, §2.3)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _optional_integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    number = _integer(value)
    if number is None:
        raise _invalid(name, "必须是数字")
    return number


def _forms(value: Any) -> FormPairs:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _invalid("formItemList", "不是合法的JSON数组") from None
    if not isinstance(value, list):
        raise _invalid("formItemList", "必须是数组")
    if not value:
        raise _invalid("formItemList", "不能为空")
    if len(value) > MAX_FORM_ITEMS:
        raise _invalid("formItemList", f"长度不能超过{MAX_FORM_ITEMS}")
    return tuple(_form_item(item) for item in value)


def _form_item(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise _invalid("formItemList", "的元素必须是对象")
    pair: list[str] = []
    for name in ("title", "content"):
        value = item.get(name)
        if value is None or value == "":
            raise Rejection(400002, f"参数错误: formItemList.{name} 不能为空")
        pair.append(_text(value, f"formItemList.{name}"))
    return pair[0], pair[1]
