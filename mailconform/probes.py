"""The messages the suite sends: unique, traceable, and built to exercise dot-stuffing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.utils import formatdate

#: Body lines that start with a dot, or are a lone dot: SMTP must un-stuff them (RFC 5321 §4.5.2)
#: and POP3 must stuff them again on the way out (RFC 1939 §3).
BODY_LINES = (
    "This message was sent by mailconform, a mail server conformance suite.",
    ".this line starts with one dot",
    "..this one starts with two",
    ".",
    "the line above is a lone dot; this is the last line",
)


@dataclass(frozen=True)
class ProbeMessage:
    sender: str
    recipient: str
    token: str

    @classmethod
    def new(cls, sender: str, recipient: str) -> "ProbeMessage":
        return cls(sender, recipient, "mc-" + secrets.token_hex(8))

    @property
    def body_lines(self) -> tuple[bytes, ...]:
        return tuple(line.encode() for line in BODY_LINES)

    def headers(self, subject: str | None = None) -> tuple[bytes, ...]:
        """Its header lines; the token is in the Subject and the Message-ID."""
        return tuple(h.encode() for h in (
            f"From: <{self.sender}>",
            f"To: <{self.recipient}>",
            f"Subject: {subject or 'mailconform probe'} {self.token}",
            f"Message-ID: <{self.token}@mailconform.example.com>",
            f"Date: {formatdate(localtime=False)}",
        ))

    def as_bytes(self) -> bytes:
        """The message as it goes into DATA, before dot-stuffing (CRLF line ends)."""
        return b"\r\n".join([*self.headers(), b"", *self.body_lines]) + b"\r\n"

    @property
    def ehlo_name(self) -> str:
        """A client name (EHLO) of its own, so the trace field of its connection can be told apart."""
        return f"{self.token}.mailconform.example.com"


@dataclass(frozen=True)
class SmugglingProbe:
    """A message whose body ends in an odd end-of-data sequence followed by a whole second SMTP
    transaction (catalogue §4.3): a server that takes the odd sequence for the end of the message
    reads that transaction as commands, and stores a second, smuggled message."""

    first: ProbeMessage
    second: ProbeMessage   # what the smuggled transaction would deliver: its own token
    end: bytes             # the odd end-of-data candidate, e.g. b"\n.\r\n"

    @classmethod
    def new(cls, sender: str, recipient: str, end: bytes) -> "SmugglingProbe":
        return cls(ProbeMessage.new(sender, recipient), ProbeMessage.new(sender, recipient), end)

    def content(self) -> bytes:
        """The first message: headers and one body line, without a line end (``end`` follows it)."""
        body = b"mailconform SMTP smuggling probe: what follows must stay in this message's body"
        return b"\r\n".join([*self.first.headers("mailconform smuggling probe 1"), b"", body])

    def smuggled(self) -> bytes:
        """The harmless second transaction after ``end``, to the same account, without the final
        line end (the real end of the message, <CRLF>.<CRLF>, is sent later, and alone)."""
        lines = (f"MAIL FROM:<{self.second.sender}>".encode(), f"RCPT TO:<{self.second.recipient}>".encode(),
                 b"DATA", *self.second.headers("mailconform smuggling probe 2 (smuggled)"), b"",
                 b"this message was smuggled inside another one")
        return b"\r\n".join(lines)


def header_lines(lines: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The header lines of a message given as lines: everything before the first empty line."""
    lines = tuple(lines)
    return lines[:lines.index(b"")] if b"" in lines else lines


def body_of(lines: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The body of a message given as lines: everything after the first empty line."""
    if b"" not in lines:
        return ()
    return lines[lines.index(b"") + 1:]
