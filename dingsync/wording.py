"""Small helpers for the words of human output."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """``1 record``, ``2 records``: a count and an English noun that agrees with it."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
