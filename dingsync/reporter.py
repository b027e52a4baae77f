"""Progress hooks of apply and refresh. The default does nothing; the CLI prints.

Core code never prints: it calls these hooks, and the terminal belongs to the CLI.
"""

from __future__ import annotations


class Reporter:
    def resolved(self, address: str, outcome: str) -> None:
        """An interrupted create was settled: ``adopted``, ``created`` or ``failed: …``."""

    def started(self, total: int, what: str) -> None:
        """A phase with ``total`` steps begins (``apply`` or ``refresh``)."""

    def advanced(self, what: str) -> None:
        """One step of the current phase finished."""

    def succeeded(self, action: str, address: str, detail: str) -> None:
        """One change was carried out (``detail`` is the record_id or a short note)."""

    def failed(self, action: str, address: str, message: str) -> None:
        """One change failed; the others go on."""

    def note(self, message: str) -> None:
        """Something the user should know, that is neither success nor failure."""

    def finished(self, what: str) -> None:
        """The current phase ended."""
