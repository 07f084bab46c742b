"""What can go wrong on the wire.  The wire layer raises these; it never decides a verdict."""


class WireError(Exception):
    """Base of every wire-level problem."""


class ConnectFailed(WireError):
    """The TCP connection could not be made.

    ``kind``: "refused" (nothing listens), "timeout", "unreachable", "unresolvable", or
    "not-loopback" (refused by the suite itself in loopback-only mode)."""

    def __init__(self, endpoint: str, kind: str, detail: str):
        self.endpoint = endpoint
        self.kind = kind
        self.detail = detail
        super().__init__(f"could not connect to {endpoint}: {detail}")


class ReplyTimeout(WireError):
    """No complete reply arrived within the time allowed.  ``stalled``: the server had answered on
    this connection before (a greeting at least), then went quiet — a server that stopped working,
    not one that cannot be reached."""

    def __init__(self, message: str, stalled: bool = False, service: str | None = None):
        self.stalled = stalled
        self.service = service
        super().__init__(message)


class ConnectionClosed(WireError):
    """The server closed the connection while a reply was expected."""


class MalformedReply(WireError):
    """The bytes that came back do not follow the protocol's reply syntax."""


class ReplyTooLong(MalformedReply):
    """A reply line or a whole reply exceeded the size cap."""


class EndlessReply(ReplyTooLong):
    """A multi-line data reply (a POP3 RETR, TOP, LIST…) went past its cap: the server would go on
    streaming.  ``service`` names the target's service, which is not asked again this run."""

    def __init__(self, message: str, service: str | None = None):
        self.service = service
        super().__init__(message)


class TlsFailed(WireError):
    """The TLS handshake failed; ``unverified``: it failed only because the server's certificate did not
    verify (against the trust anchor, for the name) — where TLS is opportunistic that is a warning."""

    def __init__(self, message: str, unverified: bool = False):
        self.unverified = unverified
        super().__init__(message)
