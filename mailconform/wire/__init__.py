"""The wire layer: raw SMTP / POP3 / IMAP sessions over real sockets, with transcripts.

It speaks exact bytes and records them; it never decides whether a server passes."""

from mailconform.wire.errors import (  # noqa: F401
    ConnectFailed, ConnectionClosed, EndlessReply, MalformedReply, ReplyTimeout, ReplyTooLong, TlsFailed, WireError,
)
from mailconform.wire.imap import ImapResponse, ImapSession  # noqa: F401
from mailconform.wire.pop3 import Pop3Reply, Pop3Session  # noqa: F401
from mailconform.wire.smtp import SmtpReply, SmtpSession  # noqa: F401
from mailconform.wire.transcript import Transcript  # noqa: F401
