"""Secrets (passwords, AUTH payloads) wrapped so that no repr, traceback or log can show them,
and the run's known passwords hidden wherever they turn up — a server that echoes a password back
puts it in its reply, and from there in messages and reports."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

REDACTED = "***"
#: Every form of every password of this run (set by the plugin from the targets), longest first.
_KNOWN: list[str] = []
#: The same forms as bytes, as a server may send them back (UTF-8, or Latin-1 from an older system).
_KNOWN_BYTES: list[bytes] = []
MIN_SECRET_LENGTH = 4  # a shorter "password" would blank ordinary words everywhere


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


def register(password: str, user: str | None = None) -> None:
    """Hide ``password`` from now on in everything :func:`redact` sees: as written, quoted as IMAP
    LOGIN sends it, and base64-encoded as AUTH LOGIN and AUTH PLAIN (RFC 4616) carry it."""
    if len(password) < MIN_SECRET_LENGTH:
        return
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    payloads = [password] + ([f"\0{user}\0{password}", f"{user}\0{user}\0{password}"] if user else [])
    encoded = [b64encode(payload.encode()).decode() for payload in payloads]
    forms = {password, quoted, *encoded, *(form.rstrip("=") for form in encoded)}
    _KNOWN[:] = sorted(set(_KNOWN) | forms, key=len, reverse=True)
    _KNOWN_BYTES[:] = sorted({_encoded(form, charset) for form in _KNOWN for charset in ("utf-8", "latin-1")} - {b""},
                             key=len, reverse=True)


def _encoded(form: str, charset: str) -> bytes:
    try:
        return form.encode(charset)
    except UnicodeEncodeError:
        return b""


def redact(text: str) -> str:
    """``text`` with every known password form replaced by ``***``."""
    for form in _KNOWN:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def redact_bytes(data: bytes) -> bytes:
    """``data`` with every known password form replaced by ``***``, before it is decoded (a password
    a server echoes in Latin-1 would not survive decoding as UTF-8 whole enough to be found)."""
    for form in _KNOWN_BYTES:
        if form in data:
            data = data.replace(form, REDACTED.encode())
    return data
