"""The small interface the applier and the refresh talk to.

DingTalk no longer grants the legacy ``topapi/workrecord`` permission to new apps, so a
second implementation over the v1.0 to-do API is expected; the applier must never depend
on anything beyond this protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from dingsync.model import Content
from dingsync.model import RemoteRecord
from dingsync.model import Status


class Backend(Protocol):
    def create(self, userid: str, content: Content, biz_id: str, create_time_ms: int) -> str:
        """Create one to-do and return its record_id.

        Raises ``DuplicateError`` when DingTalk already holds this biz_id (or this title and
        form today) for the user, and ``TransportError(maybe_committed=True)`` when the
        request may have been applied although no answer came back.
        """
        ...

    def complete(self, userid: str, record_id: str) -> bool:
        """Mark a to-do done; ``record_id`` may also be the biz_id it was created with.

        Returns False when DingTalk does not know the record for this user.
        """
        ...

    def list_records(self, userid: str, status: Status) -> Iterator[RemoteRecord]:
        """Yield the user's open or done to-dos, fetching one page of 50 at a time."""
        ...

    def get_record(self, userid: str, record_id: str) -> RemoteRecord | None:
        """Look one record up by id, on gateways that offer ``workrecord/get``.

        Raises ``UnknownMethodError`` (errcode 22) where the call does not exist, as on
        DingTalk itself.
        """
        ...

    @property
    def call_counts(self) -> dict[str, int]:
        """API calls made so far, by API name (``gettoken``, ``workrecord/add``, ...)."""
        ...

    def close(self) -> None: ...
