"""IMAP client session (RFC 3501 / RFC 9051): tagged commands, untagged data, literals."""

from __future__ import annotations

import re
import ssl
from base64 import b64encode
from dataclasses import dataclass, field

from mailconform.wire.connection import Connection
from mailconform.wire.errors import MalformedReply, ReplyTooLong
from mailconform.wire.secret import REDACTED, Secret, line_bytes, reveal
from mailconform.wire.transcript import excerpt
from mailconform.wire.session import Session

MAX_LITERAL = 16 * 1024 * 1024
MAX_UNTAGGED = 10_000
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_TAGGED = re.compile(r"^(\S+) (OK|NO|BAD)(?: (.*))?$", re.I)
_UNTAGGED_STATUS = re.compile(r"^\* (OK|NO|BAD|PREAUTH|BYE)(?: (.*))?$", re.I)


@dataclass(frozen=True)
class ImapResponse:
    """The tagged completion of one command and the untagged responses that came before it."""

    tag: str
    status: str                       # OK, NO, BAD (tagged); OK, PREAUTH, BYE… for a greeting
    text: str
    untagged: tuple[str, ...] = field(default=())  # each untagged response, literals inlined

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def resp_code(self) -> str | None:
        """The bracketed response code, e.g. ``"PRIVACYREQUIRED"`` or ``"CAPABILITY IMAP4rev1 …"``."""
        match = re.match(r"^\[([^\]]*)\]", self.text)
        return match.group(1) if match else None

    def __str__(self) -> str:
        return f"{self.tag} {self.status} {self.text}".rstrip()


def parse_status_line(line: str) -> tuple[str, str, str]:
    """``"a1 OK done"`` or ``"* OK ready"`` → (tag, STATUS, text)."""
    match = _UNTAGGED_STATUS.match(line) or _TAGGED.match(line)
    if not match:
        raise MalformedReply(f"not an IMAP status response: {excerpt(line)}")
    if line.startswith("* "):
        return "*", match.group(1).upper(), match.group(2) or ""
    return match.group(1), match.group(2).upper(), match.group(3) or ""


def capabilities_from(text: str) -> set[str]:
    """``"CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN"`` → {"IMAP4REV1", "STARTTLS", "AUTH=PLAIN"}."""
    words = text.split()
    if not words or words[0].upper() != "CAPABILITY":
        return set()
    return {w.upper() for w in words[1:]}


class ImapSession(Session):
    """A lock-step IMAP session with its own tag counter."""

    def __init__(self, connection: Connection, greeting: ImapResponse):
        super().__init__(connection, greeting)
        self.counter = 0
        self.capabilities: set[str] = capabilities_from(greeting.resp_code or "")

    @classmethod
    def read_greeting(cls, connection: Connection) -> ImapResponse:
        line = read_response_line(connection, connection.deadline())
        tag, status, text = parse_status_line(line)
        if tag != "*":
            raise MalformedReply(f"the greeting must be untagged: {excerpt(line)}")
        return ImapResponse("*", status, text)

    def next_tag(self) -> str:
        self.counter += 1
        return f"a{self.counter}"

    def command(self, line: str | Secret, redacted: str | None = None) -> ImapResponse:
        """Send ``TAG line`` and read untagged responses up to the tagged one."""
        tag = self.next_tag()
        tagged = Secret(f"{tag} {reveal(line)}") if isinstance(line, Secret) else f"{tag} {line}"
        self.connection.send(line_bytes(tagged), f"{tag} {redacted}" if redacted else None)
        return self.read_tagged(tag)

    def _remember_capabilities(self, response: ImapResponse) -> None:
        for line in response.untagged:
            if line[2:].upper().startswith("CAPABILITY "):
                self.capabilities = capabilities_from(line[2:])
        if response.resp_code and response.resp_code.upper().startswith("CAPABILITY "):
            self.capabilities = capabilities_from(response.resp_code)

    def capability(self) -> ImapResponse:
        return self.command("CAPABILITY")

    def starttls(self, context: ssl.SSLContext, server_name: str) -> ImapResponse:
        """STARTTLS; on OK the handshake follows and capabilities are forgotten (RFC 3501 §6.2.1)."""
        response = self.command("STARTTLS")
        if response.ok:
            self.connection.start_tls(context, server_name)
            self.capabilities = set()
        return response

    def login(self, user: str, password: str | Secret) -> ImapResponse:
        return self.command(Secret(f"LOGIN {quote(user)} {quote(reveal(password))}"),
                            redacted=f"LOGIN {quote(user)} {REDACTED}")

    def authenticate_plain(self, user: str, password: str | Secret, initial: bool = True) -> ImapResponse:
        """AUTHENTICATE PLAIN (RFC 3501 §6.2.2, RFC 4616): with the initial response on the command
        line when ``initial`` (SASL-IR, RFC 4959), else after the server's ``+`` continuation.  The
        payload is never recorded."""
        payload = b64encode(f"\0{user}\0{reveal(password)}".encode()).decode()
        if initial:
            return self.command(Secret(f"AUTHENTICATE PLAIN {payload}"), redacted=f"AUTHENTICATE PLAIN {REDACTED}")
        tag = self.next_tag()
        self.connection.send(line_bytes(f"{tag} AUTHENTICATE PLAIN"))
        return self.read_tagged(tag, lambda: self.connection.send(line_bytes(Secret(payload)), REDACTED))

    def send_raw(self, data: bytes) -> None:
        """Send exactly these bytes (for probes such as pipelined plaintext after STARTTLS)."""
        self.connection.send(data)

    def read_tagged(self, tag: str, continue_with=None) -> ImapResponse:
        """Read untagged responses up to the tagged response ``tag``, all within one timeout.  A
        ``+`` continuation request is answered by ``continue_with()``; without one it is malformed."""
        deadline = self.connection.deadline()
        untagged: list[str] = []
        while True:
            response = read_response_line(self.connection, deadline)
            if response.startswith("+"):
                if continue_with is None:
                    raise MalformedReply(f"an unexpected continuation request: {excerpt(response)}")
                continue_with()
                continue
            if response.startswith("* "):
                untagged.append(response)
                if len(untagged) > MAX_UNTAGGED:
                    raise ReplyTooLong(f"more than {MAX_UNTAGGED} untagged responses")
                continue
            got_tag, status, text = parse_status_line(response)
            if got_tag != tag:
                raise MalformedReply(f"a tagged response for {excerpt(got_tag, 20)} while waiting for {tag!r}")
            result = ImapResponse(tag, status, text, tuple(untagged))
            self._remember_capabilities(result)
            return result

    def logout(self) -> ImapResponse:
        return self.command("LOGOUT")

    def quit(self) -> ImapResponse:
        """IMAP's goodbye is LOGOUT (the name every session's ``finish()`` calls)."""
        return self.logout()


def quote(value: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_response_line(connection: Connection, deadline: float) -> str:
    """One response line with any ``{n}`` literals read and inlined (RFC 3501 §4.3)."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = connection.readline(deadline)
        literal = _LITERAL.search(line)
        if not literal:
            parts.append(line.rstrip(b"\r\n"))
            return b"".join(parts).decode("utf-8", "replace")
        size = int(literal.group(1))
        total += size
        if total > MAX_LITERAL:
            raise ReplyTooLong(f"literals larger than {MAX_LITERAL} octets")
        parts.append(line[: literal.start()])
        parts.append(connection.read_exact(size, deadline))
