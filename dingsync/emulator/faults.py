"""Injected faults: which call fails, and how.

The draw comes from a seeded generator, so the same seed and the same sequence of calls
give the same faults. Only API calls that carry a valid token draw (workrecord, the
contacts call and the v1.0 to-do calls); the token calls never do.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dingsync.emulator.config import check_fault_settings
from dingsync.emulator.wire import new_request_id
from dingsync.emulator.wire import wrapped_error

# Faults that answer instead of the real handler; nothing is stored.
SHORT_CIRCUIT = frozenset({"http500", "errcode-1", "reset", "ipblock", "qps-global"})

# What a proxy in front of DingTalk shows when the backend fails.
_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>Tengine</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway"}


class FaultPlan:
    """Decides, call by call, whether and how an API call fails."""

    def __init__(self, rate: float, kinds: Sequence[str], seed: int) -> None:
        check_fault_settings(rate, kinds)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.seed = seed
        self._rng = random.Random(seed)
        self.injected: Counter[str] = Counter()

    def settings(self) -> dict[str, Any]:
        return {"rate": self.rate, "kinds": list(self.kinds), "seed": self.seed}

    def draw(self, exclude: frozenset[str] = frozenset()) -> str | None:
        """The fault for the next call, or None. Draws nothing while faults are off.

        ``exclude`` names kinds that cannot happen to this call (a lock error needs a create
        with a sourceId); they are left out of the choice, never swapped for another kind.
        """
        if self.rate <= 0 or not self.kinds:
            return None
        if self._rng.random() >= self.rate:
            return None
        kinds = [kind for kind in self.kinds if kind not in exclude]
        if not kinds:
            return None
        kind = kinds[self._rng.randrange(len(kinds))]
        self.injected[kind] += 1
        return kind

    def gateway_status(self) -> int:
        return 500 if self._rng.random() < 0.5 else 502


def gateway_page(status: int) -> bytes:
    return _GATEWAY_PAGE.format(status=status, reason=_REASONS[status]).encode("ascii")


def busy_body() -> dict[str, Any]:
    return {"errcode": -1, "errmsg": "系统繁忙"}


def ip_block_body() -> dict[str, Any]:
    """The anti-abuse layer's answer to an IP that called too often.

    See docs/dingtalk-workrecord.md §7.4 (the body) and §8.4 (when it comes).
    """
    return {"status": 1111, "wait": 5, "source": "x5", "punish": "deny", "uuid": str(uuid.uuid4())}


def global_limit_body(api: str) -> dict[str, Any]:
    """90002: every app of every organisation together exceeded this API's ceiling."""
    api_name = "dingtalk.oapi." + api.replace("/", ".")
    detail = f"当前接口的所有请求都被暂时禁用了, apiPath({api_name})"
    return wrapped_error("90002", detail, new_request_id())
