"""The connection's own bounds: a host-name lookup and a TLS handshake each end within the
target's timeout, whatever the resolver or the server does."""

import socket
import ssl
import threading
import time

import pytest

from fixtures.zoo import ZooServer
from mailconform.wire import connection
from mailconform.wire.connection import Connection, LookupTimeout, _resolve
from mailconform.wire.errors import ConnectFailed, ReplyTimeout, TlsFailed
from mailconform.wire.pop3 import Pop3Session
from mailconform.wire.secret import Secret
from mailconform.wire.smtp import END_OF_DATA_PATIENCE, SmtpSession, parse_reply
from mailconform.wire.transcript import Transcript


def test_a_resolver_that_never_answers_costs_one_timeout(monkeypatch):
    monkeypatch.setattr(connection.socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(30))
    began = time.monotonic()
    with pytest.raises(LookupTimeout):
        _resolve("mail.lab.test", 25, 0.3)
    assert time.monotonic() - began < 1


def test_an_unanswered_lookup_is_a_connect_failure_saying_so(monkeypatch):
    monkeypatch.setattr(connection.socket, "getaddrinfo", lambda *args, **kwargs: time.sleep(30))
    monkeypatch.delenv(connection.LOOPBACK_ONLY_ENV, raising=False)
    with pytest.raises(ConnectFailed, match="no answer for the host name within 0.3 s"):
        Connection.open("mail.lab.test", 25, timeout=0.3, transcript=Transcript("smtp"))


@pytest.mark.parametrize("member", ["tls-silent", "greeting-drip"])
def test_a_handshake_fed_slowly_or_never_ends_within_the_timeout(member):
    context = ssl.create_default_context()
    protocol = "pop3s" if member == "tls-silent" else "pop3"  # the drip: bytes keep coming, never a TLS record
    with ZooServer(member, protocol) as server:
        began = time.monotonic()
        with pytest.raises(TlsFailed):
            Connection.open(server.host, server.port, timeout=1, transcript=Transcript("pop3s"), tls=context,
                            server_name="mail.zoo.test")
    assert time.monotonic() - began < 2


def test_an_ip_address_needs_no_lookup(monkeypatch):
    monkeypatch.setattr(connection.socket, "getaddrinfo", lambda *a, **k: pytest.fail("looked up"))
    assert _resolve("127.0.0.1", 25, 1) == [("127.0.0.1", 25)]
    assert _resolve("::1", 25, 1) == [("::1", 25)]


def _addresses(*hosts):
    """What getaddrinfo answers for a name with these addresses."""
    return lambda name, port, *args, **kwargs: [
        (socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port)) for host in hosts]


def test_a_host_name_is_tried_on_each_of_its_addresses(monkeypatch):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        monkeypatch.setattr(connection.socket, "getaddrinfo", _addresses("127.0.0.3", "127.0.0.1"))
        monkeypatch.delenv(connection.LOOPBACK_ONLY_ENV, raising=False)  # a name; both addresses are loopback
        opened = Connection.open("mail.lab.test", port, timeout=2, transcript=Transcript("smtp"))
        assert opened.endpoint == f"127.0.0.1:{port}"  # 127.0.0.3 refused: the next address answered
        opened.close()


def test_a_host_name_uses_only_the_addresses_of_the_source_family(monkeypatch):
    monkeypatch.setattr(connection.socket, "getaddrinfo", _addresses("2001:db8::25", "192.0.2.25"))
    assert _resolve("mail.lab.test", 25, 1, source="127.0.0.1") == [("192.0.2.25", 25)]
    monkeypatch.setattr(connection.socket, "getaddrinfo", _addresses("2001:db8::25"))
    with pytest.raises(socket.gaierror, match="source address's family"):
        _resolve("mail.lab.test", 25, 1, source="127.0.0.1")


def test_ipv4_addresses_come_first(monkeypatch):
    monkeypatch.setattr(connection.socket, "getaddrinfo", _addresses("::1", "127.0.0.1", "::1"))
    assert _resolve("localhost", 25, 1) == [("127.0.0.1", 25), ("::1", 25)]


@pytest.fixture
def answered():
    """A connection (timeout 0.3 s) to a server end that has sent one line, which was read."""
    ours, server = socket.socketpair()
    link = Connection(ours, Transcript("smtp"), timeout=0.3)
    server.sendall(b"220 hi\r\n")
    link.readline(link.deadline())
    yield link, server
    link.close()
    server.close()


def test_silence_after_an_answer_is_a_stall(answered):
    link, server = answered
    link.send(b"NOOP\r\n")
    with pytest.raises(ReplyTimeout) as raised:
        link.readline(link.deadline())
    assert raised.value.stalled and link.timed_out


def test_a_reply_that_keeps_flowing_past_the_deadline_is_slow_not_stalled(answered, monkeypatch):
    link, server = answered
    monkeypatch.setattr(connection, "STALL_RATE", 100)  # 30 octets in 0.3 s: flowing
    link.send(b"RETR 1\r\n")
    server.sendall(b"x" * 40)   # no line end yet: the line is still coming
    with pytest.raises(ReplyTimeout, match="still flowing") as raised:
        link.readline(link.deadline())
    assert not raised.value.stalled


def test_listening_for_unasked_bytes_is_no_timeout(answered):
    link, _ = answered
    assert link.pending(0.1) == b"" and not link.wait_closed(0.1)
    assert not link.timed_out and "no complete reply" not in link.transcript.render()


def test_a_slow_answer_to_the_end_of_a_message_is_waited_for_and_not_a_stall(answered, monkeypatch):
    link, server = answered
    session = SmtpSession(link, parse_reply([b"220 hi\r\n"]))
    began = time.monotonic()
    with pytest.raises(ReplyTimeout, match="10 minutes") as raised:
        session.send_message(b"Subject: x\r\n\r\nbody\r\n")
    assert not raised.value.stalled
    assert time.monotonic() - began >= END_OF_DATA_PATIENCE * 0.3


def _answer_after(server, seconds: float, line: bytes) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), server.sendall(line)), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("session_class, sent, answer", [
    (Pop3Session, Secret("PASS wrong"), b"-ERR [AUTH] Authentication failed.\r\n"),
    (SmtpSession, Secret("AUTH PLAIN AGFsaWNlAHdyb25n"), b"535 5.7.8 Error: authentication failed\r\n"),
])
def test_a_refused_login_may_take_its_time(answered, session_class, sent, answer):
    """Dovecot delays a refused login 2 s, Courier 5 s: a reply to credentials gets CREDENTIALS_PATIENCE
    timeouts, and comes back as the refusal it is, not as a stalled server."""
    link, server = answered
    session = session_class(link, None)
    _answer_after(server, 2 * link.timeout, answer)
    assert link.timeout * 2 < link.timeout * connection.CREDENTIALS_PATIENCE
    reply = session.command(sent, redacted="***")
    assert not link.timed_out and str(reply).split()[0] in ("-ERR", "535")


def test_any_other_command_gets_one_timeout(answered):
    link, server = answered
    answering = _answer_after(server, 2 * link.timeout, b"250 ok\r\n")
    link.send(b"NOOP\r\n")
    with pytest.raises(ReplyTimeout):
        link.readline(link.deadline())
    answering.join()  # the late answer is sent before the fixture closes the socket
