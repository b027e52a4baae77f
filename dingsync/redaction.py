"""Taking secrets out of text before it is shown, logged or raised.

Without an HTTP library, so that code which only names an endpoint can redact it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SECRET_QUERY = re.compile(r"((?:access_token|appsecret|appkey)=)[^&\s'\"#)\]]*", re.IGNORECASE)
MIN_SCRUB_LENGTH = 6  # shorter literals would mangle ordinary text when scrubbed


def redact(text: str) -> str:
    """Replace the values of ``access_token=``, ``appsecret=`` and ``appkey=`` with ``***``."""
    return _SECRET_QUERY.sub(r"\1***", text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Redact secret query values, then any literal secret or token still present."""
    text = redact(text)
    for secret in secrets:
        if len(secret) >= MIN_SCRUB_LENGTH:
            text = text.replace(secret, "***")
    return text
