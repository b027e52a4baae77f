"""What passes between the HTTP handler and the gateways: a request, an outcome, the clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Literal

TOPAPI_JSON = "application/json;charset=UTF-8"

Action = Literal["answer", "reset", "drop"]


class Clock:
    """Epoch seconds from a base clock plus an offset that tests can push forward."""

    def __init__(self, base: Callable[[], float] | None = None) -> None:
        self._base = base or time.time
        self.offset = 0.0

    def now(self) -> float:
        return self._base() + self.offset


@dataclass(frozen=True)
class Request:
    """One HTTP request. ``headers`` has lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What to do with the connection: answer, reset it, or drop it without an answer."""

    status: int = 200
    body: bytes = b""
    content_type: str = TOPAPI_JSON
    action: Action = "answer"
    delay: float = 0.0


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
