"""The connection's own bounds: a host-name lookup and a TLS handshake each end within the
target's timeout, whatever the resolver or the server does."""

import ssl
import time

import pytest

from fixtures.zoo import ZooServer
from mailconform.wire import connection
from mailconform.wire.connection import Connection, LookupTimeout, _resolve
from mailconform.wire.errors import ConnectFailed, TlsFailed
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
    assert _resolve("127.0.0.1", 25, 1) == ("127.0.0.1", 25)
    assert _resolve("::1", 25, 1) == ("::1", 25)
