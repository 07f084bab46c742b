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

    def as_bytes(self) -> bytes:
        """The message as it goes into DATA, before dot-stuffing (CRLF line ends)."""
        headers = (
            f"From: <{self.sender}>",
            f"To: <{self.recipient}>",
            f"Subject: mailconform probe {self.token}",
            f"Message-ID: <{self.token}@mailconform.example.com>",
            f"Date: {formatdate(localtime=False)}",
        )
        return b"\r\n".join([h.encode() for h in headers] + [b""] + list(self.body_lines)) + b"\r\n"


def body_of(lines: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The body of a message given as lines: everything after the first empty line."""
    if b"" not in lines:
        return ()
    return lines[lines.index(b"") + 1:]
