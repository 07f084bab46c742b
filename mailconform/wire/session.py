"""What every protocol session shares: opening the connection and reading the greeting."""

from __future__ import annotations

import ssl

from mailconform.wire.budget import ConnectionBudget
from mailconform.wire.connection import Connection
from mailconform.wire.errors import WireError
from mailconform.wire.transcript import Transcript


class Session:
    """A connection plus the server's greeting; subclasses say how a greeting is read."""

    def __init__(self, connection: Connection, greeting):
        self.connection = connection
        self.greeting = greeting

    @classmethod
    def read_greeting(cls, connection: Connection):
        raise NotImplementedError

    @classmethod
    def connect(cls, host: str, port: int, *, timeout: float, transcript: Transcript, source: str | None = None,
                tls: ssl.SSLContext | None = None, server_name: str | None = None,
                budget: ConnectionBudget | None = None, service: str | None = None):
        """Open the connection (TLS first for implicit TLS) and read the greeting, whatever it says."""
        connection = Connection.open(host, port, timeout=timeout, transcript=transcript, source=source,
                                     tls=tls, server_name=server_name, budget=budget, service=service)
        try:
            return cls(connection, cls.read_greeting(connection))
        except Exception:
            connection.close()
            raise

    @property
    def transcript(self) -> Transcript:
        return self.connection.transcript

    def close(self) -> None:
        self.connection.close()

    def finish(self) -> None:
        """Say goodbye (best effort) and close: for sessions whose ending nobody judges.  A server
        that let a reply time out is not asked again: its QUIT would cost another timeout."""
        if not self.connection.closed and not self.connection.timed_out:
            try:
                self.quit()
            except WireError:
                pass
        self.close()


class MailboxCommands:
    """NOOP, RSET and QUIT: the same verbs in SMTP and POP3, each answered by one reply."""

    def command(self, line: str, redacted: str | None = None):
        raise NotImplementedError

    def noop(self):
        return self.command("NOOP")

    def rset(self):
        return self.command("RSET")

    def quit(self):
        """QUIT; once it is accepted the server closes, so the connection's budget slot is free again."""
        reply = self.command("QUIT")
        if self.accepts_quit(reply):
            self.connection.ended()
        return reply

    def accepts_quit(self, reply) -> bool:
        raise NotImplementedError
