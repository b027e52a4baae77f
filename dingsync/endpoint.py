"""Where dingsync connects: DingTalk's endpoint by default, the sandbox's app, and the
check every endpoint URL passes.

Kept apart from the clients so that commands which make no call (``plan``) can name and
check an endpoint without importing an HTTP library.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from dingsync.errors import EndpointError
from dingsync.redaction import redact

DEFAULT_ENDPOINT = "https://oapi.dingtalk.com"
# The app of the built-in emulator (``--sandbox``, ``dingsync emulator``): not a secret.
SANDBOX_KEY = "dingsync-sandbox-key"
SANDBOX_SECRET = "dingsync-sandbox-secret"

_LOOPBACK_NAMES = frozenset({"localhost"})


def check_endpoint(url: str) -> str:
    """Normalise an endpoint URL; refuse anything but https, or plain http to loopback.

    Returns ``scheme://host[:port][/path]`` without a trailing slash.
    """
    text = url.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(
            f"endpoint {redact(text)!r} is not an http(s) URL (for example {DEFAULT_ENDPOINT})"
        )
    if parts.username is not None or parts.password is not None:
        raise EndpointError("the endpoint URL must not carry a user name or password")
    if parts.query or parts.fragment:
        raise EndpointError(f"endpoint {redact(text)!r} must not have a query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"endpoint {redact(text)!r}: {exc}") from None
    host = parts.hostname
    if scheme == "http" and not _is_loopback(host):
        raise EndpointError(
            f"plain http is accepted only for loopback hosts (127.0.0.1, ::1, localhost), "
            f"not {host}: use https://"
        )
    shown_host = f"[{host}]" if ":" in host else host
    netloc = f"{shown_host}:{port}" if port is not None else shown_host
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
