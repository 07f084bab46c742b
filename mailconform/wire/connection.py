"""One TCP (optionally TLS) connection with bounded, timed, line-oriented reads."""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import ssl
import threading
import time

from mailconform.wire.budget import ConnectionBudget
from mailconform.wire.errors import ConnectFailed, ConnectionClosed, ReplyTimeout, ReplyTooLong, TlsFailed
from mailconform.wire.secret import Secret, reveal
from mailconform.wire.transcript import Transcript

MAX_LINE = 8192  # octets; RFC 5321 and RFC 1939 allow 512, real servers stay far below this
#: A server that sends less than this (octets per second of the timeout) while a reply is awaited
#: has stalled — silent, or dripping a byte at a time; a long reply that flows is only slow.
STALL_RATE = 1024
#: Timeouts a reply to credentials (PASS, APOP, AUTH, LOGIN: whatever is sent as a Secret) may take:
#: servers delay a refused login on purpose (Dovecot auth_failure_delay 2 s, Courier 5 s), and that
#: delay is no stall.
CREDENTIALS_PATIENCE = 3
LOOPBACK_ONLY_ENV = "MAILCONFORM_LOOPBACK_ONLY"  # set (the self-tests do): refuse any other address


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_only() -> bool:
    return bool(os.environ.get(LOOPBACK_ONLY_ENV))


class Connection:
    """A socket that never blocks longer than its timeout and records everything it moves."""

    def __init__(self, sock: socket.socket, transcript: Transcript, timeout: float, max_line: int = MAX_LINE,
                 release=lambda: None, service: str | None = None):
        self.sock = sock
        self.service = service     # the target's service it talks to, named in a stall
        self.endpoint = endpoint_of(sock)
        self._release = release  # gives the budget's slot back once the connection is over
        self.transcript = transcript
        self.timeout = timeout
        self.max_line = max_line
        self._data = bytearray()  # received, not yet read past self._pos
        self._pos = 0
        self.closed = False
        self.answered = False      # a whole line has come back (a greeting at least)
        self.timed_out = False     # a reply did not come in time: nothing more is asked
        self.last_command = ""     # what the client sent last, as the transcript shows it
        self._received_since_send = 0  # octets that came back since the client last sent something
        self._sent_at = time.monotonic()  # when the client last sent something (or connected)
        self.patience = 1          # timeouts the reply to what was sent last may take

    @classmethod
    def open(cls, host: str, port: int, *, timeout: float, transcript: Transcript, source: str | None = None,
             tls: ssl.SSLContext | None = None, server_name: str | None = None,
             budget: ConnectionBudget | None = None, service: str | None = None) -> "Connection":
        """Connect (and, for implicit TLS, handshake) or raise :class:`ConnectFailed` / :class:`TlsFailed`.

        With a ``budget``, the connection waits for its turn and holds one of its slots until closed."""
        endpoint = f"{host}:{port}"
        if loopback_only() and not is_loopback(host):
            raise _connect_failed(transcript, endpoint, "not-loopback",
                                  f"{host} is not a loopback address and {LOOPBACK_ONLY_ENV} is set")
        release = budget.acquire(endpoint) if budget else (lambda: None)
        try:
            sock = cls._connect(host, port, endpoint, timeout, transcript, source)
        except ConnectFailed:
            release()
            raise
        connection = cls(sock, transcript, timeout, release=release, service=service)
        transcript.note("connected")
        if tls is not None:
            connection.start_tls(tls, server_name or host)
        return connection

    @staticmethod
    def _connect(host: str, port: int, endpoint: str, timeout: float, transcript: Transcript,
                 source: str | None) -> socket.socket:
        transcript.note(f"connecting to {endpoint}" + (f" from {source}" if source else ""))
        deadline = time.monotonic() + timeout
        try:
            sock = _connect_any(_resolve(host, port, timeout, source), deadline, source)
        except ConnectionRefusedError:
            raise _connect_failed(transcript, endpoint, "refused", "connection refused (nothing listening)") from None
        except (socket.timeout, TimeoutError):
            raise _connect_failed(transcript, endpoint, "timeout", f"no answer within {timeout:g} s") from None
        except socket.gaierror as exc:
            raise _connect_failed(transcript, endpoint, "unresolvable", f"host name does not resolve ({exc.strerror})") from None
        except LookupTimeout:
            raise _connect_failed(transcript, endpoint, "unresolvable",
                                  f"no answer for the host name within {timeout:g} s") from None
        except OSError as exc:
            raise _connect_failed(transcript, endpoint, "unreachable", exc.strerror or str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    # ------------------------------------------------------------------ sending

    def send(self, data: bytes | Secret, redacted: str | None = None) -> None:
        """Send bytes; a :class:`Secret` is shown as ``redacted`` (or ``***``) in the transcript."""
        self.transcript.client(data, redacted)
        shown = redacted if redacted is not None or isinstance(data, Secret) else data.decode("ascii", "replace")
        self.last_command = (shown or "***").split(" ")[0].strip()[:20]
        self._received_since_send = 0
        self._sent_at = time.monotonic()
        self.patience = CREDENTIALS_PATIENCE if isinstance(data, Secret) else 1
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(reveal(data))
        except (socket.timeout, TimeoutError):
            raise ReplyTimeout(f"could not send within {self.timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._mark_closed(f"send failed: {exc}")
            raise ConnectionClosed(f"the server closed the connection (send failed: {exc})") from None

    # ------------------------------------------------------------------ receiving

    @property
    def local_address(self) -> str | None:
        """The address this end of the connection has (the source the server sees), if known."""
        try:
            return self.sock.getsockname()[0]
        except (OSError, IndexError, TypeError):
            return None

    def deadline(self, seconds: float | None = None) -> float:
        """When a reply must be complete: ``seconds`` from now, else the timeout (times the patience
        a reply to credentials is given)."""
        return time.monotonic() + (self.timeout * self.patience if seconds is None else seconds)

    @property
    def buffer(self) -> bytes:
        """Bytes received and not read yet."""
        return bytes(self._data[self._pos:])

    def _take(self, size: int) -> bytes:
        data = bytes(self._data[self._pos:self._pos + size])
        self._pos += len(data)
        return data

    def _take_all(self) -> bytes:
        return self._take(len(self._data) - self._pos)

    def readline(self, deadline: float) -> bytes:
        """One line including its terminator (LF, CRLF); the transcript records it."""
        while True:
            newline = self._data.find(b"\n", self._pos)
            if newline >= 0:
                line = self._take(newline + 1 - self._pos)
                if len(line) > self.max_line:
                    self.transcript.server(line)  # redacted whole, then cut: a cut first could split a password
                    raise ReplyTooLong(f"a reply line of {len(line)} octets (cap {self.max_line})")
                self.transcript.server(line)
                self.answered = True
                return line
            if len(self._data) - self._pos > self.max_line:
                self.transcript.server(self._take_all())
                raise ReplyTooLong(f"more than {self.max_line} octets without a line end")
            self._fill_or_time_out(deadline)

    def read_exact(self, size: int, deadline: float) -> bytes:
        """Exactly ``size`` octets (an IMAP literal); the transcript records them."""
        while len(self._data) - self._pos < size:
            self._fill_or_time_out(deadline)
        data = self._take(size)
        self.transcript.server(data)
        return data

    def _fill_or_time_out(self, deadline: float) -> None:
        if not self._fill(deadline):
            self._timed_out()

    def _fill(self, deadline: float) -> bool:
        """Receive what comes before ``deadline``: False when nothing did."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (OSError, ssl.SSLError) as exc:
            self._mark_closed(f"connection reset ({exc})")
            raise ConnectionClosed(f"the connection was reset ({exc})") from None
        if not chunk:
            if self.buffer:
                self.transcript.server(self._take_all())
            self._mark_closed("the server closed the connection")
            raise ConnectionClosed("the server closed the connection")
        del self._data[:self._pos]
        self._pos = 0
        self._data += chunk
        self._received_since_send += len(chunk)
        return True

    def _timed_out(self) -> None:
        """A reply did not come in time.  Stalled (the service is not asked again this run) when
        the server had answered before and has since sent next to nothing: silence or a drip."""
        if self.buffer:
            self.transcript.server(self._take_all())
        stalled = self.answered and self._received_since_send < STALL_RATE * self.timeout
        waited = max(self.timeout, round(time.monotonic() - self._sent_at))
        if self.answered and self.last_command:
            message = f"{self.endpoint} answered before, then gave no complete reply to {self.last_command} " \
                      f"within {waited:g} s" + ("" if stalled else
                                                f" ({self._received_since_send} octets came, still flowing)")
        else:
            message = f"no complete reply from {self.endpoint} within {waited:g} s"
        self.transcript.note(message)
        self.timed_out = True
        raise ReplyTimeout(message, stalled=stalled, service=self.service)

    def pending(self, wait: float) -> bytes:
        """Bytes that arrive within ``wait`` seconds without being asked for (b"" if none)."""
        if not self.buffer:
            try:
                self._fill(self.deadline(wait))
            except ConnectionClosed:
                return b""
        data = self._take_all()
        self.transcript.server(data)
        return data

    def wait_closed(self, wait: float) -> bool:
        """True when the server closes the connection within ``wait`` seconds."""
        deadline = self.deadline(wait)
        while not self.closed:
            try:
                if not self._fill(deadline):
                    return False
            except ConnectionClosed:
                return True
            self.transcript.server(self._take_all())
        return True

    # ------------------------------------------------------------------ TLS and teardown

    def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        """Handshake over the open connection (implicit TLS, STARTTLS, STLS)."""
        if self.buffer:
            self.transcript.note(f"{len(self._take_all())} octet(s) arrived before the handshake; discarded")
        self.transcript.note(f"TLS handshake (server name {server_name})")
        try:
            self.sock = context.wrap_socket(self.sock, server_hostname=server_name, do_handshake_on_connect=False)
            _handshake(self.sock, self.deadline())
        except ssl.SSLCertVerificationError as exc:
            raise self._tls_failed(f"certificate verification failed: {exc.verify_message}", unverified=True)
        except (socket.timeout, TimeoutError):
            raise self._tls_failed(f"no TLS handshake within {self.timeout:g} s")
        except (ssl.SSLError, OSError) as exc:
            raise self._tls_failed(f"TLS handshake failed: {exc}")
        self.transcript.note(f"TLS established: {self.sock.version()} {self.sock.cipher()[0]}")

    def _tls_failed(self, message: str, unverified: bool = False) -> TlsFailed:
        self.transcript.note(message)
        self.close()
        return TlsFailed(message, unverified)

    def ended(self) -> None:
        """The protocol session is over (QUIT accepted) and the server closes: give the budget's
        slot back now; the socket stays readable until closed (a check may wait for the close)."""
        self._release()

    def _mark_closed(self, why: str) -> None:
        if not self.closed:
            self.transcript.note(why)
            self.closed = True
        self._release()

    def close(self) -> None:
        if not self.closed:
            self.transcript.note("client closed the connection")
            self.closed = True
        self._release()
        try:
            self.sock.close()
        except OSError:
            pass


def endpoint_of(sock: socket.socket) -> str:
    """``host:port`` (``[v6]:port``) of the server a socket talks to, for messages."""
    try:
        host, port, *_ = sock.getpeername()
    except (OSError, ValueError, TypeError):
        return "the server"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _handshake(sock: ssl.SSLSocket, deadline: float) -> None:
    """The TLS handshake, all of it within ``deadline`` (a server that feeds it byte by byte
    cannot stretch it: the socket's own timeout bounds each read, not the whole)."""
    sock.settimeout(0)
    try:
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                wanted = selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                wanted = selectors.EVENT_WRITE
            remaining = deadline - time.monotonic()
            with selectors.DefaultSelector() as selector:
                selector.register(sock, wanted)
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError
    finally:
        sock.settimeout(None)


class LookupTimeout(Exception):
    """The system resolver did not answer for a host name within the timeout."""


def _resolve(host: str, port: int, timeout: float, source: str | None = None) -> list[tuple[str, int]]:
    """The addresses to try, in order: an IP address as it is; a host name's addresses looked up
    within ``timeout``, IPv4 first (lab servers listen there), only those of the ``source``
    address's family.  ``getaddrinfo`` has no timeout of its own: it runs in a daemon thread, and
    one left behind finishes in the background without holding up the end of the run."""
    try:
        ipaddress.ip_address(host)
        return [(host, port)]
    except ValueError:
        pass
    answer: list = []

    def look_up() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            answer.append(error)

    lookup = threading.Thread(target=look_up, name=f"mailconform-lookup-{host}", daemon=True)
    lookup.start()
    lookup.join(timeout)
    if not answer:
        raise LookupTimeout
    if isinstance(answer[0], Exception):
        raise answer[0]
    family = None if source is None else (socket.AF_INET6 if ":" in source else socket.AF_INET)
    found = [info for info in answer[0] if family is None or info[0] == family]
    if not found:
        raise socket.gaierror(socket.EAI_ADDRFAMILY, f"no address of the source address's family ({source})")
    addresses = [info[4][:2] for info in sorted(found, key=lambda info: info[0] != socket.AF_INET)]
    return list(dict.fromkeys(addresses))


def _connect_any(addresses: list[tuple[str, int]], deadline: float, source: str | None) -> socket.socket:
    """A connection to the first of ``addresses`` that answers, all tried within ``deadline``
    (the last one's error is raised when none does)."""
    error: OSError = TimeoutError()
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return socket.create_connection(address, timeout=remaining, source_address=(source, 0) if source else None)
        except OSError as failed:
            error = failed
    raise error


def _connect_failed(transcript: Transcript, endpoint: str, kind: str, detail: str) -> ConnectFailed:
    transcript.note(detail)
    return ConnectFailed(endpoint, kind, detail)
