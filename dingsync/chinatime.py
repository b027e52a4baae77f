"""China time, the clock DingTalk's daily rules and the task file's bare times follow.

China has kept UTC+8 without daylight saving since 1991, so a fixed offset is exactly
Asia/Shanghai for any date a to-do can have, and needs no time-zone database.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from datetime import timezone

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")


def china_day(moment: datetime) -> str:
    """The China-time date of ``moment`` (an aware datetime), as ``YYYY-MM-DD``."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d")


def china_day_of(epoch_seconds: float) -> str:
    """The China-time date of a Unix time, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(epoch_seconds, CHINA).strftime("%Y-%m-%d")


def today() -> str:
    """Today's date in China."""
    return china_day(datetime.now(timezone.utc))
