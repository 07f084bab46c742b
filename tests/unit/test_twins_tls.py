"""The mail twin's STARTTLS, implicit TLS, AUTH, relaying and A2 extension faults, over raw sockets.

The default twin must do RFC 3207 / RFC 4954 / RFC 3848 by the book; each A2 fault must change
exactly the behaviour it names (the same probe run against the default twin and the faulty one).
"""

import base64
import socket
import ssl
import time

import pytest

from fixtures.twins import MAIL_FAULTS, MailTwin, fault_steps
from mailconform.checks import STEPS

TIMEOUT = 2.0
QUIET = 0.3  # how long "nothing arrives" is waited for
READY = b"220 2.0.0 Ready to start TLS"


def plain(user, password):
    return base64.b64encode(b"\0" + user + b"\0" + password)


class Client:
    """A raw-socket SMTP client that can switch to TLS; it never reads past what it needs."""

    def __init__(self, twin, implicit=False, timeout=TIMEOUT):
        self.twin = twin
        port = twin.smtps_port if implicit else twin.smtp_port
        self.sock = socket.create_connection((twin.host, port), timeout=timeout)
        self.buffer = b""
        if implicit:
            self.handshake()

    def handshake(self, server_name=None, context=None):
        """TLS, verifying the certificate against twin.ca_file (or context) and the twin's name."""
        assert self.buffer == b"", "plaintext arrived after the 220 to STARTTLS"
        context = context or ssl.create_default_context(cafile=self.twin.ca_file)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_name or self.twin.server_name)

    def send(self, *lines):
        self.sock.sendall(b"".join(line + b"\r\n" for line in lines))

    def line(self):
        """One line without CRLF; b"" once the server has closed."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                return b""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def code(self, command):
        self.send(command)
        return int(self.reply()[-1][:3])

    def last(self, command):
        """The last line of the reply to command."""
        self.send(command)
        return self.reply()[-1]

    def keywords(self, command=b"EHLO client.test"):
        self.send(command)
        lines = self.reply()
        assert lines[0].startswith(b"250")
        return {line[4:].split(b" ")[0].decode() for line in lines[1:]}

    def quiet(self):
        """What arrives within QUIET seconds without asking (b"" if nothing)."""
        self.sock.settimeout(QUIET)
        try:
            return self.buffer + self.sock.recv(4096)
        except TimeoutError:
            return self.buffer
        finally:
            self.sock.settimeout(TIMEOUT)

    def closes(self):
        """Whether the server closes the connection within QUIET seconds (without sending more)."""
        assert self.buffer == b""
        self.sock.settimeout(QUIET)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(TIMEOUT)
        assert data == b"", data
        return True

    def starttls(self):
        assert self.last(b"STARTTLS") == READY
        self.handshake()

    def close(self):
        self.sock.close()




def greeted(twin, implicit=False):
    client = Client(twin, implicit)
    assert client.reply()[-1].startswith(b"220 mail.twin.test ")
    return client


def in_tls(twin):
    """A session after EHLO, STARTTLS, the handshake and a new EHLO."""
    client = greeted(twin)
    client.keywords()
    client.starttls()
    client.keywords()
    return client


def deliver(client, rcpt=b"alice@twin.test"):
    for command, code in ((b"MAIL FROM:<bob@example.test>", 250), (b"RCPT TO:<" + rcpt + b">", 250), (b"DATA", 354)):
        assert client.code(command) == code, command
    client.send(b"Subject: hi", b"", b"body", b".")
    assert client.reply()[-1].startswith(b"250 ")


def received_with(twin, user="alice"):
    """The 'with' keyword of the newest message's Received header."""
    header = twin.mailbox(user)[-1].split(b"\r\n", 1)[0]
    return header.split(b" with ")[1].split(b";")[0].decode()


# -- the default twin -------------------------------------------------------------------------------


def test_default_starttls_session_by_the_book(twin_factory):
    twin = twin_factory()
    client = greeted(twin)
    before = client.keywords()
    assert "STARTTLS" in before and "AUTH" not in before
    assert client.last(b"AUTH PLAIN " + plain(b"alice", b"alice-pw")) == b"530 5.7.0 Must issue a STARTTLS command first"
    assert client.code(b"MAIL FROM:<bob@example.test>") == 250  # a transaction that TLS must forget
    assert client.code(b"STARTTLS now") == 501
    client.starttls()  # verifies the chain against twin.ca_file and the name mail.twin.test

    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert ("DNS", "mail.twin.test") in client.sock.getpeercert()["subjectAltName"]
    assert client.last(b"MAIL FROM:<bob@example.test>").startswith(b"503 5.5.1 ")  # state reset: EHLO first
    after = client.keywords()
    assert "STARTTLS" not in after and "AUTH" in after
    assert client.last(b"STARTTLS") == b"503 5.5.1 Error: TLS already active"
    assert client.last(b"AUTH PLAIN " + plain(b"alice", b"wrong")) == b"535 5.7.8 Error: authentication failed"
    assert client.last(b"AUTH PLAIN " + plain(b"alice", b"alice-pw")) == b"235 2.7.0 Authentication successful"
    assert client.code(b"AUTH PLAIN " + plain(b"alice", b"alice-pw")) == 503  # RFC 4954 §4: only once
    deliver(client)
    assert received_with(twin) == "ESMTPSA"
    assert client.code(b"QUIT") == 221
    client.close()


def test_ehlo_lists_auth_only_inside_tls(twin_factory):
    client = in_tls(twin_factory())
    client.send(b"EHLO client.test")
    lines = client.reply()
    assert b"250-AUTH PLAIN LOGIN" in lines or b"250 AUTH PLAIN LOGIN" in lines
    assert not any(b"STARTTLS" in line for line in lines)


def test_certificate_names_the_ip_and_nothing_else(twin_factory):
    twin = twin_factory()
    client = greeted(twin)
    assert client.last(b"STARTTLS") == READY
    client.handshake(server_name="127.0.0.1")  # the listen IP is in the certificate too
    client.close()
    for name, context in (("other.twin.test", None), (None, ssl.create_default_context())):  # system CAs
        client = greeted(twin)
        assert client.last(b"STARTTLS") == READY
        with pytest.raises(ssl.SSLCertVerificationError):
            client.handshake(server_name=name, context=context)
        client.close()


def test_plaintext_after_starttls_is_discarded(twin_factory):
    """RFC 3207 §4.2, CVE-2011-0411: a command pipelined behind STARTTLS is never answered."""
    client = greeted(twin_factory())
    client.keywords()
    client.send(b"STARTTLS", b"NOOP")  # one packet
    assert client.line() == READY
    client.handshake()
    assert client.quiet() == b""
    assert client.code(b"NOOP") == 250  # the session goes on


def test_a_failed_handshake_ends_only_that_connection(twin_factory):
    twin = twin_factory()
    client = greeted(twin)
    assert client.last(b"STARTTLS") == READY
    client.send(b"NOOP")  # plaintext where the ClientHello belongs
    received = b""
    try:
        while chunk := client.sock.recv(4096):  # at most a TLS alert, then the close
            received += chunk
    except ConnectionResetError:
        pass
    assert b"250" not in received
    assert in_tls(twin).code(b"NOOP") == 250


def test_auth_exchanges_inside_tls(twin_factory):
    client = in_tls(twin_factory())
    assert client.last(b"AUTH FOOBAR") == b"504 5.5.4 Unsupported authentication mechanism"
    assert client.code(b"AUTH PLAIN !!!") == 501
    assert client.last(b"AUTH PLAIN") == b"334 "
    assert client.code(b"*") == 501
    assert client.last(b"AUTH PLAIN " + plain(b"nobody", b"alice-pw")).startswith(b"535 5.7.8 ")
    assert client.last(b"AUTH LOGIN") == b"334 VXNlcm5hbWU6"
    assert client.last(base64.b64encode(b"alice")) == b"334 UGFzc3dvcmQ6"
    assert client.code(base64.b64encode(b"alice-pw")) == 235


def test_implicit_tls_listener(twin_factory):
    twin = twin_factory()
    client = greeted(twin, implicit=True)
    keywords = client.keywords()
    assert "AUTH" in keywords and "STARTTLS" not in keywords
    assert client.code(b"STARTTLS") == 503
    assert client.code(b"AUTH PLAIN " + plain(b"alice", b"alice-pw")) == 235
    deliver(client)
    assert received_with(twin) == "ESMTPSA"


def test_received_with_keywords_follow_rfc_3848(twin_factory):
    twin = twin_factory()
    client = greeted(twin)
    client.send(b"HELO client.test")
    client.reply()
    deliver(client)
    assert received_with(twin) == "SMTP"
    client.keywords()
    deliver(client)
    assert received_with(twin) == "ESMTP"
    client.starttls()
    client.keywords()
    deliver(client)
    assert received_with(twin) == "ESMTPS"


def test_the_host_name_and_address_literal_are_local(twin_factory):
    twin = twin_factory()
    client = greeted(twin)
    client.keywords()
    for rcpt in (b"Alice@Mail.Twin.Test", b"alice@[127.0.0.1]"):
        deliver(client, rcpt)
    assert len(twin.mailbox("alice")) == 2
    client.code(b"MAIL FROM:<>")
    assert client.code(b"RCPT TO:<alice@[127.0.0.2]>") == 554
    assert client.code(b"RCPT TO:<alice@other.twin.test>") == 554


def test_authenticated_clients_may_relay(twin_factory):
    twin = twin_factory()
    client = in_tls(twin)
    assert client.code(b"MAIL FROM:<alice@twin.test>") == 250
    assert client.code(b"RCPT TO:<friend@example.com>") == 554
    client.code(b"RSET")
    client.code(b"AUTH PLAIN " + plain(b"alice", b"alice-pw"))
    deliver(client, rcpt=b"Friend@Example.com")
    assert len(twin.mailbox("friend@example.com")) == 1


def test_a_stalled_handshake_times_out_and_stop_is_quick():
    with MailTwin(timeout=0.3) as twin:
        stalled = socket.create_connection((twin.host, twin.smtps_port), timeout=TIMEOUT)
        assert stalled.recv(10) == b""  # the server gave up on the handshake
        held = socket.create_connection((twin.host, twin.smtps_port), timeout=TIMEOUT)
        time.sleep(0.05)
        started = time.monotonic()
    assert time.monotonic() - started < 0.5
    assert held.recv(10) == b""


# -- each A2 fault changes one behaviour ------------------------------------------------------------


def probe_starttls(twin):
    client = greeted(twin)
    return "STARTTLS" in client.keywords(), client.last(b"STARTTLS")


def probe_second_starttls(twin):
    client = in_tls(twin)
    return client.code(b"STARTTLS"), client.closes()


def probe_ehlo_in_tls(twin):
    return "STARTTLS" in in_tls(twin).keywords()


def probe_mail_after_handshake(twin):
    client = greeted(twin)
    client.keywords()
    client.starttls()
    return client.code(b"MAIL FROM:<bob@example.test>")


def probe_injection(twin):
    client = greeted(twin)
    client.keywords()
    client.send(b"STARTTLS", b"NOOP")
    assert client.line() == READY
    client.handshake()
    return client.quiet()


def probe_auth_before_tls(twin):
    client = greeted(twin)
    return "AUTH" in client.keywords(), client.code(b"AUTH PLAIN " + plain(b"alice", b"alice-pw"))


def probe_wrong_password(twin):
    return in_tls(twin).code(b"AUTH PLAIN " + plain(b"alice", b"guess")), \
        in_tls(twin).code(b"AUTH PLAIN " + plain(b"nobody", b"guess"))


def rcpt_codes(*recipients):
    def probe(twin):
        client = greeted(twin)
        client.keywords()
        codes = []
        for rcpt in recipients:
            client.code(b"MAIL FROM:<bob@example.test>")
            codes.append(client.code(b"RCPT TO:<" + rcpt + b">"))
            client.code(b"RSET")
        return tuple(codes)
    return probe


def probe_vrfy(twin):
    client = greeted(twin)
    client.keywords()
    return client.last(b"VRFY alice"), client.last(b"VRFY nobody")[:3]


def probe_size(twin):
    client = greeted(twin)
    advertised = "SIZE" in client.keywords()
    return advertised, client.code(b"MAIL FROM:<bob@example.test> SIZE=10240001")


def probe_enhanced(twin):
    client = greeted(twin)
    advertised = "ENHANCEDSTATUSCODES" in client.keywords()
    return advertised, client.last(b"NOOP"), client.last(b"RCPT TO:<alice@twin.test>")


def probe_received(twin):
    client = in_tls(twin)
    deliver(client)
    first = received_with(twin)
    client.code(b"AUTH PLAIN " + plain(b"alice", b"alice-pw"))
    deliver(client)
    return first, received_with(twin)


A2_FAULTS = [  # fault, probe, what the default twin gives, what the faulty one gives
    ("no-starttls", probe_starttls, (True, READY), (False, b"502 5.5.1 Error: command not implemented")),
    ("starttls-454", probe_starttls, (True, READY), (True, b"454 4.7.0 TLS not available due to local problem")),
    ("starttls-twice", probe_second_starttls, (503, False), (220, True)),
    ("ehlo-tls-starttls", probe_ehlo_in_tls, False, True),
    ("tls-no-reset", probe_mail_after_handshake, 503, 250),
    ("starttls-injection", probe_injection, b"", b"250 2.0.0 Ok\r\n"),
    ("auth-cleartext", probe_auth_before_tls, (False, 530), (True, 235)),
    ("auth-any-password", probe_wrong_password, (535, 535), (235, 535)),
    ("open-relay", rcpt_codes(b"victim@example.com", b"victim@[192.0.2.25]", b"nobody@twin.test",
                              b"example.com!victim@twin.test"), (554, 554, 550, 550), (250, 250, 550, 550)),
    ("percent-hack-relay", rcpt_codes(b"victim%example.com@twin.test", b"victim%example.com@mail.twin.test",
                                      b"victim%example.com@[127.0.0.1]", b'"victim%example.com"',
                                      b"victim@example.com", b"alice%twin.test@twin.test"),
     (550, 550, 550, 550, 554, 550), (250, 250, 250, 550, 554, 250)),
    ("vrfy-discloses", probe_vrfy, (b"252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                                    b"252"), (b"250 2.0.0 <alice@twin.test>", b"252")),
    ("size-not-enforced", probe_size, (True, 552), (True, 250)),
    ("no-enhanced-codes", probe_enhanced, (True, b"250 2.0.0 Ok", b"503 5.5.1 Error: need MAIL command"),
     (True, b"250 Ok", b"503 Error: need MAIL command")),
    ("received-no-esmtps", probe_received, ("ESMTPS", "ESMTPSA"), ("ESMTP", "ESMTPA")),
]


@pytest.mark.parametrize("fault, probe, default, faulty", A2_FAULTS, ids=[row[0] for row in A2_FAULTS])
def test_a2_fault_changes_one_behaviour(twin_factory, fault, probe, default, faulty):
    assert probe(twin_factory()) == default
    assert probe(twin_factory(fault)) == faulty


def test_every_a2_fault_is_probed_and_mapped_to_a2_steps():
    a2 = {fault for fault in MAIL_FAULTS if any(step.startswith("A2.") for step in fault_steps(fault))}
    assert a2 == {row[0] for row in A2_FAULTS}
    assert all(step in STEPS for fault in a2 for step in fault_steps(fault))


def test_ehlo_legacy_auth_adds_only_the_legacy_line(twin_factory):
    client = greeted(twin_factory("ehlo-legacy-auth"))
    assert {"AUTH=PLAIN"} <= client.keywords() and "AUTH" not in client.keywords()
    client.starttls()
    assert {"AUTH", "AUTH=PLAIN"} <= client.keywords()
