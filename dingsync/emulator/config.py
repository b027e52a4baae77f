"""How an emulator is set up: the one value ``Emulator`` is built from."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from dingsync.emulator.directory import check_union_ids
from dingsync.endpoint import SANDBOX_KEY
from dingsync.endpoint import SANDBOX_SECRET

# How the per-API limit may count calls (see dingsync.emulator.limits).
LIMITER_KINDS: tuple[str, ...] = ("bucket", "sliding")

# The app every emulator knows unless told others: the sandbox's.
DEFAULT_APPKEY = SANDBOX_KEY
DEFAULT_APPSECRET = SANDBOX_SECRET

# The faults a client must survive (SPEC.md "Emulator"): drawn from by default.
DEFAULT_FAULT_KINDS: tuple[str, ...] = ("http500", "errcode-1", "reset", "lost_ack")
# Rarer answers a client may want to rehearse: an IP block, the global per-API limit, and
# the v1.0 create's per-sourceId lock error (drawn only by creates that carry a sourceId).
EXTRA_FAULT_KINDS: tuple[str, ...] = ("ipblock", "qps-global", "lockerror")
FAULT_KINDS: tuple[str, ...] = DEFAULT_FAULT_KINDS + EXTRA_FAULT_KINDS


def _default_apps() -> dict[str, str]:
    return {DEFAULT_APPKEY: DEFAULT_APPSECRET}


@dataclass
class EmulatorConfig:
    """Settings of one emulator. The emulator copies them when it is built.

    ``users=None`` accepts every userid; a collection accepts only those (others get
    33012). ``union_ids`` gives some userids a unionId of their own instead of the derived
    one (see ``directory``). ``qps`` of 0 or None disables the per-app, per-API limit.
    ``todo_page_size`` is the number of cards per page of the v1.0 list. ``clock`` returns
    epoch seconds; it defaults to ``time.time``.
    """

    apps: Mapping[str, str] = field(default_factory=_default_apps)
    users: Iterable[str] | None = None
    union_ids: Mapping[str, str] = field(default_factory=dict)
    qps: float | None = 20.0
    limiter: str = "bucket"
    latency_ms: float = 0
    token_ttl: float = 7200
    fault_rate: float = 0.0
    fault_kinds: Sequence[str] = DEFAULT_FAULT_KINDS
    seed: int = 0
    daily_limit: int = 100
    monthly_quota: int | None = None
    serve_workrecord_get: bool = False
    todo_page_size: int = 20
    update_unknown_result: bool = False
    data_path: str | os.PathLike[str] | None = None
    clock: Callable[[], float] | None = None
    # How an answer's latency is waited out (in the connection's own thread).
    sleep: Callable[[float], None] = time.sleep

    def check(self) -> None:
        """Raise ``ValueError`` for settings that cannot work."""
        if not self.apps:
            raise ValueError("at least one app (appkey -> appsecret) is needed")
        check_fault_settings(self.fault_rate, self.fault_kinds)
        check_rate_settings(self.qps, self.latency_ms)
        if self.limiter not in LIMITER_KINDS:
            known = ", ".join(LIMITER_KINDS)
            raise ValueError(f"unknown limiter {self.limiter!r}; known: {known}")
        if not self.token_ttl > 0:
            raise ValueError(f"token_ttl must be positive, not {self.token_ttl!r}")
        if self.daily_limit < 0:
            raise ValueError(f"daily_limit must be >= 0, not {self.daily_limit!r}")
        if self.monthly_quota is not None and self.monthly_quota < 0:
            raise ValueError(f"monthly_quota must be >= 0, not {self.monthly_quota!r}")
        if self.todo_page_size < 1:
            raise ValueError(f"todo_page_size must be >= 1, not {self.todo_page_size!r}")
        check_union_ids(self.union_ids)


def check_fault_settings(rate: float, kinds: Sequence[str]) -> None:
    if isinstance(kinds, str):
        # A bare string would be read as a list of one-letter kinds.
        raise ValueError("fault kinds must be a list of names, not a string")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault rate must be between 0 and 1, not {rate!r}")
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        known = ", ".join(FAULT_KINDS)
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {known}")


def check_rate_settings(qps: float | None, latency_ms: float) -> None:
    if qps is not None and (qps < 0 or math.isnan(qps)):
        raise ValueError(f"qps must be >= 0 (0 disables the limit), not {qps!r}")
    if latency_ms < 0 or math.isnan(latency_ms):
        raise ValueError(f"latency_ms must be >= 0, not {latency_ms!r}")
