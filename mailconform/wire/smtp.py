"""SMTP client session (RFC 5321) speaking exact bytes, lock-step, with a transcript."""

from __future__ import annotations

import re
import ssl
import time
from base64 import b64encode
from dataclasses import dataclass

from mailconform.wire.connection import Connection
from mailconform.wire.errors import MalformedReply, ReplyTimeout, ReplyTooLong
from mailconform.wire.secret import REDACTED, Secret, line_bytes, reveal
from mailconform.wire.transcript import excerpt
from mailconform.wire.session import MailboxCommands, Session

DEFAULT_EHLO_NAME = "mailconform.example.com"
MAX_REPLY_LINES = 200
#: The end of a message is answered after the server has stored (and perhaps filtered) it: RFC 5321
#: §4.5.3.2.6 gives it 10 minutes; the suite waits this many timeouts, and a slow answer is not a stall.
END_OF_DATA_PATIENCE = 3
END_OF_DATA = b"\r\n.\r\n"  # <CRLF>.<CRLF>: the line end of the last line, a lone dot, its line end
#: Once unasked replies have started to come, listening stops after this many seconds of quiet.
SETTLE = 0.3
_LINE = re.compile(rb"^([0-9]{3})([ -].*)?\r?\n$", re.S)
_CODE = re.compile(r"^[2-5][0-5][0-9]$")  # RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s|$)")


@dataclass(frozen=True)
class SmtpReply:
    """One complete (possibly multi-line) reply."""

    code: int
    lines: tuple[str, ...]  # the text of each line, after the code and separator
    bare_lf: bool = False   # some line ended in LF alone (RFC 5321 §2.3.8 wants CRLF)

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code of the first line, e.g. ``"5.7.1"``."""
        match = _ENHANCED.match(self.lines[0]) if self.lines else None
        return ".".join(match.groups()) if match else None

    @property
    def is_multiline(self) -> bool:
        return len(self.lines) > 1

    def __str__(self) -> str:
        first = f"{self.code} {self.lines[0]}".rstrip() if self.lines else str(self.code)
        return first + (f" (+{len(self.lines) - 1} more lines)" if self.is_multiline else "")


def parse_reply_line(line: bytes) -> tuple[int, bool, str]:
    """``b"250-SIZE 100\\r\\n"`` → (250, more_follows, "SIZE 100"); RFC 5321 §4.2 reply syntax."""
    match = _LINE.match(line)
    if not match:
        raise MalformedReply(f"not an SMTP reply line: {excerpt(line)}")
    if not _CODE.match(match.group(1).decode()):
        raise MalformedReply(f"reply code {match.group(1).decode()} is not a valid code: first digit 2-5, "
                             "second digit 0-5 (RFC 5321 §4.2)")
    code = int(match.group(1))
    rest = (match.group(2) or b"").rstrip(b"\r\n")
    more = rest.startswith(b"-")
    return code, more, rest[1:].decode("utf-8", errors="replace")


def parse_reply(lines: list[bytes]) -> SmtpReply:
    """A whole reply from its raw lines; every line must carry the same code (RFC 5321 §4.2.1)."""
    code = None
    texts = []
    bare_lf = any(not line.endswith(b"\r\n") for line in lines)
    for i, line in enumerate(lines):
        line_code, more, text = parse_reply_line(line)
        if code is not None and line_code != code:
            raise MalformedReply(f"a multi-line reply mixes codes {code} and {line_code} (RFC 5321 §4.2.1)")
        if more == (i == len(lines) - 1):
            raise MalformedReply("continuation marks ('-') do not match the reply's last line")
        code = line_code
        texts.append(text)
    if code is None:
        raise MalformedReply("an empty reply")
    return SmtpReply(code, tuple(texts), bare_lf)


@dataclass(frozen=True)
class Heard:
    """What a server sent without being asked, within a listening window (see :meth:`SmtpSession.listen`)."""

    replies: tuple[SmtpReply, ...]  # the complete replies, in order
    closed: bool                    # the server closed the connection
    partial: bytes = b""            # bytes after the last complete reply (no reply of their own)

    @property
    def silent(self) -> bool:
        return not self.replies and not self.partial and not self.closed

    def __str__(self) -> str:
        shown = [str(reply) for reply in self.replies] + ([excerpt(self.partial)] if self.partial else [])
        return " / ".join(shown + (["(connection closed)"] if self.closed else [])) or "(nothing)"


def parse_replies(data: bytes) -> tuple[tuple[SmtpReply, ...], bytes]:
    """Bytes holding whole replies (and perhaps the start of one more) → (the replies, the rest)."""
    replies, lines = [], []
    pieces = data.split(b"\n")  # on LF only: a CR alone is no line end
    for line in [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else []):
        if not line.endswith(b"\n"):
            return tuple(replies), b"".join(lines) + line
        lines.append(line)
        if not parse_reply_line(line)[1]:
            replies.append(parse_reply(lines))
            lines = []
    return tuple(replies), b"".join(lines)


def parse_ehlo_keywords(reply: SmtpReply) -> dict[str, str]:
    """EHLO reply lines after the first → {KEYWORD: parameters} (RFC 5321 §4.1.1.1)."""
    keywords = {}
    for line in reply.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            keywords[keyword.upper()] = params.strip()
    return keywords


def dot_stuff(message: bytes) -> bytes:
    """Message bytes (CRLF lines) → DATA payload: lines starting with "." doubled, then CRLF.CRLF."""
    body = message if message.endswith(b"\r\n") else message + b"\r\n"
    stuffed = b"".join(b"." + line if line.startswith(b".") else line for line in body.splitlines(keepends=True))
    return stuffed + b".\r\n"


class SmtpSession(MailboxCommands, Session):
    """A lock-step SMTP session: each method sends one command and reads its whole reply."""

    def __init__(self, connection: Connection, greeting: SmtpReply):
        super().__init__(connection, greeting)
        self.extensions: dict[str, str] = {}

    @classmethod
    def read_greeting(cls, connection: Connection) -> SmtpReply:
        return read_reply(connection)

    def read_reply(self) -> SmtpReply:
        return read_reply(self.connection)

    def command(self, line: str | Secret, redacted: str | None = None) -> SmtpReply:
        self.connection.send(line_bytes(line), redacted)
        return self.read_reply()

    def send_raw(self, data: bytes) -> None:
        """Send exactly these bytes (for probes that need bare LF, pipelining…)."""
        self.connection.send(data)

    def accepts_quit(self, reply: SmtpReply) -> bool:
        return reply.code == 221

    def ehlo(self, name: str = DEFAULT_EHLO_NAME) -> SmtpReply:
        reply = self.command(f"EHLO {name}")
        self.extensions = parse_ehlo_keywords(reply) if reply.code == 250 else {}
        return reply

    def helo(self, name: str = DEFAULT_EHLO_NAME) -> SmtpReply:
        self.extensions = {}
        return self.command(f"HELO {name}")

    def mail(self, sender: str, params: str = "") -> SmtpReply:
        return self.command(f"MAIL FROM:<{sender}>" + (f" {params}" if params else ""))

    def rcpt(self, recipient: str) -> SmtpReply:
        return self.command(f"RCPT TO:<{recipient}>")

    def data(self) -> SmtpReply:
        return self.command("DATA")

    def send_message(self, message: bytes) -> SmtpReply:
        """After a 354: send the dot-stuffed message and the end-of-data mark, read the reply."""
        self.connection.send(dot_stuff(message))
        return self._end_of_data_reply()

    def send_data(self, content: bytes, end: bytes = END_OF_DATA, then: bytes = b"") -> None:
        """After a 354: send ``content`` exactly as given (no dot-stuffing, no line end added), then
        ``end`` — the standard <CRLF>.<CRLF> or any other sequence a probe offers as the end of the
        message — then ``then``, all in one write.  Nothing is read: :meth:`listen` hears what the
        server makes of it, :meth:`end_data` ends the message for real."""
        self.connection.send(content + end + then)

    def end_data(self, end: bytes = END_OF_DATA) -> SmtpReply:
        """Send the end-of-data sequence (after :meth:`send_data`) and read the reply to the message."""
        self.connection.send(end)
        return self._end_of_data_reply()

    def listen(self, wait: float, settle: float = SETTLE) -> Heard:
        """What the server sends unasked within ``wait`` seconds: its complete replies, whether it
        closed the connection, and any bytes that make no whole reply.  Once something has come,
        listening stops after ``settle`` seconds of quiet (a reply may be followed by another)."""
        deadline = time.monotonic() + wait
        data = b""
        while not self.connection.closed:
            remaining = deadline - time.monotonic()
            if data:
                remaining = min(remaining, settle)
            if remaining <= 0:
                break
            chunk = self.connection.pending(remaining)
            if not chunk:
                break
            data += chunk
        replies, partial = parse_replies(data)
        return Heard(replies, self.connection.closed, partial)

    def _end_of_data_reply(self) -> SmtpReply:
        try:
            return read_reply(self.connection, END_OF_DATA_PATIENCE)
        except ReplyTimeout as slow:
            raise ReplyTimeout(f"{slow} after the end of the message (RFC 5321 §4.5.3.2.6 allows a server up to "
                               "10 minutes there)", service=slow.service) from None

    def starttls(self, context: ssl.SSLContext, server_name: str) -> SmtpReply:
        """STARTTLS; on 220 the handshake follows and the extension list is forgotten (RFC 3207 §4.2)."""
        reply = self.command("STARTTLS")
        if reply.code == 220:
            self.connection.start_tls(context, server_name)
            self.extensions = {}
        return reply

    def auth_plain(self, user: str, password: str | Secret) -> SmtpReply:
        """AUTH PLAIN with an initial response (RFC 4954, RFC 4616); the payload is never recorded."""
        return self.command(Secret("AUTH PLAIN " + b64encode(f"\0{user}\0{reveal(password)}".encode()).decode()),
                            redacted=f"AUTH PLAIN {REDACTED}")


def read_reply(connection: Connection, patience: float = 1) -> SmtpReply:
    """Read lines until the last line of one reply; the whole reply must come within ``patience``
    timeouts."""
    deadline = connection.deadline(max(patience, connection.patience) * connection.timeout)
    lines = []
    while True:
        line = connection.readline(deadline)
        lines.append(line)
        _, more, _ = parse_reply_line(line)
        if not more:
            return parse_reply(lines)
        if len(lines) >= MAX_REPLY_LINES:
            raise ReplyTooLong(f"a reply of more than {MAX_REPLY_LINES} lines")
