"""Secrets (passwords, AUTH payloads) wrapped so that no repr, traceback or log can show them."""

from __future__ import annotations

from typing import Any


class Secret:
    """A value that shows itself only to :func:`reveal`, never in a repr, a str or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: Any):
        self._value = value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def reveal(value: Any) -> Any:
    """The wrapped value of a :class:`Secret`; anything else as it is."""
    return value._value if isinstance(value, Secret) else value


def line_bytes(line: str | Secret) -> bytes | Secret:
    """A command line with its CRLF, still wrapped when it holds a secret."""
    if isinstance(line, Secret):
        return Secret(reveal(line).encode("utf-8") + b"\r\n")
    return line.encode("utf-8") + b"\r\n"
