"""POP3 client session (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS) speaking exact bytes."""

from __future__ import annotations

import re
import ssl
from base64 import b64encode
from hashlib import md5
from dataclasses import dataclass

from mailconform.wire.connection import Connection
from mailconform.wire.errors import EndlessReply, MalformedReply
from mailconform.wire.secret import REDACTED, Secret, line_bytes, reveal
from mailconform.wire.transcript import excerpt
from mailconform.wire.session import MailboxCommands, Session

MAX_MULTILINE_OCTETS = 16 * 1024 * 1024  # a whole message (RETR)
MAX_HEADER_OCTETS = 1024 * 1024          # headers (TOP n 0), capabilities, listings
MAX_MULTILINE_LINES = 500_000            # a 100 000-message LIST fits; an endless one does not
_STATUS = re.compile(rb"^(\+OK|-ERR)(?: (.*))?\r?\n$", re.S)
_RESP_CODE = re.compile(r"^\[([A-Z0-9/-]+)\]")
#: RFC 1939 §7: the APOP timestamp in the greeting, "a msg-id as defined in RFC 822".
_TIMESTAMP = re.compile(r"<[^<>\s]*@[^<>\s]*>")
#: RFC 1939 §7 (UIDL): "The unique-id of a message is an arbitrary server-determined string,
#: consisting of one to 70 characters in the range 0x21 to 0x7E".
_UNIQUE_ID = re.compile(r"[\x21-\x7e]{1,70}")


@dataclass(frozen=True)
class Pop3Reply:
    """A status line (``+OK`` / ``-ERR``) and, for multi-line replies, the un-stuffed lines."""

    ok: bool
    text: str
    lines: tuple[bytes, ...] = ()   # multi-line body, line ends removed, dot-unstuffed
    octets: int = 0                 # size of the body as it would be stored (lines + CRLF each)

    @property
    def resp_code(self) -> str | None:
        """The RFC 2449 §8 response code, e.g. ``"AUTH"`` or ``"SYS/TEMP"``."""
        match = _RESP_CODE.match(self.text)
        return match.group(1) if match else None

    def __str__(self) -> str:
        status = "+OK" if self.ok else "-ERR"
        return f"{status} {self.text}".rstrip() + (f" (+{len(self.lines)} lines)" if self.lines else "")


def parse_status(line: bytes) -> Pop3Reply:
    """``b"+OK 2 320\\r\\n"`` → Pop3Reply; status indicators MUST be upper case (RFC 1939 §3)."""
    match = _STATUS.match(line)
    if not match:
        raise MalformedReply(f"not a POP3 status line (+OK / -ERR): {excerpt(line)}")
    return Pop3Reply(match.group(1) == b"+OK", (match.group(2) or b"").rstrip(b"\r\n").decode("utf-8", "replace"))


def _without_line_end(line: bytes) -> bytes:
    """The line without exactly one CRLF (or bare LF); a CR inside the line is content."""
    return line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line


def unstuff(line: bytes) -> bytes | None:
    """One multi-line response line (no line end) → its content; None for the terminating ``.``."""
    if line == b".":
        return None
    return line[1:] if line.startswith(b".") else line


class Pop3Session(MailboxCommands, Session):
    """A lock-step POP3 session."""

    def __init__(self, connection: Connection, greeting: Pop3Reply):
        super().__init__(connection, greeting)
        self.capabilities: dict[str, str] | None = None

    @classmethod
    def read_greeting(cls, connection: Connection) -> Pop3Reply:
        return parse_status(connection.readline(connection.deadline()))

    def command(self, line: str | Secret, redacted: str | None = None, deadline: float | None = None) -> Pop3Reply:
        """Send one command, read its status line (within ``deadline``, else the timeout)."""
        self.connection.send(line_bytes(line), redacted)
        return parse_status(self.connection.readline(deadline or self.connection.deadline()))

    def multiline(self, line: str, cap: int = MAX_HEADER_OCTETS) -> Pop3Reply:
        """A command whose +OK is followed by dot-terminated, byte-stuffed lines (RFC 1939 §3);
        the whole reply must arrive within one timeout, and within ``cap`` octets and
        MAX_MULTILINE_LINES lines (else :class:`EndlessReply`)."""
        deadline = self.connection.deadline()
        status = self.command(line, deadline=deadline)
        if not status.ok:
            return status
        lines: list[bytes] = []
        octets = 0
        while True:
            content = unstuff(_without_line_end(self.connection.readline(deadline)))
            if content is None:
                return Pop3Reply(True, status.text, tuple(lines), octets)
            lines.append(content)
            octets += len(content) + 2
            if octets > cap or len(lines) > MAX_MULTILINE_LINES:
                self.connection.timed_out = True  # do not wait for the rest of it again
                raise EndlessReply(f"{self.connection.endpoint}: the reply to {line.split()[0]} went on past {min(octets, cap)} octets and "
                                   f"{len(lines)} lines (cap {cap} octets, {MAX_MULTILINE_LINES} lines)",
                                   self.connection.service)

    def capa(self) -> Pop3Reply:
        reply = self.multiline("CAPA")
        self.capabilities = {}
        for line in reply.lines if reply.ok else ():
            name, _, args = line.decode("utf-8", "replace").strip().partition(" ")
            self.capabilities[name.upper()] = args
        return reply

    def stls(self, context: ssl.SSLContext, server_name: str) -> Pop3Reply:
        """STLS; on +OK the handshake follows and capabilities are forgotten (RFC 2595 §4)."""
        reply = self.command("STLS")
        if reply.ok:
            self.connection.start_tls(context, server_name)
            self.capabilities = None
        return reply

    def accepts_quit(self, reply: Pop3Reply) -> bool:
        return reply.ok

    def user(self, name: str) -> Pop3Reply:
        return self.command(f"USER {name}")

    def pass_(self, password: str | Secret) -> Pop3Reply:
        return self.command(Secret(f"PASS {reveal(password)}"), redacted=f"PASS {REDACTED}")

    def login(self, user: str, password: str | Secret) -> Pop3Reply:
        """USER then PASS; the reply to USER when it is refused, else the reply to PASS."""
        reply = self.user(user)
        return self.pass_(password) if reply.ok else reply

    def apop(self, user: str, password: str | Secret) -> Pop3Reply:
        """APOP (RFC 1939 §7): the MD5 digest of the greeting's timestamp and the password, which is
        never recorded.  A greeting without a timestamp raises ValueError (nothing is sent)."""
        stamp = apop_timestamp(self.greeting.text)
        if stamp is None:
            raise ValueError("the greeting carries no APOP timestamp")
        digest = md5((stamp + reveal(password)).encode()).hexdigest()
        return self.command(Secret(f"APOP {user} {digest}"), redacted=f"APOP {user} {REDACTED}")

    def auth_plain(self, user: str, password: str | Secret) -> Pop3Reply:
        """AUTH PLAIN with the initial response on the command line (RFC 5034 §4, RFC 4616); the
        payload is never recorded.  A server that answers with an empty challenge (``+``) instead
        gets the same payload as its response."""
        payload = b64encode(f"\0{user}\0{reveal(password)}".encode()).decode()
        self.connection.send(line_bytes(Secret(f"AUTH PLAIN {payload}")), f"AUTH PLAIN {REDACTED}")
        deadline = self.connection.deadline()
        line = self.connection.readline(deadline)
        if line.startswith(b"+ ") or line.rstrip(b"\r\n") == b"+":
            self.connection.send(line_bytes(Secret(payload)), REDACTED)
            line = self.connection.readline(deadline)
        return parse_status(line)

    def stat(self) -> Pop3Reply:
        return self.command("STAT")

    def list(self, number: int | None = None) -> Pop3Reply:
        return self.command(f"LIST {number}") if number is not None else self.multiline("LIST", MAX_MULTILINE_OCTETS)

    def message_numbers(self) -> list[int]:
        """The numbers LIST shows (malformed listing lines are skipped; [] on -ERR)."""
        listing = self.list()
        scans = [parse_scan_listing(line) for line in listing.lines] if listing.ok else []
        return [scan[0] for scan in scans if scan]

    def uidl(self, number: int | None = None) -> Pop3Reply:
        """UIDL for one message (a status line) or for all (a multi-line unique-id listing)."""
        return self.command(f"UIDL {number}") if number is not None else self.multiline("UIDL", MAX_MULTILINE_OCTETS)

    def retr(self, number: int) -> Pop3Reply:
        return self.multiline(f"RETR {number}", MAX_MULTILINE_OCTETS)

    def top(self, number: int, lines: int) -> Pop3Reply:
        return self.multiline(f"TOP {number} {lines}")

    def dele(self, number: int) -> Pop3Reply:
        return self.command(f"DELE {number}")


def parse_scan_listing(text: bytes | str) -> tuple[int, int] | None:
    """``"1 320"`` → (1, 320): RFC 1939 §5 scan (and drop) listing, "a single space" between the
    numbers; the RFC "makes no requirement on what follows" the size.  None when malformed."""
    value = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    match = re.fullmatch(r"(\d+) (\d+)(?: .*)?", value.rstrip("\r\n"))
    return (int(match.group(1)), int(match.group(2))) if match else None


def parse_unique_id_listing(text: bytes | str) -> tuple[int, str] | None:
    """``"1 whqtswO00WBw418f9t5JxYwZ"`` → (1, "whqtswO00WBw418f9t5JxYwZ"): RFC 1939 §7 unique-id
    listing, the message number, a single space and the unique-id (1–70 octets 0x21–0x7E)."""
    value = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    number, _, unique_id = value.rstrip("\r\n").partition(" ")
    if not number.isdigit() or not _UNIQUE_ID.fullmatch(unique_id):
        return None
    return int(number), unique_id


def apop_timestamp(greeting_text: str) -> str | None:
    """The ``<...@...>`` timestamp of an APOP-capable server's greeting (RFC 1939 §7), or None."""
    match = _TIMESTAMP.search(greeting_text)
    return match.group(0) if match else None


def capabilities_listed(capabilities: dict[str, str]) -> str:
    """A CAPA list as the messages show it: ``USER, SASL PLAIN, STLS``."""
    return ", ".join(f"{name} {args}".strip() for name, args in capabilities.items()) or "(nothing)"
