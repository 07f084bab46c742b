"""The probe handshakes of mailconform.tlsprobe against loopback servers that answer one way each:
a handshake that completes, a refusal (alert, reset, close), silence (a timeout) and an answer that
is not TLS; the hand-written ClientHello against a real server and a scripted 3DES one."""

from __future__ import annotations

import socket
import ssl
import threading
from contextlib import contextmanager

import pytest

from fixtures.twins.oldtls import WITH_NULL, TripleDesContext, legacy_pki
from fixtures.twins.tls import twin_pki
from mailconform.tlsprobe import (
    ACCEPTED, BROKE, CIPHER_PROBES, REFUSED, TIMEOUT, VERSION_PROBES, HelloOnly, Probe, ProbeResult, attempt,
    client_hello, lowest_accepted, unavailable, version_context,
)
from mailconform.targetrun import Observed
from mailconform.wire import Transcript
from mailconform.wire.connection import Connection

NAME = "mail.probe.test"
TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def pki():
    return twin_pki(NAME, "127.0.0.1")


@contextmanager
def server(answer):
    """A loopback listener whose one client is handed to ``answer(sock)`` in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(3)

    def serve():
        try:
            client, _ = listener.accept()
        except OSError:
            return
        client.settimeout(3)
        try:
            answer(client)
        except OSError:
            pass
        finally:
            client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(5)


def tls_server(context):
    def answer(client):
        with context.wrap_socket(client, server_side=True) as tls:
            tls.recv(1)  # until the client goes
    return answer


def probe_port(port, context) -> ProbeResult:
    """What the probe makes of one handshake with ``context`` (the wire's own connection, as in a run)."""
    return attempt(lambda: Connection.open("127.0.0.1", port, timeout=TIMEOUT_S, transcript=Transcript("probe"),
                                           tls=context, server_name=NAME))


def test_this_openssl_can_offer_every_version_and_the_hand_written_suites():
    assert {name: unavailable(probe) for name, probe in {**VERSION_PROBES, **CIPHER_PROBES}.items()} == dict.fromkeys(
        [*VERSION_PROBES, *CIPHER_PROBES])


def test_what_this_openssl_cannot_offer_is_unavailable_not_a_pass():
    no_such_suite = Probe("rc4-by-openssl", "RC4 through OpenSSL", ssl.TLSVersion.TLSv1_2, "RC4-SHA")
    assert "OpenSSL" in unavailable(no_such_suite)


def test_an_old_version_is_accepted_by_a_server_that_allows_it(pki):
    with server(tls_server(legacy_pki(pki).context)) as port:
        result = probe_port(port, version_context(VERSION_PROBES["tls1.0"]))
    assert (result.outcome, result.version) == (ACCEPTED, "TLSv1")


def test_an_old_version_is_refused_with_the_servers_alert(pki):
    with server(tls_server(pki.context)) as port:  # TLS 1.2 and later
        result = probe_port(port, version_context(VERSION_PROBES["tls1.1"]))
    assert result.outcome == REFUSED
    assert "PROTOCOL_VERSION" in result.detail


def test_a_capped_server_refuses_tls13(pki):
    capped = legacy_pki(pki, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    with server(tls_server(capped.context)) as port:
        assert probe_port(port, version_context(VERSION_PROBES["tls1.3"])).outcome == REFUSED


def test_a_connection_closed_during_the_handshake_is_a_refusal():
    with server(lambda client: client.recv(1024)) as port:  # reads the ClientHello, then hangs up
        assert probe_port(port, version_context(VERSION_PROBES["tls1.0"])).outcome == REFUSED


def test_a_reset_during_the_handshake_is_a_refusal():
    def reset(client):
        client.recv(1024)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with server(reset) as port:
        assert probe_port(port, HelloOnly(CIPHER_PROBES["rc4"].suites)).outcome == REFUSED


def test_silence_is_a_timeout_not_a_refusal():
    stop = threading.Event()
    with server(lambda client: stop.wait(3)) as port:
        result = probe_port(port, version_context(VERSION_PROBES["tls1.0"]))
        stop.set()
    assert result.outcome == TIMEOUT


@pytest.mark.parametrize("context", [version_context(VERSION_PROBES["tls1.2"]), HelloOnly(CIPHER_PROBES["null"].suites)],
                         ids=["version", "hello"])
def test_an_answer_that_is_not_tls_is_neither_accepted_nor_refused(context):
    with server(lambda client: (client.recv(1024), client.sendall(b"500 what?\r\n" * 4))) as port:
        assert probe_port(port, context).outcome == BROKE


def test_the_hand_written_hello_is_refused_by_a_modern_server_with_its_alert(pki):
    with server(tls_server(pki.context)) as port:
        result = probe_port(port, HelloOnly(CIPHER_PROBES["null"].suites))
    assert (result.outcome, result.detail) == (REFUSED, "alert handshake_failure")


def test_the_hand_written_hello_finds_a_null_suite_a_real_server_accepts(pki):
    with server(tls_server(legacy_pki(pki, minimum=ssl.TLSVersion.TLSv1_2, ciphers=WITH_NULL).context)) as port:
        result = probe_port(port, HelloOnly(CIPHER_PROBES["null"].suites))
    assert (result.outcome, result.version, result.cipher) == (ACCEPTED, "TLSv1.2", "ECDHE-ECDSA-NULL-SHA")


def test_the_hand_written_hello_finds_a_3des_suite(pki):
    def answer(client):
        TripleDesContext(pki.context).wrap_socket(client, server_side=True)
    with server(answer) as port:
        result = probe_port(port, HelloOnly(CIPHER_PROBES["3des"].suites))
    assert (result.outcome, result.cipher) == (ACCEPTED, "DES-CBC3-SHA")


def test_the_hello_names_the_server_but_never_an_address():
    suites = CIPHER_PROBES["rc4"].suites
    assert NAME.encode() in client_hello(suites, NAME)
    assert b"127.0.0.1" not in client_hello(suites, "127.0.0.1")
    hello = client_hello(suites, None)
    assert hello[0] == 0x16 and int.from_bytes(hello[3:5], "big") == len(hello) - 5


class _Observed:
    """A target run that made some probes (``("tls-probe", service, name)`` → outcome, version)."""

    def __init__(self, made: dict[str, tuple[str, str]]):
        self.made = made

    def observed(self, key):
        if key[2] not in self.made:
            return None
        outcome, version = self.made[key[2]]
        return Observed(ProbeResult(outcome, version=version), None, Transcript("probe"))


@pytest.mark.parametrize("made, floor", [
    ({}, None),
    ({"old": ("refused", ""), "tls1.2": ("accepted", "TLSv1.2")}, "TLSv1.2"),       # refused together
    ({"old": ("accepted", "TLSv1"), "tls1.2": ("accepted", "TLSv1.2")}, "TLSv1"),   # the group names 1.0
    ({"old": ("accepted", "TLSv1.1"), "tls1.0": ("refused", ""), "tls1.2": ("accepted", "TLSv1.2")}, "TLSv1.1"),
    ({"old": ("accepted", "TLSv1.1"), "tls1.2": ("accepted", "TLSv1.2")}, None),    # 1.0 alone never tried
    ({"old": ("unavailable", ""), "tls1.2": ("accepted", "TLSv1.2")}, None),       # could not be offered
])
def test_the_lowest_version_accepted_is_read_from_the_probes_made(made, floor):
    assert lowest_accepted(_Observed(made), "smtp") == floor
